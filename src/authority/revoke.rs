//! RFC 7009 token revocation. The entry is written to the store before the
//! answer says it happened, and lives exactly as long as the token (or, for
//! a refresh token, the session) it covers.

use super::{Authority, Refusal};
use crate::clients::{Client, Permission};
use crate::revocations::{Covers, Revocation};
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
            if claims.session_exp <= now.timestamp() {
                return Ok(());
            }
            tracing::info!(sid = %claims.sid, client = %client.id, "session ended by refresh-token revocation");
            return self
                .record(vec![
                    Revocation::new(Covers::Session { sid: claims.sid }, claims.session_exp),
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
                if claims.exp <= now.timestamp() {
                    return Ok(());
                }
                tracing::info!(jti = %claims.jti, client = %client.id, "access token revoked");
                self.record(vec![Revocation::new(Covers::Token { jti: claims.jti }, claims.exp)]).await
            }
            Err(_) => Ok(()),
        }
    }
}
