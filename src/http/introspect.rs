//! `POST /oauth2/introspect` (RFC 7662), for confidential clients holding
//! the `introspect` permission.

use super::AppState;
use super::error::OAuthError;
use super::token::{credentials, no_store, read_form};
use crate::clients::Permission;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = read_form(&state, &headers, body)?;
    let credentials = credentials(&headers, &form)?;
    let client = state.config.clients.authenticate_confidential(&credentials)?;
    if !client.may(Permission::Introspect) {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            format!("client {:?} lacks the \"introspect\" permission", client.id),
        ));
    }
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok(no_store(Json(state.tokens.introspect(token).await?)))
}
