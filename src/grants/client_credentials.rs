//! `grant_type=client_credentials` (RFC 6749 §4.4): a service token for a
//! confidential client, `sub` = its own id, within its configured
//! audiences and scopes. No refresh token, no session — so a service token
//! is the one with `sub == client_id` and no `sid`. `resource` (RFC 8707)
//! and `audience` name the audiences wanted, each one the client's, or the
//! request is refused with `invalid_target`; none named: all of them. With
//! a DPoP proof the token is bound to its key (`jkt`).

use crate::authority::{Authority, Refusal};
use crate::clients::Client;
use crate::sessions::request::{self, RequestedAudience};
use crate::tokens::access::Audience;
use crate::tokens::issue::{AccessGrant, IssuedAccessToken};
use crate::tokens::random_id;

pub fn grant(
    authority: &Authority,
    client: &Client,
    scope: Option<&str>,
    targets: &[&str],
    jkt: Option<String>,
) -> Result<IssuedAccessToken, Refusal> {
    if client.is_public() {
        return Err(Refusal::Forbidden("public clients cannot use client_credentials".into()));
    }
    let requested = (!targets.is_empty()).then(|| RequestedAudience::Many(targets.iter().map(|t| t.to_string()).collect()));
    let aud = request::audience(requested, client, &authority.issuer)?;
    let scope = request::scope(scope, client)?;
    let grant = AccessGrant {
        sub: client.id.clone(),
        client_id: client.id.clone(),
        aud: Audience::from_list(aud),
        scope,
        jti: random_id(),
        sid: None,
        auth_time: None,
        custom: Default::default(),
        iat: authority.clock.unix(),
        lifetime: client.access_ttl,
        not_after: None,
        jkt,
    };
    authority.minter.access_token(grant).map_err(|_| Refusal::KeysUnavailable)
}
