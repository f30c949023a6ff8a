//! Black-box tests of rotation, revocation and introspection on the real
//! binary: HTTP flows, 50 concurrent refreshes of one token, and `kill -9`
//! crash tests on the embedded store.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn a_public_client_rotates_its_refresh_token_over_http() {
    let server = TestServer::start().await;
    let session = server.web_session("alice").await;
    let (status, child) = server.refresh("web", session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["token_type"], "Bearer");
    assert_eq!(child["session_id"], session["session_id"]);
    assert_ne!(child["refresh_token"], session["refresh_token"]);
    let (_, claims) = verify_with_ring(child["access_token"].as_str().unwrap(), &server.jwks().await);
    assert_eq!(claims["sid"], session["session_id"]);

    // Narrowing on refresh; widening refused.
    let response = server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", child["refresh_token"].as_str().unwrap()),
                ("scope", "admin"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_scope");

    // Missing refresh_token, another client's token, a confidential client
    // that does not authenticate.
    let (status, body) = server.refresh("web", "").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let (status, body) = server.refresh("mobile", child["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = server.refresh(BACKEND_ID, child["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn fifty_concurrent_refreshes_of_one_token_yield_exactly_one_child() {
    let server = TestServer::start().await;
    let session = server.web_session("alice").await;
    let token = session["refresh_token"].as_str().unwrap().to_string();
    let urls = vec![server.url("/oauth2/token"); 50];
    let mut access_jtis = HashSet::new();
    let mut refresh_tokens = HashSet::new();
    for (status, body) in refresh_concurrently(urls, &token).await {
        assert_eq!(status, 200, "inside the grace window every caller gets the child: {body}");
        access_jtis.insert(jti_of(body["access_token"].as_str().unwrap()));
        refresh_tokens.insert(body["refresh_token"].as_str().unwrap().to_string());
    }
    assert_eq!(access_jtis.len(), 1, "exactly one distinct child access jti");
    assert_eq!(refresh_tokens.len(), 1, "exactly one child refresh token");
    let metrics = server.metrics().await;
    assert!(metrics.contains("tessera_refresh_total{outcome=\"rotated\"} 1"), "{metrics}");
    assert!(metrics.contains("tessera_refresh_total{outcome=\"grace_replay\"} 49"), "{metrics}");
}

#[tokio::test]
async fn a_replay_after_the_grace_window_ends_the_session_and_is_logged_without_the_token() {
    let config = format!("{}\n", default_config());
    // The grace window must outlast a request (http.request_timeout).
    let env = [("TESSERA_TOKENS_REUSE_GRACE", "1s"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "500ms")];
    let server = TestServer::start_with(&config, &env).await;
    let session = server.web_session("alice").await;
    let stolen = session["refresh_token"].as_str().unwrap();
    let (_, child) = server.refresh("web", stolen).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = server.refresh("web", stolen).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = server.refresh("web", child["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the legitimate child dies with the session");
    assert!(!server.active(child["access_token"].as_str().unwrap()).await);
    let logs = server.logs();
    assert!(logs.contains("refresh_token_reuse"), "security event logged: {logs}");
    assert!(!logs.contains(stolen) && !logs.contains(child["refresh_token"].as_str().unwrap()));
    let metrics = server.metrics().await;
    assert!(metrics.contains("tessera_reuse_detections_total 1"), "{metrics}");
}

#[tokio::test]
async fn revocation_endpoints_work_as_clients_call_them() {
    let server = TestServer::start().await;
    // RFC 7009 by the public client that owns the token.
    let session = server.web_session("alice").await;
    let response =
        server.form("/oauth2/revoke", None, &[("token", session["refresh_token"].as_str().unwrap()), ("client_id", "web")]).await;
    assert_eq!(response.status(), 200);
    assert!(!server.active(session["access_token"].as_str().unwrap()).await, "revoking the refresh token ends the session");
    // Unknown tokens: still 200.
    let response =
        server.form("/oauth2/revoke", None, &[("token", "whatever"), ("client_id", "web"), ("token_type_hint", "refresh_token")]).await;
    assert_eq!(response.status(), 200);
    // Another public client may not revoke it.
    let other = server.web_session("bob").await;
    let response =
        server.form("/oauth2/revoke", None, &[("token", other["access_token"].as_str().unwrap()), ("client_id", "mobile")]).await;
    assert_eq!(response.status(), 400);
    assert!(server.active(other["access_token"].as_str().unwrap()).await);
    let response = server.form("/oauth2/revoke", None, &[("client_id", "web")]).await;
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_request");

    // Logout and logout everywhere, by the backend.
    let http = reqwest::Client::new();
    let one = server.web_session("carol").await;
    assert_eq!(server.logout(one["session_id"].as_str().unwrap()).await, 204);
    assert!(!server.active(one["access_token"].as_str().unwrap()).await);
    let two = server.web_session("dave").await;
    let three = server.web_session("dave").await;
    assert_eq!(server.logout_everywhere("dave").await, 204);
    assert!(!server.active(two["access_token"].as_str().unwrap()).await);
    assert!(!server.active(three["refresh_token"].as_str().unwrap()).await);
    // Management needs the permission.
    let response = http.post(server.url("/v1/subjects/dave/revoke")).basic_auth(SERVICE_ID, Some(SERVICE_SECRET)).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_session_limit_and_list_work_over_http() {
    let server = TestServer::start().await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(server.session(json!({"sub": "erin", "client_id": "mobile"})).await);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(!server.active(sessions[0]["access_token"].as_str().unwrap()).await, "the oldest of three is ended at limit 2");
    let listed: Value = reqwest::Client::new()
        .get(server.url("/v1/subjects/erin/sessions"))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sessions[1]["session_id"].as_str().unwrap(), sessions[2]["session_id"].as_str().unwrap()]);
}

#[tokio::test]
async fn introspection_answers_rfc7662_and_checks_its_caller() {
    let server = TestServer::start().await;
    let session = server.web_session("alice").await;
    let response = server
        .form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", session["access_token"].as_str().unwrap())])
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "web");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], server.base);
    let body: Value =
        server.form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", "nope")]).await.json().await.unwrap();
    assert_eq!(body, json!({"active": false}));
    let response = server.form("/oauth2/introspect", Some((SERVICE_ID, SERVICE_SECRET)), &[("token", "nope")]).await;
    assert_eq!(response.status(), 403);
    let response = server.form("/oauth2/introspect", None, &[("token", "nope"), ("client_id", "web")]).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn revocations_survive_kill_9() {
    let server = TestServer::start().await;
    let mut dead = Vec::new();
    for i in 0..10 {
        let session = server.web_session(&format!("user-{i}")).await;
        match i % 3 {
            0 => assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204),
            1 => {
                let response = server
                    .form("/oauth2/revoke", None, &[("token", session["access_token"].as_str().unwrap()), ("client_id", "web")])
                    .await;
                assert_eq!(response.status(), 200);
            }
            _ => assert_eq!(server.logout_everywhere(&format!("user-{i}")).await, 204),
        }
        dead.push(session["access_token"].as_str().unwrap().to_string());
    }
    // The last answer was a 200/204; kill at once.
    let dir = server.stop_keep_dir();
    let server = TestServer::start_in(dir, &default_config(), &[]).await;
    for token in &dead {
        assert!(!server.active(token).await, "a revocation was lost across kill -9");
    }
}

