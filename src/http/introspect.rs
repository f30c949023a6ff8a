//! `POST /oauth2/introspect` (RFC 7662), for confidential clients holding
//! the `introspect` permission.

use super::AppState;
use super::error::OAuthError;
use super::extract::ConfidentialClient;
use super::oauth::{json_bytes, no_store};
use crate::clients::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

pub async fn introspect(
    State(state): State<AppState>,
    ConfidentialClient { client, form }: ConfidentialClient,
) -> Result<Response, OAuthError> {
    if !client.may(Permission::Introspect) {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            format!("client {:?} lacks the \"introspect\" permission", client.id),
        ));
    }
    let token = form.get("token").ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok(no_store(json_bytes(state.authority.introspection_body(token).await?)))
}
