//! Throttled client authentication, the per-peer request rate and strict
//! credential parsing, against the real binary over TCP (so every request
//! has a peer address).

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The standard clients plus `extra` settings (a `[throttle]` table, …).
fn config_with(extra: &str) -> String {
    format!("{}\n{extra}\n", default_config())
}

async fn client_credentials(server: &TestServer, id: &str, secret: &str) -> reqwest::Response {
    server.token(Some((id, secret)), &[("grant_type", "client_credentials")]).await
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After is whole seconds")
}

/// The number after `series` in the Prometheus text.
fn counter(metrics: &str, series: &str) -> u64 {
    let line = metrics.lines().find(|line| line.starts_with(series)).unwrap_or_else(|| panic!("{series} not in {metrics}"));
    line[series.len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn wrong_secrets_for_one_client_are_refused_unchecked_after_the_limit_until_the_window_passes() {
    let config = config_with("[throttle]\nmax_failures = 5\nmax_failures_per_peer = 10000\nwindow = \"2s\"");
    let server = TestServer::start_with(&config, &[]).await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut last_throttled = None;
    for attempt in 0..200 {
        let response = client_credentials(&server, SERVICE_ID, &format!("wrong-{attempt}")).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().get("www-authenticate").is_none());
            last_throttled = Some(response);
        }
        if attempt == 5 {
            // Within the window: the right secret is not even checked, and
            // another client is unaffected.
            let right = client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await;
            assert_eq!(right.status(), 429, "the right secret is refused unchecked while throttled");
            let other = client_credentials(&server, BACKEND_ID, BACKEND_SECRET).await;
            assert_eq!(other.status(), 200, "another client is unaffected");
        }
    }
    let elapsed = started.elapsed();
    let first_throttled = statuses.iter().position(|&status| status == 429).expect("a 429");
    assert_eq!(first_throttled, 5, "exactly max_failures 401s come first: {statuses:?}");
    assert!(statuses.iter().all(|&status| status == 401 || status == 429), "{statuses:?}");
    // The window slides: each further 2.2 s (the window and its last tenth) frees at most five more guesses.
    let windows = (elapsed.as_secs_f64() / 2.0).ceil() as usize;
    let checked = statuses.iter().filter(|&&status| status == 401).count();
    assert!(checked <= 5 * (windows + 1), "{checked} secrets checked in {elapsed:?}");

    let throttled = last_throttled.unwrap();
    assert_eq!(throttled.headers()["cache-control"], "no-store");
    let wait = retry_after(&throttled);
    assert!((1..=3).contains(&wait), "Retry-After {wait} is within the 2 s window");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("retry after"), "{body}");

    // Once the window has slid past the failures (Retry-After says when;
    // on a loaded machine the last failures may land later), the right
    // secret works again: nothing stays locked.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut right = client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await.status();
    while right != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        right = client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await.status();
    }
    assert_eq!(right, 200, "after the window the right secret works again");
}

#[tokio::test]
async fn one_peer_failing_for_many_clients_is_refused_on_every_endpoint_and_a_success_resets_nothing() {
    let config = config_with("[throttle]\nmax_failures = 10000\nmax_failures_per_peer = 4\nwindow = \"2s\"");
    let server = TestServer::start_with(&config, &[]).await;
    for id in ["nobody-1", "nobody-2", "nobody-3"] {
        assert_eq!(client_credentials(&server, id, "guess").await.status(), 401);
    }
    // A success in between takes nothing back.
    assert_eq!(client_credentials(&server, BACKEND_ID, BACKEND_SECRET).await.status(), 200);
    let session = reqwest::Client::new().post(server.url("/v1/sessions")).basic_auth(BACKEND_ID, Some("wrong"));
    assert_eq!(session.json(&serde_json::json!({"sub": "alice"})).send().await.unwrap().status(), 401, "the fourth failure");

    // The peer is out of failures: even the right secret of another client is refused unchecked.
    let oauth = client_credentials(&server, BACKEND_ID, BACKEND_SECRET).await;
    assert_eq!(oauth.status(), 429);
    let body: Value = oauth.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let management = server.create_session(serde_json::json!({"sub": "alice", "client_id": "web"})).await;
    assert_eq!(management.status(), 429);
    assert_eq!(management.headers()["content-type"], "application/problem+json");
    let wait = retry_after(&management);
    let problem: Value = management.json().await.unwrap();
    assert_eq!((problem["status"].as_u64(), problem["code"].as_str()), (Some(429), Some("too_many_attempts")), "{problem}");
    let introspect = server.form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", "x")]).await;
    assert_eq!(introspect.status(), 429, "introspection authenticates through the same throttle");
    let public = server.form("/oauth2/revoke", None, &[("client_id", "web"), ("token", "x")]).await;
    assert_eq!(public.status(), 429, "so does a public client, though it presents no secret");

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    assert_eq!(server.create_session(serde_json::json!({"sub": "alice", "client_id": "web"})).await.status(), 201);
}