#[tokio::test]
async fn consumed_refresh_tokens_survive_kill_9() {
    let env = [("TESSERA_TOKENS_REUSE_GRACE", "0")];
    let server = TestServer::start_with(&default_config(), &env).await;
    let session = server.web_session("alice").await;
    let parent = session["refresh_token"].as_str().unwrap().to_string();
    let (status, child) = server.refresh("web", &parent).await;
    assert_eq!(status, 200);
    let dir = server.stop_keep_dir();
    let server = TestServer::start_in(dir, &default_config(), &env).await;
    let (status, body) = server.refresh("web", &parent).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the replay is caught after the restart");
    let (status, _) = server.refresh("web", child["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "and the session it belonged to is ended");
}

#[tokio::test]
async fn a_session_created_right_after_logout_everywhere_works() {
    let server = TestServer::start().await;
    let old = server.web_session("frank").await;
    assert_eq!(server.logout_everywhere("frank").await, 204);
    // The password-change flow: revoke everything, then sign in again at once.
    let new = server.web_session("frank").await;
    assert!(!server.active(old["access_token"].as_str().unwrap()).await);
    assert!(server.active(new["access_token"].as_str().unwrap()).await);
    let (status, body) = server.refresh("web", new["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn revocations_whose_requests_are_abandoned_still_reach_the_list_and_the_feed() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let authorization = basic(BACKEND_ID, BACKEND_SECRET);
    let mut abandoned = Vec::new();
    for i in 0..20 {
        let session = server.web_session(&format!("gone-{i}")).await;
        let sid = session["session_id"].as_str().unwrap().to_string();
        // Send the logout and hang up at once, without reading the answer.
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let request =
            format!("DELETE /v1/sessions/{sid} HTTP/1.1\r\nhost: x\r\nauthorization: {authorization}\r\ncontent-length: 0\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        drop(stream);
        abandoned.push(session);
    }
    // A logout answered normally must appear in the feed: no gap left behind
    // by an abandoned request may hold the feed back.
    let last = server.web_session("kept").await;
    assert_eq!(server.logout(last["session_id"].as_str().unwrap()).await, 204);
    let feed = reqwest::get(server.url("/v1/revocations")).await.unwrap().text().await.unwrap();
    let (_, claims) = verify_with_ring(&feed, &server.jwks().await);
    let sids: Vec<&str> = claims["revocations"].as_array().unwrap().iter().filter_map(|e| e["sid"].as_str()).collect();
    assert!(sids.contains(&last["session_id"].as_str().unwrap()), "the feed is stuck: {sids:?}");
    // Every abandoned logout that the store took is in force in the checks.
    for session in &abandoned {
        if sids.contains(&session["session_id"].as_str().unwrap()) {
            assert!(!server.active(session["access_token"].as_str().unwrap()).await);
        }
    }
}
