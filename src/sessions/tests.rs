//! The session rules end to end over a memory store, with a manual clock:
//! every rotation outcome, both lifetimes, scope narrowing, cross-client
//! use, logout, logout everywhere, the session limit, introspection.

use super::*;
use crate::app::{App, Options};
use crate::clock::ManualClock;
use crate::config::{Config, StoreConfig};
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Harness {
    pub(super) tokens: Authority,
    pub(super) _app: App,
    pub(super) clients: ClientRegistry,
    pub(super) clock: Arc<ManualClock>,
    pub(super) _dir: tempfile::TempDir,
}

const CONFIG: &str = r#"
[tokens]
access_ttl = "10m"
refresh_idle_ttl = "1d"
session_max_age = "3d"
reuse_grace = "10s"

[http]
request_timeout = "5s"

[[clients]]
id = "backend"
secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
permissions = ["sessions", "revoke_sessions", "introspect"]

[[clients]]
id = "web"
public = true
audiences = ["api"]
scopes = ["read", "write"]

[[clients]]
id = "mobile"
public = true
max_sessions_per_subject = 2
"#;

pub(super) async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let mut config = Config::load_with_env(Some(&path), &[]).unwrap();
    config.issuer = Some("https://issuer.test".into());
    config.keys_dir = dir.path().join("keys");
    config.store = StoreConfig::Memory;
    let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
    let clients = config.clients.clone();
    let app = App::build(config, Options { clock: clock.clone(), ..Options::default() }).await.unwrap();
    Harness { tokens: app.state().authority.clone(), _app: app, clients, clock, _dir: dir }
}

impl Harness {
    pub(super) fn client(&self, id: &str) -> &Client {
        self.clients.get(id).unwrap()
    }

    pub(super) async fn session(&self, sub: &str, client: &str) -> Pair {
        let request = SessionRequest {
            sub: sub.into(),
            client_id: Some(client.into()),
            aud: None,
            resource: None,
            scope: None,
            claims: None,
            code_challenge: None,
            code_challenge_method: None,
            dpop_jkt: None,
        };
        match create(&self.tokens, self.client("backend"), &self.clients, request, &|_| None).await.unwrap() {
            SessionStarted::Tokens(issued) => issued.into(),
            SessionStarted::Code(_) => panic!("no challenge was sent"),
        }
    }

    pub(super) async fn refresh(&self, client: &str, token: &str) -> Result<Pair, Refusal> {
        crate::grants::refresh_token::grant(&self.tokens, self.client(client), token, None, &[], None).await.map(Pair::from)
    }

    pub(super) async fn active(&self, token: &str) -> bool {
        self.tokens.introspect(token).await.unwrap().active
    }

    pub(super) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A session's tokens as a test holds them.
#[derive(Debug)]
pub(super) struct Pair {
    pub(super) access_token: String,
    pub(super) refresh_token: String,
    pub(super) session_id: String,
    pub(super) scope: Option<String>,
}

impl From<IssuedSession> for Pair {
    fn from(issued: IssuedSession) -> Self {
        Self {
            access_token: issued.access_token,
            refresh_token: issued.refresh_token.expect("refresh token in the body"),
            session_id: issued.session_id,
            scope: issued.scope,
        }
    }
}

pub(super) fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The claims inside `rt1.<kid>.<claims>.<mac>`.
pub(super) fn refresh_claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(2).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn invalid_grant(result: Result<Pair, Refusal>) -> String {
    match result {
        Err(Refusal::InvalidGrant(message)) => message,
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

#[tokio::test]
async fn first_use_rotates_within_the_same_session() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    h.advance(Duration::from_secs(60));
    let child = h.refresh("web", &session.refresh_token).await.unwrap();
    assert_ne!(child.refresh_token, session.refresh_token);
    assert_eq!(child.session_id, session.session_id);
    let access = claims_of(&child.access_token);
    assert_eq!(access["sid"], session.session_id.as_str());
    assert_eq!(access["iat"], 1_800_000_060);
    assert_eq!(access["auth_time"], 1_800_000_000, "auth_time is the login, not the refresh");
    assert_eq!(refresh_claims_of(&session.refresh_token)["generation"], 0);
    assert_eq!(refresh_claims_of(&child.refresh_token)["generation"], 1);
    assert_eq!(refresh_claims_of(&child.refresh_token)["sid"], session.session_id.as_str());
    assert!(h.active(&child.refresh_token).await);
    assert!(!h.active(&session.refresh_token).await, "a consumed refresh token is no longer active");
}

#[tokio::test]
async fn replay_inside_the_grace_window_returns_the_same_child() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let first = h.refresh("web", &session.refresh_token).await.unwrap();
    h.advance(Duration::from_secs(9));
    let again = h.refresh("web", &session.refresh_token).await.unwrap();
    assert_eq!(again.refresh_token, first.refresh_token, "same child refresh token");
    let (a, b) = (claims_of(&first.access_token), claims_of(&again.access_token));
    assert_eq!(a, b, "same access-token claims, jti included");
    // The family did not branch: the child still works.
    assert!(h.refresh("web", &first.refresh_token).await.is_ok());
}

#[tokio::test]
async fn replay_after_the_grace_window_revokes_the_whole_session() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let child = h.refresh("web", &session.refresh_token).await.unwrap();
    h.advance(Duration::from_secs(11));
    let message = invalid_grant(h.refresh("web", &session.refresh_token).await);
    assert!(message.contains("already used"), "{message}");
    // Every token of the session is dead: the child refresh and its access token.
    assert!(invalid_grant(h.refresh("web", &child.refresh_token).await).contains("session was ended"));
    assert!(!h.active(&child.access_token).await);
    assert!(!h.active(&session.access_token).await);
    // Other sessions of the same subject are untouched.
    let other = h.session("alice", "web").await;
    assert!(h.refresh("web", &other.refresh_token).await.is_ok());
}

