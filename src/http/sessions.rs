//! The session endpoints: `POST /v1/sessions` (the login backend asks for a
//! subject's first pair of tokens, after it has authenticated the person
//! itself), logout of one session, logout everywhere, and the session list.

use super::AppState;
use super::error::Problem;
use super::extract::{AnyPermission, JsonBody, Manager, MayReadSessions, MayRevokeSessions};
use crate::sessions::{self, SessionRequest, SessionStarted};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn create(
    State(state): State<AppState>,
    Manager { client: caller, .. }: Manager<AnyPermission>,
    JsonBody(request): JsonBody<SessionRequest>,
) -> Result<Response, Problem> {
    let max_age = state.config().tokens.refresh_idle_ttl.as_secs();
    let budget = |client: &crate::clients::Client| state.cookie.token_budget(client, max_age);
    let mut response = match sessions::create(&state.authority, &caller, &state.config().clients, request, &budget).await? {
        SessionStarted::Tokens(issued) => {
            tracing::info!(client = %caller.id, sid = %issued.session_id, "session created");
            (StatusCode::CREATED, super::oauth::json_bytes(super::token_response::session(&issued))).into_response()
        }
        SessionStarted::Code(code) => {
            tracing::info!(client = %caller.id, sid = %code.session_id, "session created behind a one-time code");
            (StatusCode::CREATED, Json(code)).into_response()
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn path_segment(segment: Result<Path<String>, PathRejection>, name: &str) -> Result<String, Problem> {
    segment.map(|Path(value)| value).map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_path", format!("the {name} in the path is not valid UTF-8")).with_field(name)
    })
}

/// `DELETE /v1/sessions/{sid}`: logout — every token of the session is dead.
pub async fn end(
    State(state): State<AppState>,
    Manager { client, .. }: Manager<MayRevokeSessions>,
    sid: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let sid = path_segment(sid, "sid")?;
    sessions::end_session(&state.authority, &client, &sid).await?;
    tracing::info!(client = %client.id, sid = %sid, "logout");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/subjects/{sub}/revoke`: logout everywhere.
pub async fn end_all(
    State(state): State<AppState>,
    Manager { client, .. }: Manager<MayRevokeSessions>,
    sub: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let sub = path_segment(sub, "sub")?;
    let before = sessions::end_subject(&state.authority, &client, &sub).await?;
    after_second(before).await;
    tracing::info!(client = %client.id, "logout everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/subjects/{sub}/sessions`: the subject's live indexed sessions.
pub async fn list(
    State(state): State<AppState>,
    _: Manager<MayReadSessions>,
    sub: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let sub = path_segment(sub, "sub")?;
    let sessions = sessions::sessions_of(&state.authority, &sub).await?;
    let body: Vec<serde_json::Value> = sessions
        .into_iter()
        .map(|s| serde_json::json!({"session_id": s.sid, "client_id": s.client_id, "created_at": s.created_at, "expires_at": s.expires_at}))
        .collect();
    let mut response = Json(serde_json::json!({ "sessions": body })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Answer only once the clock has passed the instant a logout-everywhere
/// covers (now plus `tokens.clock_skew`): tokens carry whole-second
/// `iat`s, so a session the caller creates next (the usual password-change
/// flow) must not fall inside it.
pub(crate) async fn after_second(before: i64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds_left = before.saturating_sub(now.as_secs() as i64);
    if seconds_left >= 0 {
        let wait = (seconds_left as u64) * 1_000 + 1_001 - u64::from(now.subsec_millis());
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}
