//! Several replicas on Redis: shared rotation and revocation, atomic
//! consumption across replicas, Redis outages, a three-master Cluster, and
//! the revocation feed as an offline verifier follows it.

use crate::helpers::redis::{RedisCluster, RedisServer};
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ISSUER: &str = "http://tessera.test";

/// Two tessera processes sharing one store and one key directory.
struct Pair {
    a: TestServer,
    b: TestServer,
    _keys: tempfile::TempDir,
}

async fn pair(store_env: &[(&str, &str)]) -> Pair {
    let keys = tempfile::tempdir().unwrap();
    let keys_dir = keys.path().join("keys").display().to_string();
    // Replicas behind one load balancer share one issuer.
    let mut env: Vec<(&str, &str)> = vec![
        ("TESSERA_KEYS_DIR", keys_dir.as_str()),
        // The grace window must outlast a request plus a Redis answer.
        ("TESSERA_TOKENS_REUSE_GRACE", "3500ms"),
        ("TESSERA_HTTP_REQUEST_TIMEOUT", "2s"),
        ("TESSERA_STORE_KIND", "redis"),
        ("TESSERA_ISSUER", ISSUER),
    ];
    env.extend_from_slice(store_env);
    // A first, so B finds its keys instead of making its own.
    let a = TestServer::start_with(&default_config(), &env).await;
    let b = TestServer::start_with(&default_config(), &env).await;
    Pair { a, b, _keys: keys }
}

/// Wait until `check` holds, for at most `limit`; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn rotation_and_revocation_cross_replicas(replicas: &Pair) {
    let (a, b) = (&replicas.a, &replicas.b);
    // Refreshed on A, replayed on B after the grace window: caught, and
    // the session is dead on both.
    let session = a.web_session("alice").await;
    let parent = session["refresh_token"].as_str().unwrap().to_string();
    let (status, child) = a.refresh("web", &parent).await;
    assert_eq!(status, 200, "{child}");
    tokio::time::sleep(Duration::from_millis(3_600)).await;
    let (status, body) = b.refresh("web", &parent).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // The revocation reaches the other replica's list within moments; until
    // then a refresh there may still rotate, after it none can.
    let child_refresh = child["refresh_token"].as_str().unwrap().to_string();
    for server in [a, b] {
        let dead = within(Duration::from_secs(1), || async { server.refresh("web", &child_refresh).await.0 == 400 }).await;
        assert!(dead.is_some(), "the session must be dead on every replica");
    }

    // A logout on A shows on B within one second.
    let other = a.web_session("bob").await;
    assert!(b.active(other["access_token"].as_str().unwrap()).await);
    assert_eq!(a.logout(other["session_id"].as_str().unwrap()).await, 204);
    let token = other["access_token"].as_str().unwrap().to_string();
    let took = within(Duration::from_secs(1), || async { !b.active(&token).await }).await;
    assert!(took.is_some(), "replica B still accepts a token revoked on A after 1 s");
}

