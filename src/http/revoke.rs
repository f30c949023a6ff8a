//! `POST /oauth2/revoke` (RFC 7009).

use super::AppState;
use super::error::OAuthError;
use super::extract::OAuthClient;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Revoke a token; 200 whether or not it was valid (§2.2), since a client
/// cannot do anything useful with the difference.
pub async fn revoke(State(state): State<AppState>, OAuthClient { client, form, .. }: OAuthClient) -> Result<Response, OAuthError> {
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // token_type_hint only speeds up a lookup (§2.1); tessera's two token
    // formats are told apart by their shape, so the hint is not needed.
    state.authority.revoke_token(&client, token).await?;
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
