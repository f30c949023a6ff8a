//! Redis faults: the data lost under two running replicas, and a stalled
//! Redis that applies a consumption after its caller was answered 503.

use super::*;
use crate::helpers::redis::{RedisServer, available};

/// Replicas on one Redis, one key directory and one issuer. The grace
/// window outlasts a request plus a Redis answer (config validation).
fn replica_env(keys_dir: &str, url: &str) -> Vec<(String, String)> {
    [
        ("TESSERA_KEYS_DIR", keys_dir),
        ("TESSERA_STORE_KIND", "redis"),
        ("TESSERA_STORE_URL", url),
        ("TESSERA_ISSUER", "http://tessera.test"),
        ("TESSERA_STORE_RESPONSE_TIMEOUT", "500ms"),
        ("TESSERA_STORE_MIRROR_MAX_STALENESS", "2s"),
        ("TESSERA_HTTP_REQUEST_TIMEOUT", "2s"),
        ("TESSERA_TOKENS_REUSE_GRACE", "6s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_redis_that_lost_its_data_is_noticed_by_both_replicas_and_no_session_revives() {
    if !available() {
        return;
    }
    let mut redis = RedisServer::start();
    let keys = tempfile::tempdir().unwrap();
    let env = replica_env(&keys.path().join("keys").display().to_string(), &redis.url());
    let env = borrowed(&env);
    let a = TestServer::start_with(&config(), &env).await;
    let b = TestServer::start_with(&config(), &env).await;
    let before = Before::make(&a).await;

    // Redis restarts empty (no persistence) under both replicas.
    redis.kill();
    redis.restart();
    let restarted = Instant::now();
    for server in [&a, &b] {
        let noticed = within(Duration::from_secs(20), || async { announced_not_befores(server).await.len() == 1 }).await;
        assert!(noticed, "a replica did not install the not-before; logs:\n{}", server.logs());
        eprintln!("not-before announced by a replica {:?} after Redis came back empty", restarted.elapsed());
        before.all_refused_by(server).await;
    }
    assert!(
        a.logs().contains("store_data_loss") || b.logs().contains("store_data_loss"),
        "a security event is logged:\n{}\n{}",
        a.logs(),
        b.logs()
    );
    let (on_a, on_b) = (announced_not_befores(&a).await, announced_not_befores(&b).await);
    assert_eq!(on_a, on_b, "both replicas agree on one not-before");
    new_sessions_work(&a).await;
    new_sessions_work(&b).await;

    // A replica started afterwards finds the new epoch recorded and the
    // not-before in the store: it starts, and refuses the old tokens too.
    let c = TestServer::start_with(&config(), &env).await;
    before.all_refused_by(&c).await;
    assert_eq!(announced_not_befores(&c).await, on_a);

    // With every replica down, an empty Redis is refused at start until accepted.
    let (a_dir, b_dir, c_dir) = (a.stop_keep_dir(), b.stop_keep_dir(), c.stop_keep_dir());
    drop((b_dir, c_dir));
    redis.kill();
    redis.restart();
    let stderr = refused_start(a_dir.path(), &env, &[]);
    assert!(stderr.contains("store_replaced") && stderr.contains("--accept-new-store"), "{stderr}");
    let a = TestServer::start_in_with_flags(a_dir, &config(), &env, &["--accept-new-store"]).await;
    before.all_refused_by(&a).await;
    new_sessions_work(&a).await;
}

#[tokio::test]
async fn a_retry_after_a_stalled_redis_gets_the_same_child_and_raises_no_theft_alarm() {
    if !available() {
        return;
    }
    let redis = RedisServer::start();
    let keys = tempfile::tempdir().unwrap();
    let env = replica_env(&keys.path().join("keys").display().to_string(), &redis.url());
    let server = TestServer::start_with(&config(), &borrowed(&env)).await;
    let session = server.web_session("alice").await;
    let parent = session["refresh_token"].as_str().unwrap().to_string();
    // One refresh first, so Redis knows the consumption script (EVALSHA).
    let warm = server.web_session("warm-up").await;
    assert_eq!(server.refresh("web", warm["refresh_token"].as_str().unwrap()).await.0, 200);

    // Redis stalls: the refresh is answered 503, but its consumption waits
    // in Redis and is applied when Redis resumes — after the grace window
    // counted from the request (6 s), inside it counted from the commit.
    redis.pause();
    let started = Instant::now();
    let response = server.token(None, &[("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", parent.as_str())]).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(started.elapsed())).await;
    redis.resume();

    // The client retries (sooner than Retry-After is allowed too); until the
    // replica hears from Redis again it answers 503.
    let mut children = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(retry_after);
    while children.len() < 2 && Instant::now() < deadline {
        let (status, body) = server.refresh("web", &parent).await;
        match status {
            200 => children.push(body),
            503 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("a retry of a refresh that timed out must not be taken for theft: {other} {body}\n{}", server.logs()),
        }
    }
    assert_eq!(children.len(), 2, "the retries were answered within Retry-After");
    assert_eq!(children[0]["refresh_token"], children[1]["refresh_token"], "the same child each time");
    assert_eq!(jti_of(children[0]["access_token"].as_str().unwrap()), jti_of(children[1]["access_token"].as_str().unwrap()));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tessera_refresh_total{outcome=\"grace_replay\"} 2"),
        "both were replays of the stalled consumption: {metrics}"
    );
    assert!(!server.logs().contains("refresh_token_reuse"), "no theft alarm:\n{}", server.logs());
    let (status, _) = server.refresh("web", children[0]["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "the session lives on");
}
