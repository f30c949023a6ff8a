//! Throttled client authentication, the per-peer request rate and strict
//! credential parsing, against the real binary over TCP (so every request
//! has a peer address).

use crate::helpers::*;
use serde_json::Value;

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
