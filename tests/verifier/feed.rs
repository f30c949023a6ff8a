//! The verifier following the real tessera's revocation feed: a logout
//! reaches it within a second, a revocation made while it was cut off is
//! caught up, and the signed document is polled when the stream cannot be
//! opened. For the last two the verifier reaches tessera through a proxy
//! the test can break; tessera's issuer is the proxy's URL, so discovery,
//! JWKS and feed all pass through it.

use crate::common::*;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tessera_verifier::{BuildError, FetchError, RevocationKind, Verifier, VerifyError};
use tokio::sync::watch;

/// A breakable HTTP proxy in front of tessera.
struct Proxy {
    base: String,
    upstream: OnceLock<String>,
    /// Everything answers 503 and open streams end.
    down: AtomicBool,
    /// Only the event stream answers 503.
    refuse_stream: AtomicBool,
    /// Bumped to end every open response stream.
    cut: watch::Sender<u64>,
    /// Path, query and Last-Event-ID of each request that reached tessera.
    forwarded: Mutex<Vec<(String, Option<String>)>>,
}

impl Proxy {
    async fn start() -> Arc<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Proxy {
            base: format!("http://{}", listener.local_addr().unwrap()),
            upstream: OnceLock::new(),
            down: AtomicBool::new(false),
            refuse_stream: AtomicBool::new(false),
            cut: watch::channel(0).0,
            forwarded: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        proxy
    }