#[tokio::test]
async fn idle_lifetime_ends_an_unused_refresh_token() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    h.advance(Duration::from_secs(86_400 - 1));
    let child = h.refresh("web", &session.refresh_token).await.unwrap();
    // Rotation resets the idle clock.
    h.advance(Duration::from_secs(86_400 - 1));
    let grandchild = h.refresh("web", &child.refresh_token).await.unwrap();
    h.advance(Duration::from_secs(86_400));
    assert!(invalid_grant(h.refresh("web", &grandchild.refresh_token).await).contains("expired"));
}

#[tokio::test]
async fn absolute_lifetime_ends_the_session_however_active_it_is() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let mut token = session.refresh_token;
    for _ in 0..3 {
        h.advance(Duration::from_secs(86_400 - 60));
        let next = h.refresh("web", &token).await.unwrap();
        // Never past the session's end.
        assert!(claims_of(&next.access_token)["exp"].as_i64().unwrap() <= 1_800_000_000 + 3 * 86_400);
        token = next.refresh_token;
    }
    h.advance(Duration::from_secs(400));
    assert!(invalid_grant(h.refresh("web", &token).await).contains("maximum age"));
}

#[tokio::test]
async fn scope_may_be_narrowed_never_widened() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    assert_eq!(session.scope.as_deref(), Some("read write"));
    let narrowed = Pair::from(
        crate::grants::refresh_token::grant(&h.tokens, h.client("web"), &session.refresh_token, Some("read"), &[], None).await.unwrap(),
    );
    assert_eq!(claims_of(&narrowed.access_token)["scope"], "read");
    // The refresh token keeps the scope originally granted.
    let widened_back = h.refresh("web", &narrowed.refresh_token).await.unwrap();
    assert_eq!(widened_back.scope.as_deref(), Some("read write"));
    let wider =
        crate::grants::refresh_token::grant(&h.tokens, h.client("web"), &widened_back.refresh_token, Some("read admin"), &[], None).await;
    assert!(matches!(wider, Err(Refusal::InvalidScope(_))), "{wider:?}");
}

#[tokio::test]
async fn a_token_presented_by_another_client_is_refused() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    assert!(invalid_grant(h.refresh("mobile", &session.refresh_token).await).contains("another client"));
    // The refusal consumed nothing: the rightful client can still use it.
    assert!(h.refresh("web", &session.refresh_token).await.is_ok());
}

#[tokio::test]
async fn a_tampered_or_foreign_refresh_token_is_refused() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let mut tampered = session.refresh_token.clone();
    tampered.pop();
    tampered.push(if session.refresh_token.ends_with('A') { 'B' } else { 'A' });
    invalid_grant(h.refresh("web", &tampered).await);
    invalid_grant(h.refresh("web", &session.access_token).await);
    invalid_grant(h.refresh("web", "rt1.nothing.here.at-all").await);
}

#[tokio::test]
async fn logout_ends_one_session() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let other = h.session("alice", "web").await;
    end_session(&h.tokens, h.client("backend"), &session.session_id).await.unwrap();
    assert!(!h.active(&session.access_token).await);
    assert!(invalid_grant(h.refresh("web", &session.refresh_token).await).contains("session was ended"));
    assert!(h.active(&other.access_token).await);
}

