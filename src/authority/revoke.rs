//! RFC 7009 token revocation. The entry is written to the store before the
//! answer says it happened, and lives exactly as long as the token (or, for
//! a refresh token, the session's tokens) it covers. A token already
//! covered by the list writes nothing; each write counts against the
//! client's `revocation_quota` (per session for a public client).

use super::{Authority, Refusal};
use crate::clients::{Client, Permission};
use crate::revocations::{Covers, Revocation, TokenFacts};
use crate::tokens::{access, refresh};

impl Authority {
    /// RFC 7009: revoke an access or refresh token presented by `client`.
    /// A refresh token ends its whole session (every access token of the
    /// grant with it). Tokens that are invalid, expired or not tessera's are
    /// ignored, as §2.2 asks. A client may revoke only its own tokens unless
    /// it holds `revoke_sessions`.
    pub async fn revoke_token(&self, client: &Client, token: &str) -> Result<(), Refusal> {
        let now = self.clock.now();
        let view = self.keyring.view();
        let may_revoke = |owner: &str| owner == client.id || client.may(Permission::RevokeSessions);
        if let Ok(claims) = refresh::open(token, &view, now) {
            if !may_revoke(&claims.client_id) {
                return Err(Refusal::Forbidden("the token was not issued to this client".into()));
            }
            if claims.session_exp <= now.timestamp() || self.already_revoked(&claims.jti, Some(&claims.sid), &claims.sub, claims.iat) {
                return Ok(());
            }
            self.within_quota(client, Some(&claims.sid))?;
            tracing::info!(sid = %claims.sid, client = %client.id, "session ended by refresh-token revocation");
            let until = self.entry_until(Some(claims.session_exp));
            return self
                .record(vec![
                    Revocation::new(Covers::Session { sid: claims.sid }, until),
                    Revocation::new(Covers::Token { jti: claims.jti }, claims.exp.min(claims.session_exp)),
                ])
                .await;
        }
        // Expired access tokens need no entry: accept any age here, with the
        // signature still checked, and skip those already dead.
        match access::check(token, &view, &self.issuer, i64::MAX / 4, now) {
            Ok((claims, _)) => {
                if !may_revoke(&claims.client_id) {
                    return Err(Refusal::Forbidden("the token was not issued to this client".into()));
                }
                if claims.exp <= now.timestamp() || self.already_revoked(&claims.jti, claims.sid.as_deref(), &claims.sub, claims.iat) {
                    return Ok(());
                }
                self.within_quota(client, Some(claims.sid.as_deref().unwrap_or(&claims.jti)))?;
                tracing::info!(jti = %claims.jti, client = %client.id, "access token revoked");
                self.record(vec![Revocation::new(Covers::Token { jti: claims.jti }, claims.exp)]).await
            }
            Err(_) => Ok(()),
        }
    }
}

impl Authority {
    /// Whether the list already kills a token (nothing more to write).
    fn already_revoked(&self, jti: &str, sid: Option<&str>, sub: &str, iat: i64) -> bool {
        self.revocations.check(TokenFacts { jti: Some(jti), sid, sub, iat, kid: None }).is_some()
    }
}
