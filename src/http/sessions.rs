//! The session endpoints: `POST /v1/sessions` (the login backend asks for a
//! subject's first pair of tokens, after it has authenticated the person
//! itself), logout of one session, logout everywhere, and the session list.

use super::error::Problem;
use super::{AppState, has_content_type, is_too_large};
use crate::clients::{Client, Credentials, Permission};
use crate::sessions::{SessionRequest, SessionStarted};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, Problem> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("invalid"));
    let credentials = Credentials::from_request(authorization, None, None)?;
    let caller = state.config.clients.authenticate_confidential(&credentials)?;

    let body = body.map_err(|rejection| {
        if is_too_large(&rejection) {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {} bytes", state.config.http.max_body_bytes),
            )
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
        }
    })?;
    if !has_content_type(&headers, "application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ));
    }
    let request: SessionRequest = serde_json::from_slice(&body).map_err(json_problem)?;
    let mut response = match state.tokens.create_session(caller, &state.config.clients, request).await? {
        SessionStarted::Tokens(issued) => {
            tracing::info!(client = %caller.id, sid = %issued.session_id, "session created");
            (StatusCode::CREATED, Json(issued)).into_response()
        }
        SessionStarted::Code(code) => {
            tracing::info!(client = %caller.id, sid = %code.session_id, "session created behind a one-time code");
            (StatusCode::CREATED, Json(code)).into_response()
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Turn a serde error into a problem naming the field where serde knows it.
fn json_problem(error: serde_json::Error) -> Problem {
    let message = error.to_string();
    let field = ["unknown field `", "missing field `"].iter().find_map(|marker| {
        let start = message.find(marker)? + marker.len();
        let len = message[start..].find('`')?;
        Some(message[start..start + len].to_string())
    });
    // serde's message ends with a position; keep it, it helps find the spot.
    let detail = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("the body is not valid JSON: {message}")
        }
        _ => format!("the body does not match the session request: {message}"),
    };
    let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid_body", detail);
    match field {
        Some(field) => problem.with_field(field),
        None => problem,
    }
}

/// Authenticate a confidential client over HTTP Basic and require one of
/// `permissions`.
fn management_client<'a>(state: &'a AppState, headers: &HeaderMap, permissions: &[Permission]) -> Result<&'a Client, Problem> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("invalid"));
    let credentials = Credentials::from_request(authorization, None, None)?;
    let client = state.config.clients.authenticate_confidential(&credentials)?;
    if !permissions.iter().any(|p| client.may(*p)) {
        let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("client {:?} needs the {} permission", client.id, names.join(" or ")),
        ));
    }
    Ok(client)
}

fn path_segment(segment: Result<Path<String>, PathRejection>, name: &str) -> Result<String, Problem> {
    segment.map(|Path(value)| value).map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_path", format!("the {name} in the path is not valid UTF-8")).with_field(name)
    })
}

/// `DELETE /v1/sessions/{sid}`: logout — every token of the session is dead.
pub async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    sid: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let client = management_client(&state, &headers, &[Permission::RevokeSessions])?;
    let sid = path_segment(sid, "sid")?;
    state.tokens.end_session(&sid).await?;
    tracing::info!(client = %client.id, sid = %sid, "logout");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/subjects/{sub}/revoke`: logout everywhere.
pub async fn end_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    sub: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let client = management_client(&state, &headers, &[Permission::RevokeSessions])?;
    let sub = path_segment(sub, "sub")?;
    let before = state.tokens.end_subject(&sub).await?;
    after_second(before).await;
    tracing::info!(client = %client.id, "logout everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/subjects/{sub}/sessions`: the subject's live indexed sessions.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    sub: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    management_client(&state, &headers, &[Permission::Sessions, Permission::RevokeSessions])?;
    let sub = path_segment(sub, "sub")?;
    let sessions = state.tokens.sessions_of(&sub).await?;
    let body: Vec<serde_json::Value> = sessions
        .into_iter()
        .map(|s| serde_json::json!({"session_id": s.sid, "client_id": s.client_id, "created_at": s.created_at, "expires_at": s.expires_at}))
        .collect();
    let mut response = Json(serde_json::json!({ "sessions": body })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Answer only once the clock has left the second of a logout-everywhere:
/// tokens carry whole-second `iat`s, so a session the caller creates next
/// (the usual password-change flow) must not share the revoked second.
pub(crate) async fn after_second(before: i64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    if now.as_secs() as i64 <= before {
        tokio::time::sleep(std::time::Duration::from_millis(1_001 - u64::from(now.subsec_millis()))).await;
    }
}
