//! The grants of the token endpoint (RFC 6749 §4–§6), one file each, behind
//! one dispatcher. Adding a grant is one new file here plus one arm in
//! [`dispatch`] (and its name in [`GRANT_TYPES`], which the metadata
//! publishes).
//!
//! The HTTP layer has already authenticated the client and resolved what
//! only HTTP knows (a refresh token carried in a cookie, the CSRF checks,
//! the stateless checks on a DPoP proof); a grant decides, records and
//! mints over an [`Authority`]. Every grant binds what it issues to the
//! proof's key ([`crate::dpop::binding`]) and records the proof as used
//! just before its one atomic step.

pub mod authorization_code;
pub mod client_credentials;
pub mod narrowing;
pub mod refresh_token;

use crate::authority::{Authority, Refusal};
use crate::clients::Client;
use crate::dpop::{self, VerifiedProof};
use crate::metrics::Grant;
use crate::tokens::issue::{IssuedAccessToken, IssuedSession};

/// Every `grant_type` the token endpoint accepts, as the metadata lists them.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

/// The grant-specific parameters of a token request.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub grant_type: &'a str,
    pub scope: Option<&'a str>,
    /// A space-separated audience request.
    pub audience: Option<&'a str>,
    /// RFC 8707 resource indicators (the parameter may repeat).
    pub resource: &'a [&'a str],
    /// From the form or, for a cookie client, the cookie.
    pub refresh_token: Option<&'a str>,
    pub code: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// The request's DPoP proof, past its stateless checks (RFC 9449 §5).
    pub dpop: Option<&'a VerifiedProof>,
}

/// What a grant issued.
#[derive(Debug, Clone)]
pub enum Issued {
    /// A session's pair (refresh, authorization code).
    Session(IssuedSession),
    /// An access token alone (client credentials).
    AccessToken(IssuedAccessToken),
}

/// Why the dispatcher refused before any grant ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("grant_type {0:?} is not supported")]
    Unsupported(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Run the grant the request names for `client`.
pub async fn dispatch(authority: &Authority, client: &Client, request: TokenRequest<'_>) -> Result<Issued, DispatchError> {
    use DispatchError::Missing;
    // `audience` and `resource` both name the audiences wanted (RFC 8693
    // §2.1 lets them be used together); every grant honours or refuses them.
    let mut targets: Vec<&str> = request.audience.map(|a| a.split(' ').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    targets.extend(request.resource.iter().copied());
    match request.grant_type {
        "client_credentials" => {
            let jkt = dpop::binding("client", None, request.dpop, client.require_dpop)?;
            if let Some(proof) = request.dpop {
                dpop::remember(authority.store.as_ref(), proof).await?;
            }
            let issued = client_credentials::grant(authority, client, request.scope, &targets, jkt)?;
            authority.metrics.issued(Grant::ClientCredentials);
            tracing::info!(client = %client.id, "service token issued");
            Ok(Issued::AccessToken(issued))
        }
        "refresh_token" => {
            let token = request.refresh_token.ok_or(Missing("refresh_token"))?;
            Ok(Issued::Session(refresh_token::grant(authority, client, token, request.scope, &targets, request.dpop).await?))
        }
        "authorization_code" => {
            let code = request.code.ok_or(Missing("code"))?;
            let issued = authorization_code::grant(authority, client, code, request.code_verifier, &targets, request.dpop).await?;
            tracing::info!(client = %client.id, sid = %issued.session_id, "session handed over by a one-time code");
            Ok(Issued::Session(issued))
        }
        other => Err(DispatchError::Unsupported(other.chars().take(64).collect())),
    }
}
