//! The verified-token cache behind introspection: a token introspected
//! again is answered from the cache (the metrics say so), and a cached
//! token still stops being active the moment it is revoked, when it
//! expires, and when the key that signed it is revoked.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// `tessera_introspection_cache_total{result=…}` as (hits, misses).
async fn cache_counts(server: &TestServer) -> (u64, u64) {
    let metrics = server.metrics().await;
    let count = |result: &str| {
        let prefix = format!("tessera_introspection_cache_total{{result=\"{result}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|n| n.parse().ok()).expect("the cache counter")
    };
    (count("hit"), count("miss"))
}

async fn wait_until_inactive(server: &TestServer, token: &str, within: Duration, what: &str) -> Duration {
    let started = Instant::now();
    while server.active(token).await {
        assert!(started.elapsed() < within, "a cached token was still active {within:?} after {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_repeated_introspection_is_a_cache_hit_and_a_logout_still_ends_the_token() {
    let server = TestServer::start().await;
    let session = server.web_session("cached").await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(cache_counts(&server).await, (0, 0));
    for _ in 0..3 {
        assert!(server.active(access).await);
    }
    assert_eq!(cache_counts(&server).await, (2, 1), "verified once, then answered from the cache");
    // Garbage and forgeries are never cached: each is a miss again.
    let forged = format!("{}x", &access[..access.len() - 1]);
    for _ in 0..2 {
        assert!(!server.active(&forged).await);
    }
    assert_eq!(cache_counts(&server).await, (2, 3));

    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    assert!(!server.active(access).await, "the cached token outlived its session's logout");
}

#[tokio::test]
async fn a_cached_token_ends_at_its_expiry() {
    let env = [("TESSERA_TOKENS_ACCESS_TTL", "2s"), ("TESSERA_TOKENS_LEEWAY", "0s")];
    let server = TestServer::start_with(&default_config(), &env).await;
    let access = server.access_token(json!({"sub": "short-lived", "client_id": "web"})).await;
    assert!(server.active(&access).await);
    assert!(server.active(&access).await);
    assert_eq!(cache_counts(&server).await.0, 1);
    wait_until_inactive(&server, &access, Duration::from_secs(5), "its exp").await;
}

#[tokio::test]
async fn a_cached_token_ends_when_its_signing_key_is_revoked() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_KEYS_RELOAD_INTERVAL", "200ms")]).await;
    let access = server.access_token(json!({"sub": "doomed", "client_id": "web"})).await;
    assert!(server.active(&access).await);
    assert!(server.active(&access).await);
    assert_eq!(cache_counts(&server).await.0, 1);
    let output = server.cli(&["keys", "revoke", &kid_of(&access)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let took = wait_until_inactive(&server, &access, Duration::from_secs(10), "`keys revoke`").await;
    eprintln!("cached token inactive {took:?} after its key was revoked");
}
