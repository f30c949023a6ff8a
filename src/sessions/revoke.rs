//! Revocation: RFC 7009 token revocation, logout of one session, logout
//! everywhere, and the session index. Every entry is written to the store
//! before the answer says it happened, and lives exactly as long as the
//! tokens it covers.

use super::{GrantError, TokenService};
use crate::clients::{Client, Permission};
use crate::revocations::{Covers, Revocation};
use crate::store::SessionRecord;
use crate::tokens::{access, refresh};

impl TokenService {
    /// RFC 7009: revoke an access or refresh token presented by `client`.
    /// A refresh token ends its whole session (every access token of the
    /// grant with it). Tokens that are invalid, expired or not tessera's are
    /// ignored, as §2.2 asks. A client may revoke only its own tokens unless
    /// it holds `revoke_sessions`.
    pub async fn revoke_token(&self, client: &Client, token: &str) -> Result<(), GrantError> {
        let now = self.clock.now();
        let view = self.keyring.view();
        let may_revoke = |owner: &str| owner == client.id || client.may(Permission::RevokeSessions);
        if let Ok(claims) = refresh::open(token, &view, now) {
            if !may_revoke(&claims.client_id) {
                return Err(GrantError::Forbidden("the token was not issued to this client".into()));
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
                    return Err(GrantError::Forbidden("the token was not issued to this client".into()));
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

    /// Logout: every token of session `sid` is dead.
    pub async fn end_session(&self, sid: &str) -> Result<(), GrantError> {
        if sid.is_empty() || sid.len() > 128 {
            return Err(GrantError::field("sid", "must be 1 to 128 characters"));
        }
        let until = self.clock.unix() + self.policy.session_max_age.as_secs() as i64;
        tracing::info!(sid = %sid, "session ended");
        self.record(vec![Revocation::new(Covers::Session { sid: sid.to_string() }, until)]).await
    }

    /// Logout everywhere: every token of `sub` issued up to now is dead.
    pub async fn end_subject(&self, sub: &str) -> Result<i64, GrantError> {
        let sub = super::request::subject(sub)?;
        let now = self.clock.unix();
        let until = now + self.policy.session_max_age.as_secs() as i64;
        tracing::info!(sub = %sub, "every session of the subject ended");
        self.record(vec![Revocation::new(Covers::Subject { sub, before: now }, until)]).await?;
        Ok(now)
    }

    /// The live sessions of `sub` in the session index (only clients with
    /// `max_sessions_per_subject` are indexed).
    pub async fn sessions_of(&self, sub: &str) -> Result<Vec<SessionRecord>, GrantError> {
        let sub = super::request::subject(sub)?;
        let now = self.clock.unix();
        let sessions = self.store.sessions_of(&sub).await.map_err(|_| GrantError::StoreUnavailable)?;
        let mut live: Vec<SessionRecord> = sessions
            .into_iter()
            .filter(|s| s.expires_at > now)
            .filter(|s| {
                let facts = crate::revocations::TokenFacts { jti: None, sid: Some(&s.sid), sub: &s.sub, iat: s.created_at, kid: None };
                self.revocations.check(facts).is_none()
            })
            .collect();
        live.sort_by_key(|s| s.created_at);
        Ok(live)
    }

    /// Delete what has expired, in the store and the mirror, and pick up
    /// anything the mirror is missing (a belt to the braces of `record`).
    pub async fn purge_expired(&self) -> Result<usize, GrantError> {
        let now = self.clock.unix();
        self.revocations.purge(now);
        let missed = self.store.revocations_since(self.revocations.watermark()).await.map_err(|_| GrantError::StoreUnavailable)?;
        self.revocations.apply(&missed);
        self.store.purge_expired(now).await.map_err(|_| GrantError::StoreUnavailable)
    }
}
