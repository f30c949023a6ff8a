//! `POST /oauth2/token` (RFC 6749 §3.2): authenticate the client, resolve
//! what only HTTP knows (a refresh token carried in the cookie, the CSRF
//! checks cookie clients must pass, the `DPoP` proof), then hand over to
//! the grant dispatcher.

use super::AppState;
use super::browser::check_csrf;
use super::error::OAuthError;
use super::extract::{OAuthForm, oauth_credentials};
use super::oauth::{deliver, no_store};
use super::throttle::{Accepting, Peer};
use crate::grants::{self, DispatchError, Issued, TokenRequest};
use axum::extract::State;
use axum::response::Response;
use tracing::Instrument;

pub async fn token(State(state): State<AppState>, peer: Peer, OAuthForm { headers, form }: OAuthForm) -> Result<Response, OAuthError> {
    let grant_type = form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let client = state.throttle.authenticate(&state.config().clients, oauth_credentials(&headers, &form), peer, Accepting::AnyClient)?;
    let from_cookie = if client.refresh_cookie && grant_type == "refresh_token" { state.cookie.read(&client.id, &headers) } else { None };
    let refresh_token = match (form.get("refresh_token"), from_cookie.as_deref()) {
        (None, Some(token)) => {
            check_csrf(&headers, &client)?;
            Some(token)
        }
        (token, _) => token,
    };
    // The answer sets the refresh cookie: a cross-site form must not be able
    // to sign the browser into someone else's session.
    if grant_type == "authorization_code" && client.refresh_cookie {
        check_csrf(&headers, &client)?;
    }
    let resource = form.all("resource");
    let proof = super::dpop::proof(&state, &headers)?;
    let request = TokenRequest {
        grant_type,
        scope: form.get("scope"),
        audience: form.get("audience"),
        resource: &resource,
        refresh_token,
        code: form.get("code"),
        code_verifier: form.get("code_verifier"),
        dpop: proof.as_ref(),
    };
    let span = tracing::info_span!("grant", grant_type = %grant_type, client = %client.id);
    match grants::dispatch(&state.authority, &client, request).instrument(span).await {
        Ok(Issued::AccessToken(issued)) => {
            let body = super::oauth::json_bytes(super::token_response::access_token(&issued));
            Ok(super::dpop::with_nonce(&state, no_store(body)))
        }
        Ok(Issued::Session(issued)) => {
            if let (Some(observer), Some(presented), "refresh_token") = (&state.refresh_observer, refresh_token, grant_type) {
                observer.presented(&issued.session_id, presented);
            }
            Ok(super::dpop::with_nonce(&state, deliver(&state, &client, issued)))
        }
        Err(DispatchError::Missing(name)) => Err(OAuthError::invalid_request(format!("{name} is required"))),
        Err(DispatchError::Unsupported(name)) => Err(OAuthError::unsupported_grant_type(&name)),
        Err(DispatchError::Refused(refusal)) => Err(refusal.into()),
    }
}
