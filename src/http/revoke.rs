//! `POST /oauth2/revoke` (RFC 7009).

use super::AppState;
use super::error::OAuthError;
use super::token::{credentials, read_form};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Revoke a token; 200 whether or not it was valid (§2.2), since a client
/// cannot do anything useful with the difference.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = read_form(&state, &headers, body)?;
    let credentials = credentials(&headers, &form)?;
    let client = state.config.clients.authenticate(&credentials)?;
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // token_type_hint only speeds up a lookup (§2.1); tessera's two token
    // formats are told apart by their shape, so the hint is not needed.
    state.tokens.revoke_token(client, token).await?;
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