#[tokio::test]
async fn logout_everywhere_ends_every_earlier_session_of_the_subject_only() {
    let h = harness().await;
    let one = h.session("alice", "web").await;
    let two = h.session("alice", "mobile").await;
    let bob = h.session("bob", "web").await;
    h.advance(Duration::from_secs(5));
    end_subject(&h.tokens, h.client("backend"), "alice").await.unwrap();
    for token in [&one.access_token, &two.access_token, &one.refresh_token, &two.refresh_token] {
        assert!(!h.active(token).await);
    }
    assert!(h.active(&bob.access_token).await);
    // A login after the logout (and the tolerated clock skew, 2 s) works.
    h.advance(Duration::from_secs(3));
    let fresh = h.session("alice", "web").await;
    assert!(h.active(&fresh.access_token).await);
    assert!(h.refresh("web", &fresh.refresh_token).await.is_ok());
}

#[tokio::test]
async fn the_session_limit_ends_the_oldest_session() {
    let h = harness().await;
    let first = h.session("carol", "mobile").await;
    h.advance(Duration::from_secs(1));
    let second = h.session("carol", "mobile").await;
    h.advance(Duration::from_secs(1));
    let third = h.session("carol", "mobile").await;
    assert!(!h.active(&first.access_token).await, "the oldest went");
    assert!(h.active(&second.access_token).await && h.active(&third.access_token).await);
    let listed: Vec<String> = sessions_of(&h.tokens, "carol").await.unwrap().into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, [second.session_id.clone(), third.session_id.clone()]);
    // Logging one out removes it from the list.
    end_session(&h.tokens, h.client("backend"), &second.session_id).await.unwrap();
    let listed: Vec<String> = sessions_of(&h.tokens, "carol").await.unwrap().into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, [third.session_id]);
    // Clients without a limit keep no index.
    h.session("carol", "web").await;
    assert_eq!(sessions_of(&h.tokens, "carol").await.unwrap().len(), 1);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session_and_only_owners_may() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let result = h.tokens.revoke_token(h.client("mobile"), &session.refresh_token).await;
    assert!(matches!(result, Err(Refusal::Forbidden(_))), "{result:?}");
    assert!(h.active(&session.access_token).await);
    h.tokens.revoke_token(h.client("web"), &session.refresh_token).await.unwrap();
    assert!(!h.active(&session.access_token).await);
    // Unknown tokens are accepted silently (RFC 7009 §2.2).
    h.tokens.revoke_token(h.client("web"), "not-a-token").await.unwrap();
}

#[tokio::test]
async fn revoking_an_access_token_leaves_the_session() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    h.tokens.revoke_token(h.client("web"), &session.access_token).await.unwrap();
    assert!(!h.active(&session.access_token).await);
    let child = h.refresh("web", &session.refresh_token).await.unwrap();
    assert!(h.active(&child.access_token).await);
}

#[tokio::test]
async fn introspection_honours_expiry_with_leeway() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    let answer = h.tokens.introspect(&session.access_token).await.unwrap();
    assert!(answer.active);
    assert_eq!(answer.sub.as_deref(), Some("alice"));
    assert_eq!(answer.token_type, Some("Bearer"));
    assert_eq!(answer.sid.as_deref(), Some(session.session_id.as_str()));
    // 10 minutes of life plus 30 s of leeway.
    h.advance(Duration::from_secs(600 + 29));
    assert!(h.active(&session.access_token).await);
    h.advance(Duration::from_secs(1));
    assert!(!h.active(&session.access_token).await);
    assert_eq!(h.tokens.introspect("garbage").await.unwrap(), crate::authority::introspect::Introspection::inactive());
}

#[tokio::test]
async fn revocation_entries_are_purged_when_their_tokens_are_dead() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    end_session(&h.tokens, h.client("backend"), &session.session_id).await.unwrap();
    h.refresh("web", &h.session("bob", "web").await.refresh_token).await.unwrap();
    assert_eq!(h.tokens.purge_expired().await.unwrap(), 0);
    // The consumption record lives until its token's expiry (a day), the
    // logout entry until every token the session could still hold has
    // expired (the refresh idle lifetime, a day, plus leeway), not until the
    // session's end (3 days). Each is kept a day past that, so a clock step
    // forward and back revives nothing.
    h.advance(Duration::from_secs(2 * 86_400 - 60));
    assert_eq!(h.tokens.purge_expired().await.unwrap(), 0, "kept through the safety margin");
    h.advance(Duration::from_secs(120));
    assert_eq!(h.tokens.purge_expired().await.unwrap(), 2, "the consumption record and the logout entry");
}
