//! `RequireBearer` and `VerifiedToken` in an axum router, driven in-process
//! with tokens from the real tessera binary: RFC 6750 answers for every way
//! a request can fall short.

#[path = "server/helpers/mod.rs"]
#[allow(dead_code)] // this binary uses a few of the server tests' helpers
mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera::verifier::{RequireBearer, VerifiedToken, Verifier};
use tower::ServiceExt;

async fn whoami(VerifiedToken(claims): VerifiedToken) -> String {
    claims.sub
}

/// `/orders` needs scope read (realm orders-api by default), `/admin` read
/// and write in realm "orders"; `/unguarded` forgot the layer.
async fn app(server: &TestServer) -> Router {
    let verifier = Verifier::builder().issuer(&server.base).audience("orders-api").build().await.unwrap();
    Router::new()
        .route("/orders", get(whoami))
        .route_layer(RequireBearer::new(verifier.clone()).scopes(&["read"]))
        .merge(
            Router::new().route("/admin", get(whoami)).route_layer(RequireBearer::new(verifier).scopes(&["read", "write"]).realm("orders")),
        )
        .route("/unguarded", get(whoami))
}

/// An access token for alice with scope `read` only, and its session id.
async fn read_token(server: &TestServer) -> (String, String) {
    let body: Value = server.create_session(json!({"sub": "alice", "client_id": "web", "scope": "read"})).await.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), body["session_id"].as_str().unwrap().to_string())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn challenge(&self) -> &str {
        self.headers.get("www-authenticate").map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// The RFC 9457 body; its status must match the response's.
    fn problem(&self) -> Value {
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let problem: Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(problem["status"], self.status.as_u16());
        problem
    }
}

async fn get_with(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status: parts.status, headers: parts.headers, body }
}

#[tokio::test]
async fn a_valid_token_with_the_scope_reaches_the_handler_with_its_claims() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    let (token, _) = read_token(&server).await;
    let answer = get_with(&app, "/orders", Some(&format!("Bearer {token}"))).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "alice"));
}

#[tokio::test]
async fn a_request_without_a_token_gets_a_challenge_without_an_error() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    for authorization in [None, Some("Basic YWxpY2U6c2VjcmV0")] {
        let answer = get_with(&app, "/orders", authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.challenge(), "Bearer realm=\"orders-api\"");
        assert!(answer.problem()["detail"].as_str().unwrap().contains("Bearer"));
    }
}

#[tokio::test]
async fn a_refused_token_gets_401_invalid_token_naming_the_failed_check() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    let (token, sid) = read_token(&server).await;
    let forged = format!("{}.{}", token.rsplit_once('.').unwrap().0, "A".repeat(86));
    let answer = get_with(&app, "/orders", Some(&format!("Bearer {forged}"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let described = "error_description=\"the access token was refused: the signature does not verify\"";
    assert_eq!(answer.challenge(), format!("Bearer realm=\"orders-api\", error=\"invalid_token\", {described}"));
    answer.problem();

    // A logged-out session's token, once the feed brought the logout.
    let ended = reqwest::Client::new()
        .delete(server.url(&format!("/v1/sessions/{sid}")))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let answer = loop {
        let answer = get_with(&app, "/orders", Some(&format!("Bearer {token}"))).await;
        if answer.status != StatusCode::OK || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenge().contains("error=\"invalid_token\"") && answer.challenge().contains("revoked"), "{}", answer.challenge());
}

#[tokio::test]
async fn a_token_without_every_required_scope_gets_403_insufficient_scope() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    let (token, _) = read_token(&server).await;
    let answer = get_with(&app, "/admin", Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.challenge(), "Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"read write\"");
    answer.problem();
}

#[tokio::test]
async fn a_malformed_authorization_header_gets_400_invalid_request() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    let answer = get_with(&app, "/orders", Some("Bearer")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.challenge().starts_with("Bearer realm=\"orders-api\", error=\"invalid_request\""), "{}", answer.challenge());
    answer.problem();
}

#[tokio::test]
async fn the_extractor_on_a_route_without_the_layer_answers_500() {
    let server = TestServer::start().await;
    let app = app(&server).await;
    let (token, _) = read_token(&server).await;
    let answer = get_with(&app, "/unguarded", Some(&format!("Bearer {token}"))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.problem()["detail"].as_str().unwrap().contains("RequireBearer"));
}
