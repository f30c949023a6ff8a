//! The verifier's JWKS cache against a JWKS served by the test itself, which
//! counts requests, can go down, rotates keys, answers `If-None-Match` and
//! notes who asked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tessera::keys::{SigningAlgorithm, SigningKey};
use tessera::tokens::access::{self, AccessClaims, Audience};
use tessera_verifier::{Verifier, VerifyError};

const ISSUER: &str = "https://issuer.test";

/// What the test JWKS endpoint serves and has seen.
struct Jwks {
    /// Public JWKs and a version, which is the ETag.
    keys: Mutex<(Vec<String>, u32)>,
    max_age: u32,
    down: AtomicBool,
    requests: AtomicUsize,
    not_modified: AtomicUsize,
    if_none_match: Mutex<Vec<String>>,
    user_agents: Mutex<Vec<String>>,
}

impl Jwks {
    fn set_keys(&self, keys: &[&SigningKey]) {
        let mut current = self.keys.lock().unwrap();
        *current = (keys.iter().map(|k| k.public_jwk_json()).collect(), current.1 + 1);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(jwks): State<Arc<Jwks>>, headers: HeaderMap) -> Response {
    jwks.requests.fetch_add(1, Ordering::SeqCst);
    let user_agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default();
    jwks.user_agents.lock().unwrap().push(user_agent.to_string());
    if jwks.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let (keys, version) = jwks.keys.lock().unwrap().clone();
    let etag = format!("\"v{version}\"");
    let cache_control = format!("public, max-age={}", jwks.max_age);
    if let Some(tag) = headers.get("if-none-match").and_then(|v| v.to_str().ok()) {
        jwks.if_none_match.lock().unwrap().push(tag.to_string());
        if tag == etag {
            jwks.not_modified.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::NOT_MODIFIED, [("etag", etag), ("cache-control", cache_control)]).into_response();
        }
    }
    ([("etag", etag), ("cache-control", cache_control)], format!("{{\"keys\":[{}]}}", keys.join(","))).into_response()
}

/// Serve `keys` with `max-age`; returns the state and the JWKS URL.
async fn start_jwks(keys: &[&SigningKey], max_age: u32) -> (Arc<Jwks>, String) {
    let jwks = Arc::new(Jwks {
        keys: Mutex::new((Vec::new(), 0)),
        max_age,
        down: AtomicBool::new(false),
        requests: AtomicUsize::new(0),
        not_modified: AtomicUsize::new(0),
        if_none_match: Mutex::new(Vec::new()),
        user_agents: Mutex::new(Vec::new()),
    });
    jwks.set_keys(keys);
    let app = axum::Router::new().route("/jwks.json", axum::routing::get(serve_jwks)).with_state(jwks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (jwks, url)
}

async fn verifier(url: &str, refetch_cooldown: Duration) -> Verifier {
    Verifier::builder()
        .issuer(ISSUER)
        .jwks_url(url)
        .audience("orders-api")
        .refetch_cooldown(refetch_cooldown)
        .revocation_feed(false)
        .build()
        .await
        .unwrap()
}

fn key(alg: SigningAlgorithm) -> SigningKey {
    SigningKey::from_pkcs8(alg, &SigningKey::generate(alg).unwrap()).unwrap()
}

fn token(key: &SigningKey) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: Audience::One("orders-api".into()),
        exp: now + 600,
        nbf: None,
        iat: now,
        jti: tessera::tokens::random_id(),
        client_id: "web".into(),
        scope: None,
        sid: None,
        auth_time: None,
        cnf: None,
        custom: serde_json::Map::new(),
    };
    access::mint(key, &claims)
}