    /// Start tessera with this proxy's URL as its issuer.
    async fn start_tessera(&self, config: &str) -> TestServer {
        let server = TestServer::start_with(config, &[("TESSERA_ISSUER", &self.base)]).await;
        self.upstream.set(server.base.clone()).unwrap();
        server
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    fn forwarded(&self) -> Vec<(String, Option<String>)> {
        self.forwarded.lock().unwrap().clone()
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let refused =
        proxy.down.load(Ordering::SeqCst) || (proxy.refuse_stream.load(Ordering::SeqCst) && path.starts_with("/v1/revocations/stream"));
    if refused {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let last_event_id = request.headers().get("last-event-id").map(|v| v.to_str().unwrap().to_string());
    proxy.forwarded.lock().unwrap().push((path.clone(), last_event_id));
    let mut upstream = reqwest::Client::new().get(format!("{}{path}", proxy.upstream.get().unwrap()));
    for (name, value) in request.headers() {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream.send().await.unwrap();
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    // Relay chunk by chunk (the event stream never ends by itself) until cut.
    let chunks = futures_util::stream::unfold((upstream, proxy.cut.subscribe()), |(mut upstream, mut cut)| async move {
        tokio::select! {
            _ = cut.changed() => None,
            chunk = upstream.chunk() => chunk.transpose().map(|chunk| (chunk, (upstream, cut))),
        }
    });
    response.body(Body::from_stream(chunks)).unwrap()
}

async fn session(server: &TestServer) -> (String, String) {
    let response = server.create_session(json!({"sub": "alice", "client_id": "web"})).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), body["session_id"].as_str().unwrap().to_string())
}

async fn end_session(server: &TestServer, sid: &str) {
    let response = reqwest::Client::new()
        .delete(server.url(&format!("/v1/sessions/{sid}")))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn verifier(issuer: &str) -> Verifier {
    Verifier::builder().issuer(issuer).audience("orders-api").build().await.unwrap()
}

/// Wait until the token is refused as revoked; how long that took.
async fn until_revoked(verifier: &Verifier, token: &str, kind: RevocationKind, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match verifier.verify_cached(token) {
            Err(VerifyError::Revoked(found)) if found == kind => return started.elapsed(),
            Ok(_) => assert!(started.elapsed() < within, "still accepted after {within:?}"),
            Err(other) => panic!("refused for another reason: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_logout_reaches_the_verifier_within_a_second() {
    let server = TestServer::start().await;
    let verifier = verifier(&server.base).await;
    let (token, sid) = session(&server).await;
    assert!(verifier.verify(&token).await.is_ok());
    end_session(&server, &sid).await;
    let took = until_revoked(&verifier, &token, RevocationKind::Session, Duration::from_secs(1)).await;
    println!("logout reached the verifier {took:?} after DELETE answered");
    let (other_token, _) = session(&server).await;
    assert!(verifier.verify(&other_token).await.is_ok(), "another session is untouched");
}

#[tokio::test]
async fn a_revocation_made_while_disconnected_is_caught_up_on_reconnect() {
    let proxy = Proxy::start().await;
    let server = proxy.start_tessera(&default_config()).await;
    let verifier = verifier(&proxy.base).await;
    // One entry first, so the cursor to resume from is not zero.
    let (ended, sid) = session(&server).await;
    end_session(&server, &sid).await;
    until_revoked(&verifier, &ended, RevocationKind::Session, Duration::from_secs(1)).await;

    let (token, _) = session(&server).await;
    proxy.go_down();
    let revoked = server.form("/oauth2/revoke", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", &token)]).await;
    assert_eq!(revoked.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(verifier.verify_cached(&token).is_ok(), "cut off, the verifier cannot know yet");

    let requests_before = proxy.forwarded().len();
    proxy.down.store(false, Ordering::SeqCst);
    until_revoked(&verifier, &token, RevocationKind::Token, Duration::from_secs(5)).await;
    // And it resumes the stream from its cursor, not from the start.
    let resumed = || {
        proxy.forwarded()[requests_before..]
            .iter()
            .any(|(path, last_event_id)| path == "/v1/revocations/stream" && last_event_id.as_deref().is_some_and(|id| id != "0"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !resumed() {
        assert!(Instant::now() < deadline, "the stream was not resumed: {:?}", proxy.forwarded());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_signed_document_is_polled_when_the_stream_cannot_be_opened() {
    let proxy = Proxy::start().await;
    proxy.refuse_stream.store(true, Ordering::SeqCst);
    let server = proxy.start_tessera(&default_config()).await;
    let verifier = verifier(&proxy.base).await;
    let (token, _) = session(&server).await;
    assert!(verifier.verify(&token).await.is_ok());
    let logout_everywhere = server.form("/v1/subjects/alice/revoke", Some((BACKEND_ID, BACKEND_SECRET)), &[]).await;
    assert!(logout_everywhere.status().is_success(), "{}", logout_everywhere.status());
    until_revoked(&verifier, &token, RevocationKind::Subject, Duration::from_secs(3)).await;
    let forwarded = proxy.forwarded();
    assert!(forwarded.iter().any(|(path, _)| path.starts_with("/v1/revocations?after=")), "{forwarded:?}");
}

#[tokio::test]
async fn a_feed_the_verifier_cannot_read_fails_the_build() {
    let server = TestServer::start_with(&config_with_feed("public = false"), &[]).await;
    let error = Verifier::builder().issuer(&server.base).audience("orders-api").build().await.unwrap_err();
    assert!(matches!(&error, BuildError::RevocationFeed(FetchError::Status { status: 401, .. })), "{error}");
    let without_feed = Verifier::builder().issuer(&server.base).audience("orders-api").revocation_feed(false).build().await;
    assert!(without_feed.is_ok());
}

#[tokio::test]
async fn a_private_feed_is_followed_with_client_credentials() {
    let server = TestServer::start_with(&config_with_feed("public = false"), &[]).await;
    let verifier = Verifier::builder()
        .issuer(&server.base)
        .audience("backend-api")
        .feed_credentials(BACKEND_ID, BACKEND_SECRET)
        .build()
        .await
        .expect("the feed is readable with credentials");
    let session: serde_json::Value = server.create_session(serde_json::json!({"sub": "private-feed"})).await.json().await.unwrap();
    let token = session["access_token"].as_str().unwrap();
    verifier.verify(token).await.expect("valid before the logout");
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    let started = std::time::Instant::now();
    while verifier.verify(token).await.is_ok() {
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "the logout did not arrive through the private feed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The private feed is never cacheable by shared caches.
    let response =
        reqwest::Client::new().get(server.url("/v1/revocations")).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "private, no-store");
}
