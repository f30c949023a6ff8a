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
            // One session entry covers the token presented too: it lives
            // at least as long as that token could (its idle expiry may lie
            // beyond `entry_until` if the idle lifetime was shortened since).
            let until = self.entry_until(Some(claims.session_exp)).max(claims.exp.min(claims.session_exp));
            return self.record(vec![Revocation::new(Covers::Session { sid: claims.sid }, until)]).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::TokenFacts;
    use crate::tokens::access::Audience;
    use std::time::Duration;

    /// A refresh token issued under a longer idle lifetime than the one in
    /// force when it is revoked: the single session entry written must
    /// still outlive it, or the token would revive when the entry expires.
    #[tokio::test]
    async fn the_session_entry_of_a_revoked_refresh_token_outlives_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::authority::test_app(dir.path(), crate::config::StoreConfig::Memory).await;
        let mut authority = app.state().authority.clone();
        let now = authority.clock.now();
        // Issued under a 30-day idle lifetime; the configuration now says an hour.
        authority.policy.refresh_idle_ttl = Duration::from_secs(3_600);
        authority.policy.longest_access_ttl = Duration::from_secs(600);
        let claims = refresh::RefreshClaims {
            iss: "https://issuer.test".into(),
            jti: "rt-jti".into(),
            sid: "sid-1".into(),
            sub: "alice".into(),
            client_id: "web".into(),
            generation: 3,
            scope: None,
            aud: Audience::One("api".into()),
            custom: Default::default(),
            iat: now.timestamp(),
            exp: now.timestamp() + 30 * 86_400,
            session_exp: now.timestamp() + 90 * 86_400,
            auth_time: None,
            jkt: None,
        };
        let token = refresh::seal(authority.keyring.view().active_mac(now).unwrap(), &claims);
        let web = crate::clients::Client::public("web", Duration::from_secs(600));
        authority.revoke_token(&web, &token).await.unwrap();

        let entries = authority.store.revocations_since(0).await.unwrap();
        assert_eq!(entries.len(), 1, "one session entry covers the session and the token presented: {entries:?}");
        assert_eq!(entries[0].covers, Covers::Session { sid: "sid-1".into() });
        assert!(entries[0].expires_at >= claims.exp, "entry until {} < token exp {}", entries[0].expires_at, claims.exp);
        let facts = TokenFacts { jti: Some("rt-jti"), sid: Some("sid-1"), sub: "alice", iat: claims.iat, kid: None };
        assert!(authority.revocations.check(facts).is_some());
    }
}