/// The same token under a random kid.
fn with_random_kid(token: &str) -> String {
    let header = serde_json::json!({"alg": "ES256", "kid": tessera::tokens::random_id(), "typ": "at+jwt"});
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), token.split_once('.').unwrap().1)
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unknown_key(outcome: Result<tessera_verifier::Claims, VerifyError>) -> bool {
    matches!(outcome, Err(VerifyError::UnknownKey { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_storm_fetches_the_jwks_at_most_once_per_cooldown() {
    let (old, new) = (key(SigningAlgorithm::ES256), key(SigningAlgorithm::EdDSA));
    let (jwks, url) = start_jwks(&[&old], 3600).await;
    let cooldown = Duration::from_millis(500);
    let verifier = verifier(&url, cooldown).await;
    assert_eq!(jwks.requests(), 1);
    let signed = token(&old);

    // Right after a fetch, no refetch at all; after the cooldown, one.
    for (expected_requests, pause) in [(1, Duration::ZERO), (2, cooldown + Duration::from_millis(100)), (2, Duration::ZERO)] {
        tokio::time::sleep(pause).await;
        let mut storm = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (verifier, forged) = (verifier.clone(), with_random_kid(&signed));
            storm.spawn(async move { verifier.verify(&forged).await });
        }
        for outcome in storm.join_all().await {
            assert!(unknown_key(outcome));
        }
        assert_eq!(jwks.requests(), expected_requests, "after a storm following a pause of {pause:?}");
    }

    // A key published late is found on the cold path — once the cooldown allows.
    jwks.set_keys(&[&old, &new]);
    let late = token(&new);
    assert!(unknown_key(verifier.verify(&late).await));
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    assert!(unknown_key(verifier.verify_cached(&late)), "verify_cached never fetches");
    assert_eq!(jwks.requests(), 2);
    assert_eq!(verifier.verify(&late).await.unwrap().sub, "alice");
    assert_eq!(jwks.requests(), 3);
    assert!(verifier.verify_cached(&signed).is_ok());
}

#[tokio::test]
async fn the_last_good_set_keeps_verifying_while_the_jwks_is_down() {
    let signer = key(SigningAlgorithm::ES256);
    let (jwks, url) = start_jwks(&[&signer], 1).await;
    let verifier = verifier(&url, Duration::ZERO).await;
    jwks.down.store(true, Ordering::SeqCst);
    eventually("two refreshes failed", || jwks.requests() >= 3).await;
    assert_eq!(verifier.verify(&token(&signer)).await.unwrap().sub, "alice");
    // An unknown kid now costs a failed fetch and answers UnknownKey.
    let before = jwks.requests();
    assert!(unknown_key(verifier.verify(&with_random_kid(&token(&signer))).await));
    assert!(jwks.requests() > before);
    assert!(verifier.verify(&token(&signer)).await.is_ok());
}

#[tokio::test]
async fn an_unchanged_jwks_is_revalidated_with_its_etag_and_kept_on_304() {
    let signer = key(SigningAlgorithm::EdDSA);
    let (jwks, url) = start_jwks(&[&signer], 1).await;
    let verifier = verifier(&url, Duration::from_secs(30)).await;
    eventually("two 304s were answered", || jwks.not_modified.load(Ordering::SeqCst) >= 2).await;
    let seen = jwks.if_none_match.lock().unwrap().clone();
    assert!(seen.len() >= 2 && seen.iter().all(|tag| tag == "\"v1\""), "{seen:?}");
    assert!(verifier.verify_cached(&token(&signer)).is_ok());
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_verifying_after_the_refresh() {
    let (kept, removed) = (key(SigningAlgorithm::ES256), key(SigningAlgorithm::ES256));
    let (jwks, url) = start_jwks(&[&kept, &removed], 1).await;
    let verifier = verifier(&url, Duration::from_secs(30)).await;
    let (kept_token, removed_token) = (token(&kept), token(&removed));
    assert!(verifier.verify_cached(&removed_token).is_ok());
    let requests = jwks.requests();
    jwks.set_keys(&[&kept]);
    eventually("the removed key stops verifying", || unknown_key(verifier.verify_cached(&removed_token))).await;
    assert!(jwks.requests() > requests);
    assert!(unknown_key(verifier.verify(&removed_token).await));
    assert!(verifier.verify_cached(&kept_token).is_ok());
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_background_refresh() {
    let signer = key(SigningAlgorithm::ES256);
    let (jwks, url) = start_jwks(&[&signer], 1).await;
    let verifier = verifier(&url, Duration::from_secs(30)).await;
    let clone = verifier.clone();
    drop(verifier);
    eventually("a clone keeps the refresh going", || jwks.requests() >= 2).await;
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = jwks.requests();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(jwks.requests(), after_drop, "no refresh after the last clone was dropped");
}

#[tokio::test]
async fn verify_on_a_known_kid_completes_without_awaiting() {
    let signer = key(SigningAlgorithm::ES256);
    let (_jwks, url) = start_jwks(&[&signer], 3600).await;
    let verifier = verifier(&url, Duration::from_secs(30)).await;
    let token = token(&signer);
    let mut verification = pin!(verifier.verify(&token));
    match verification.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(claims) => assert_eq!(claims.unwrap().sub, "alice"),
        Poll::Pending => panic!("verify awaited on a known kid"),
    }
}

#[tokio::test]
async fn every_request_goes_through_the_callers_http_client_when_given_one() {
    let signer = key(SigningAlgorithm::ES256);
    let (jwks, url) = start_jwks(&[&signer], 3600).await;
    let client = tessera_verifier::reqwest::Client::builder().user_agent("orders-service/7").build().unwrap();
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .jwks_url(&url)
        .audience("orders-api")
        .refetch_cooldown(Duration::ZERO)
        .revocation_feed(false)
        .http_client(client)
        .build()
        .await
        .unwrap();
    assert_eq!(verifier.verify(&token(&signer)).await.unwrap().sub, "alice");
    // The cold path (a refetch for an unknown kid) uses it too.
    assert!(unknown_key(verifier.verify(&with_random_kid(&token(&signer))).await));
    assert_eq!(*jwks.user_agents.lock().unwrap(), ["orders-service/7", "orders-service/7"]);

    // Without one, the verifier's own client names itself.
    let _default = self::verifier(&url, Duration::from_secs(30)).await;
    let agents = jwks.user_agents.lock().unwrap().clone();
    assert!(agents[2].starts_with("tessera-verifier/"), "{agents:?}");
}