#[tokio::test]
async fn two_replicas_share_rotation_and_revocation() {
    if !crate::helpers::redis::available() {
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let replicas = pair(&[("TESSERA_STORE_URL", url.as_str())]).await;
    rotation_and_revocation_cross_replicas(&replicas).await;
}

#[tokio::test]
async fn a_hundred_concurrent_refreshes_across_two_replicas_yield_one_child() {
    if !crate::helpers::redis::available() {
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let replicas = pair(&[("TESSERA_STORE_URL", url.as_str()), ("TESSERA_TOKENS_REUSE_GRACE", "10s")]).await;
    let session = replicas.a.web_session("alice").await;
    let token = session["refresh_token"].as_str().unwrap().to_string();
    let urls = (0..100).map(|i| if i % 2 == 0 { replicas.a.url("/oauth2/token") } else { replicas.b.url("/oauth2/token") }).collect();
    let mut children = HashSet::new();
    for (status, body) in refresh_concurrently(urls, &token).await {
        assert_eq!(status, 200, "{body}");
        children.insert(jti_of(body["access_token"].as_str().unwrap()));
    }
    assert_eq!(children.len(), 1, "exactly one child across both replicas");
}

#[tokio::test]
async fn a_redis_outage_answers_503_only_and_recovers_by_itself() {
    if !crate::helpers::redis::available() {
        return;
    }
    let mut redis = RedisServer::start();
    let url = redis.url();
    let env = [
        ("TESSERA_STORE_KIND", "redis"),
        ("TESSERA_STORE_URL", url.as_str()),
        ("TESSERA_STORE_MIRROR_MAX_STALENESS", "1s"),
        ("TESSERA_STORE_RESPONSE_TIMEOUT", "300ms"),
    ];
    let server = TestServer::start_with(&default_config(), &env).await;
    let http = reqwest::Client::new();

    // Load: refresh chains, session creation and introspection, bounded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..4 {
        let first = server.web_session(&format!("load-{i}")).await;
        let (base, http, stop) = (server.base.clone(), http.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut token = first["refresh_token"].as_str().unwrap().to_string();
            let mut statuses = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let form = form_body([("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token.as_str())]);
                let response = http
                    .post(format!("{base}/oauth2/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if status == 503 {
                    assert!(response.headers().contains_key("retry-after"), "503 without Retry-After");
                }
                let body: Value = response.json().await.unwrap();
                if status == 200 {
                    token = body["refresh_token"].as_str().unwrap().to_string();
                }
                statuses.push(status);
                let response = http
                    .post(format!("{base}/v1/sessions"))
                    .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
                    .json(&json!({"sub": "load", "client_id": "web"}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        }));
    }
    let before_outage = server.web_session("before").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();

    // While Redis is down: no token from a refresh, readiness off, keys still served.
    let not_ready =
        within(Duration::from_secs(5), || async { reqwest::get(server.management_url("/readyz")).await.unwrap().status() == 503 }).await;
    assert!(not_ready.is_some(), "/readyz must report not ready while Redis is down");
    // A session made before the outage cannot be refreshed during it.
    let (status, body) = server.refresh("web", before_outage["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 503, "never a token from an unchecked refresh: {body}");
    assert_eq!(reqwest::get(server.url("/.well-known/jwks.json")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().status(), 200);
    // Introspection answers from the in-memory list while it is fresh (the
    // bound is 1 s here), then refuses.
    let stale = within(Duration::from_secs(3), || async {
        server.form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", "x")]).await.status() == 503
    })
    .await;
    assert!(stale.is_some(), "introspection must refuse once the list is stale");

    // Redis returns (empty: it keeps nothing on disk here); tessera recovers alone.
    redis.restart();
    let recovered = within(Duration::from_secs(15), || async {
        let ok = reqwest::get(server.management_url("/readyz")).await.unwrap().status() == 200;
        ok && server.create_session(json!({"sub": "after", "client_id": "web"})).await.status() == 201
    })
    .await;
    assert!(recovered.is_some(), "tessera did not recover after Redis came back");
    let fresh = server.web_session("after").await;
    let (status, _) = server.refresh("web", fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = HashSet::new();
    for worker in workers {
        seen.extend(worker.await.unwrap());
    }
    assert!(seen.iter().all(|s| matches!(s, 200 | 201 | 400 | 503)), "unexpected statuses under the outage: {seen:?}");
    assert!(seen.contains(&503), "the outage was never seen by the load ({seen:?})");
    assert!(!server.logs().contains("panicked"));
}

#[tokio::test]
async fn a_three_master_cluster_runs_rotation_and_revocation() {
    if !crate::helpers::redis::available() {
        return;
    }
    let cluster = RedisCluster::start();
    let urls = cluster.urls_toml();
    let replicas = pair(&[("TESSERA_STORE_CLUSTER_URLS", urls.as_str())]).await;
    rotation_and_revocation_cross_replicas(&replicas).await;
    // Sessions spread over the shards: many sessions, each rotated once.
    for i in 0..20 {
        let session = replicas.a.web_session(&format!("spread-{i}")).await;
        let (status, _) = replicas.b.refresh("web", session["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn the_feed_carries_a_logout_to_a_follower_within_a_second() {
    if !crate::helpers::redis::available() {
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let replicas = pair(&[("TESSERA_STORE_URL", url.as_str())]).await;
    let (a, b) = (&replicas.a, &replicas.b);

    // Follow B's stream; log out on A.
    let mut stream = reqwest::get(b.url("/v1/revocations/stream")).await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("event: ready") {
        text.push_str(&String::from_utf8_lossy(&stream.chunk().await.unwrap().unwrap()));
    }
    let session = a.web_session("carol").await;
    let sid = session["session_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    assert_eq!(a.logout(&sid).await, 204);
    let seen = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let chunk = stream.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(&sid) {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the logout did not reach the stream within a second");
    eprintln!("logout reached the follower in {:?}", started.elapsed());
    let event_id: u64 = text.lines().rev().find_map(|l| l.strip_prefix("id: ")).unwrap().parse().unwrap();

    // Two more logouts while "away"; after= returns exactly those.
    let mut missed = Vec::new();
    for sub in ["dave", "erin"] {
        let s = a.web_session(sub).await;
        assert_eq!(a.logout(s["session_id"].as_str().unwrap()).await, 204);
        missed.push(s["session_id"].as_str().unwrap().to_string());
    }
    let jwks = b.jwks().await;
    let document = within(Duration::from_secs(2), || async {
        let signed = reqwest::get(b.url(&format!("/v1/revocations?after={event_id}"))).await.unwrap().text().await.unwrap();
        let (_, claims) = verify_with_ring(&signed, &jwks);
        claims["revocations"].as_array().unwrap().len() == 2
    })
    .await;
    assert!(document.is_some(), "the missed entries did not reach replica B's feed");
    let response = reqwest::get(b.url(&format!("/v1/revocations?after={event_id}"))).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let (header, claims) = verify_with_ring(&response.text().await.unwrap(), &jwks);
    assert_eq!(header["typ"], "revocations+jwt");
    assert_eq!(claims["iss"], ISSUER);
    let sids: Vec<&str> = claims["revocations"].as_array().unwrap().iter().map(|e| e["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, missed.iter().map(String::as_str).collect::<Vec<_>>());
    let response =
        reqwest::Client::new().get(b.url(&format!("/v1/revocations?after={event_id}"))).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(response.status(), 304);

    // Resume with Last-Event-ID: exactly the missed entries, then ready.
    let mut resumed =
        reqwest::Client::new().get(b.url("/v1/revocations/stream")).header("last-event-id", event_id.to_string()).send().await.unwrap();
    let mut text = String::new();
    while !text.contains("event: ready") {
        text.push_str(&String::from_utf8_lossy(&resumed.chunk().await.unwrap().unwrap()));
    }
    let resumed_sids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["sid"].as_str().map(str::to_string))
        .collect();
    assert_eq!(resumed_sids, missed);
}

#[tokio::test]
async fn behind_sentinel_tessera_follows_a_failover_by_itself() {
    if !crate::helpers::redis::available() {
        return;
    }
    let mut redis = crate::helpers::redis::RedisSentinel::start();
    let urls = redis.urls_toml();
    let env = [
        ("TESSERA_STORE_KIND", "redis"),
        ("TESSERA_STORE_SENTINEL_URLS", urls.as_str()),
        ("TESSERA_STORE_SENTINEL_MASTER", "mymaster"),
        ("TESSERA_STORE_RESPONSE_TIMEOUT", "300ms"),
        ("TESSERA_STORE_MIRROR_MAX_STALENESS", "1s"),
    ];
    let server = TestServer::start_with(&default_config(), &env).await;
    let session = server.web_session("alice").await;
    let (status, _) = server.refresh("web", session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    // The master dies; the Sentinel promotes the replica.
    redis.master.kill();
    // Until then a session may still be created from the fresh mirror (and
    // is refused once the mirror is stale), but no refresh is served: the
    // probe is a session created and refreshed, and a 503 at either step
    // means "not yet".
    let recovered = within(Duration::from_secs(30), || async {
        let response = server.create_session(json!({"sub": "after-failover", "client_id": "web"})).await;
        if response.status() != 201 {
            return false;
        }
        let fresh: Value = response.json().await.unwrap();
        server.refresh("web", fresh["refresh_token"].as_str().unwrap()).await.0 == 200
    })
    .await;
    assert!(recovered.is_some(), "tessera did not follow the failover");
    eprintln!("recovered {:?} after the master died", recovered.unwrap());
    let info = crate::helpers::redis::command(redis.replica.port, "INFO replication").unwrap();
    assert!(info.contains("role:master"), "the replica was promoted: {info}");
    assert!(server.logs().contains("Sentinels name"), "the switch is logged");
}
