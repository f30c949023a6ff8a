//! A wall clock stepped forward and back, in-process with a manual clock
//! and the real embedded store: the purger deletes nothing that still
//! covers a live token, so no revoked session revives.

use super::*;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use tessera::clock::{Clock, ManualClock};
use tower::ServiceExt;

struct InProcess {
    router: axum::Router,
    clock: Arc<ManualClock>,
    app: tessera::app::App,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, config()).unwrap();
        let mut config = tessera::config::Config::load_with_env(Some(&path), &[]).unwrap();
        config.issuer = Some("http://tessera.test".into());
        config.keys_dir = dir.path().join("keys");
        config.store = tessera::config::StoreConfig::Embedded { path: dir.path().join("data/tessera.redb") };
        let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
        let options = tessera::app::Options { clock: clock.clone(), purge_every: Duration::from_millis(20), ..Default::default() };
        let app = tessera::app::App::build(config, options).await.unwrap();
        Self { router: app.router(), clock, app, _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, basic: bool, form: Option<&[(&str, &str)]>, json: Option<Value>) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if basic {
            request = request.header(header::AUTHORIZATION, crate::helpers::basic(BACKEND_ID, BACKEND_SECRET));
        }
        let body = match (form, json) {
            (Some(form), _) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form_body(form.iter().copied()))
            }
            (None, Some(json)) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            (None, None) => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn session(&self, sub: &str) -> Value {
        let (status, body) = self.call("POST", "/v1/sessions", true, None, Some(json!({"sub": sub, "client_id": "web"}))).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn refresh(&self, token: &str) -> u16 {
        self.call(
            "POST",
            "/oauth2/token",
            false,
            Some(&[("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token)]),
            None,
        )
        .await
        .0
    }

    async fn active(&self, token: &str) -> bool {
        let (status, body) = self.call("POST", "/oauth2/introspect", true, Some(&[("token", token)]), None).await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    }

    /// Let the purger (every 20 ms) run a few times.
    async fn let_the_purger_run(&self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_forward_and_back_revives_no_revoked_session() {
    let service = InProcess::start().await;
    let start = service.clock.now();
    let ended = service.session("alice").await;
    let (status, _) = service.call("DELETE", &format!("/v1/sessions/{}", ended["session_id"].as_str().unwrap()), true, None, None).await;
    assert_eq!(status, 204);
    let rotated = service.session("bob").await;
    let consumed = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(service.refresh(consumed).await, 200);
    let revoked = service.session("carol").await;
    let access = revoked["access_token"].as_str().unwrap();
    let (status, _) = service.call("POST", "/oauth2/revoke", false, Some(&[("token", access), ("client_id", "web")]), None).await;
    assert_eq!(status, 200);
    assert!(!service.active(access).await);

    // A bad time source steps the clock 100 days ahead for a while: every
    // entry has "expired" by it. The purger sees the wall clock outrun the
    // monotonic one and skips.
    service.clock.advance(Duration::from_secs(100 * 86_400));
    service.let_the_purger_run().await;
    // Corrected.
    service.clock.set(start + chrono::Duration::minutes(2));
    service.let_the_purger_run().await;
    assert_eq!(service.refresh(ended["refresh_token"].as_str().unwrap()).await, 400, "the logged-out session stays ended");
    assert_eq!(service.refresh(consumed).await, 400, "the consumed token is still known: a replay is reuse");
    assert!(!service.active(access).await, "the revoked access token stays revoked");

    // A purge an hour later (past the revoked access token's ten minutes)
    // keeps every entry a day past its end, so a step back still finds it.
    service.clock.set(start + chrono::Duration::minutes(70));
    let authority = &service.app.state().authority;
    assert_eq!(authority.purge_expired().await.unwrap(), 0, "nothing is a day past its end");
    service.clock.set(start + chrono::Duration::minutes(5));
    assert!(!service.active(access).await, "still revoked after an hour-long step back");
    assert_eq!(service.refresh(ended["refresh_token"].as_str().unwrap()).await, 400);
}
