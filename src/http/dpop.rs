//! DPoP at the token endpoint's HTTP edge (RFC 9449 §4.3, §8): exactly one
//! `DPoP` header, its stateless checks ([`crate::dpop::DpopPolicy`]) mapped
//! to `invalid_dpop_proof` or `use_dpop_nonce`, and a fresh `DPoP-Nonce` on
//! answers when nonces are required, so a client rarely needs the retry.

use super::AppState;
use super::error::OAuthError;
use crate::dpop::{DpopError, VerifiedProof};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

/// The request's proof, checked; `None` when it has none.
pub fn proof(state: &AppState, headers: &HeaderMap) -> Result<Option<VerifiedProof>, OAuthError> {
    let mut values = headers.get_all("dpop").iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(invalid("more than one DPoP header")),
    };
    let text = value.to_str().map_err(|_| invalid("the DPoP header is not visible ASCII"))?;
    let now = state.authority.clock.now();
    match state.dpop.check(text.trim(), &state.keyring.view(), now) {
        Ok(proof) => Ok(Some(proof)),
        Err(DpopError::UseNonce(nonce)) => Err(OAuthError::use_dpop_nonce(nonce)),
        Err(DpopError::NoNonceKey) => {
            Err(OAuthError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", DpopError::NoNonceKey.to_string()))
        }
        Err(error) => Err(invalid(&error.to_string())),
    }
}

fn invalid(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
}

/// Add a fresh `DPoP-Nonce` to `response` when nonces are required.
pub fn with_nonce(state: &AppState, mut response: Response) -> Response {
    let nonce = state.dpop.fresh_nonce(&state.keyring.view(), state.authority.clock.now());
    if let Some(nonce) = nonce.and_then(|nonce| HeaderValue::from_str(&nonce).ok()) {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}
