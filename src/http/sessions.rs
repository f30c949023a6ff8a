//! `POST /v1/sessions`: the login backend asks for a subject's first pair
//! of tokens, after it has authenticated the person itself.

use super::error::Problem;
use super::{AppState, has_content_type, is_too_large};
use crate::clients::Credentials;
use crate::sessions::{IssuedSession, SessionRequest};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
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
    let issued: IssuedSession = state.tokens.create_session(caller, &state.config.clients, request)?;
    tracing::info!(client = %caller.id, sid = %issued.session_id, "session created");
    let mut response = (StatusCode::CREATED, Json(issued)).into_response();
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