#[tokio::test]
async fn a_failure_is_logged_with_client_and_peer_never_the_secret_and_counted() {
    let config = config_with("[throttle]\nmax_failures = 2\nmax_failures_per_peer = 10000\nwindow = \"1m\"");
    let server = TestServer::start_with(&config, &[]).await;
    let guessed = "Guessed-Secret-4f1e0a";
    let pasted = "Pasted-Secret-As-Id-9c2b";
    for _ in 0..3 {
        client_credentials(&server, SERVICE_ID, guessed).await;
    }
    assert_eq!(client_credentials(&server, pasted, guessed).await.status(), 401);
    assert_eq!(server.token(None, &[("grant_type", "client_credentials")]).await.status(), 401);

    // The server's log reaches the test through a pipe: wait for the lines.
    let mut logs = server.logs();
    for _ in 0..100 {
        if logs.lines().filter(|line| line.contains("client_auth_failed")).count() >= 4 && logs.contains("client_auth_throttled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        logs = server.logs();
    }
    let failures: Vec<&str> = logs.lines().filter(|line| line.contains("client_auth_failed")).collect();
    assert_eq!(failures.len(), 4, "two bad secrets, an unknown id, no credentials: {logs}");
    assert!(failures[0].contains("client=reports-service") && failures[0].contains("peer=127.0.0.1"), "{}", failures[0]);
    assert!(failures[0].contains("bad_secret"), "{}", failures[0]);
    assert!(failures[2].contains("client=unknown") && failures[2].contains("unknown_client"), "{}", failures[2]);
    assert!(logs.contains("client_auth_throttled"), "reaching the limit is logged once: {logs}");
    assert!(!logs.contains(guessed) && !logs.contains(pasted), "no secret, nor an id that is no client, is logged");

    let metrics = server.metrics().await;
    assert_eq!(counter(&metrics, "tessera_client_auth_failures_total{reason=\"bad_secret\"}"), 2);
    assert_eq!(counter(&metrics, "tessera_client_auth_failures_total{reason=\"throttled\"}"), 1);
    assert_eq!(counter(&metrics, "tessera_client_auth_failures_total{reason=\"unknown_client\"}"), 1);
    assert_eq!(counter(&metrics, "tessera_client_auth_failures_total{reason=\"missing\"}"), 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_peer() {
    let config = config_with("[http]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n[throttle]\nmax_failures_per_peer = 2\nwindow = \"1m\"");
    let server = TestServer::start_with(&config, &[]).await;
    let from = |forwarded: &'static str| {
        let body = form_body([("grant_type", "client_credentials")]);
        reqwest::Client::new()
            .post(server.url("/oauth2/token"))
            .basic_auth("nobody", Some("guess"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", forwarded)
            .body(body)
    };
    // The client wrote the first address itself; only the proxy's entry counts.
    for _ in 0..2 {
        assert_eq!(from("192.0.2.99, 198.51.100.1").send().await.unwrap().status(), 401);
    }
    assert_eq!(from("192.0.2.1, 198.51.100.1").send().await.unwrap().status(), 429, "198.51.100.1 is out of failures");
    assert_eq!(from("198.51.100.2").send().await.unwrap().status(), 401, "another address behind the proxy is not");
    assert!(server.logs().contains("peer=198.51.100.1"), "{}", server.logs());
}

#[tokio::test]
async fn the_request_rate_per_peer_is_limited_on_the_oauth_endpoints_only() {
    let config = config_with("[throttle]\nrequests_per_second = 1\nburst = 3");
    let server = TestServer::start_with(&config, &[]).await;
    let mut responses = Vec::new();
    for _ in 0..10 {
        responses.push(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await);
    }
    assert!(responses[..3].iter().all(|response| response.status() == 200), "the burst passes");
    let limited =
        responses.into_iter().find(|response| response.status() == 429).expect("ten requests at once exceed 1/s after a burst of 3");
    assert_eq!(retry_after(&limited), 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    for _ in 0..5 {
        assert_eq!(server.create_session(serde_json::json!({"sub": "alice", "client_id": "web"})).await.status(), 201);
    }
}

#[tokio::test]
async fn two_authorization_headers_and_repeated_parameters_are_refused() {
    let server = TestServer::start().await;
    let twice = |path: &str| {
        reqwest::Client::new()
            .post(server.url(path))
            .header("authorization", basic(SERVICE_ID, SERVICE_SECRET))
            .header("authorization", basic(BACKEND_ID, BACKEND_SECRET))
    };
    let oauth = twice("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(oauth.status(), 400);
    let body: Value = oauth.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("Authorization"), "{body}");

    let management = twice("/v1/sessions").json(&serde_json::json!({"sub": "alice"})).send().await.unwrap();
    assert_eq!(management.status(), 400);
    assert_eq!(management.headers()["content-type"], "application/problem+json");

    for body in ["grant_type=refresh_token&client_id=&client_id=web&refresh_token=x", "grant_type=client_credentials&scope=&scope=x"] {
        let response = reqwest::Client::new()
            .post(server.url("/oauth2/token"))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let error: Value = response.json().await.unwrap();
        assert_eq!((status.as_u16(), error["error"].as_str()), (400, Some("invalid_request")), "{body}: {error}");
    }
}

#[tokio::test]
async fn unknown_public_client_ids_count_against_the_peer_though_no_secret_is_presented() {
    let config = config_with("[throttle]\nmax_failures = 10000\nmax_failures_per_peer = 3\nwindow = \"60s\"");
    let server = TestServer::start_with(&config, &[]).await;
    for id in ["nobody-1", "nobody-2", "nobody-3"] {
        assert_eq!(server.form("/oauth2/revoke", None, &[("client_id", id), ("token", "x")]).await.status(), 401, "{id}");
    }
    let known = server.form("/oauth2/revoke", None, &[("client_id", "web"), ("token", "x")]).await;
    assert_eq!(known.status(), 429, "the peer used up its failures");
}
