//! DPoP-bound tokens from the real tessera at the verifier: `verify` and
//! `verify_dpop`, and the layer's RFC 9449 §7.1 answers, nonces included.

use crate::common::*;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use tessera_jose::dpop::{ProofClaims, ProofError, sign_proof};
use tessera_jose::{Algorithm, KeyPair};
use tessera_verifier::{RequireBearer, VerifiedToken, Verifier, VerifyError};
use tower::ServiceExt;

const ORIGIN: &str = "https://api.example.com";

fn key() -> KeyPair {
    KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A proof for `htm` at `htu` sent with `token`, optionally with a nonce.
fn proof(key: &KeyPair, htm: &str, htu: &str, token: &str, nonce: Option<&str>) -> String {
    let claims = ProofClaims::new(htm, htu, &tessera::tokens::random_id(), now()).access_token(token);
    sign_proof(key, &if let Some(nonce) = nonce { claims.nonce(nonce) } else { claims })
}

/// An access token for alice with scope `read`, bound to `key` when given.
async fn token(server: &TestServer, key: Option<&KeyPair>) -> String {
    let mut body = json!({"sub": "alice", "client_id": "web", "scope": "read"});
    if let Some(key) = key {
        body["dpop_jkt"] = json!(key.thumbprint());
    }
    server.session(body).await["access_token"].as_str().unwrap().to_string()
}

async fn verifier(server: &TestServer) -> tessera_verifier::VerifierBuilder {
    Verifier::builder().issuer(&server.base).audience("orders-api")
}

#[tokio::test]
async fn a_bound_token_verifies_only_with_a_fresh_proof_by_its_key() {
    let server = TestServer::start().await;
    let verifier = verifier(&server).await.build().await.unwrap();
    let key = key();
    let bound = token(&server, Some(&key)).await;
    let uri = format!("{ORIGIN}/orders");

    assert_eq!(verifier.verify(&bound).await.unwrap_err(), VerifyError::BoundToken, "a bound token is no bearer token");
    let good = proof(&key, "GET", &uri, &bound, None);
    let claims = verifier.verify_dpop(&bound, &good, "GET", &uri).await.unwrap();
    assert_eq!(claims.cnf.and_then(|cnf| cnf.jkt), Some(key.thumbprint()));
    assert_eq!(verifier.verify_dpop(&bound, &good, "GET", &uri).await.unwrap_err(), VerifyError::ProofReplayed);

    let by_another_key = proof(&self::key(), "GET", &uri, &bound, None);
    assert_eq!(verifier.verify_dpop(&bound, &by_another_key, "GET", &uri).await.unwrap_err(), VerifyError::KeyMismatch);
    let for_post = proof(&key, "POST", &uri, &bound, None);
    assert!(matches!(verifier.verify_dpop(&bound, &for_post, "GET", &uri).await, Err(VerifyError::Proof(ProofError::WrongMethod { .. }))));
    let for_another_token = proof(&key, "GET", &uri, "another.token", None);
    assert_eq!(
        verifier.verify_dpop(&bound, &for_another_token, "GET", &uri).await.unwrap_err(),
        VerifyError::Proof(ProofError::WrongAccessTokenHash)
    );

    let unbound = token(&server, None).await;
    assert!(verifier.verify(&unbound).await.is_ok());
    let for_unbound = proof(&key, "GET", &uri, &unbound, None);
    assert_eq!(verifier.verify_dpop(&unbound, &for_unbound, "GET", &uri).await.unwrap_err(), VerifyError::NotBound);
    // Each token's signature was checked once; every call after that took
    // its claims from the verified-token cache, and still judged its proof.
    let stats = verifier.verified_cache_stats();
    assert_eq!((stats.hits, stats.misses), (6, 2));
}

async fn whoami(VerifiedToken(claims): VerifiedToken) -> String {
    claims.sub
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: String,
}

async fn call(app: &Router, authorization: &str, proof: Option<&str>) -> Answer {
    let mut request = Request::get("/orders").header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let challenges = parts.headers.get_all("www-authenticate").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let nonce = parts.headers.get("dpop-nonce").map(|v| v.to_str().unwrap().to_string());
    let body = String::from_utf8(http_body_util::BodyExt::collect(body).await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status: parts.status, challenges, nonce, body }
}

#[tokio::test]
async fn the_layer_takes_dpop_tokens_and_refuses_a_bound_token_sent_as_bearer() {
    let server = TestServer::start().await;
    let verifier = verifier(&server).await.build().await.unwrap();
    let app = Router::new().route("/orders", get(whoami)).route_layer(RequireBearer::new(verifier).scopes(&["read"]).dpop(ORIGIN));
    let key = key();
    let bound = token(&server, Some(&key)).await;
    let uri = format!("{ORIGIN}/orders");

    let answer = call(&app, &format!("DPoP {bound}"), Some(&proof(&key, "GET", &uri, &bound, None))).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "alice"));

    let answer = call(&app, &format!("Bearer {bound}"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenges[0].starts_with("Bearer realm=\"orders-api\", error=\"invalid_token\""), "{:?}", answer.challenges);
    assert!(answer.challenges[0].contains("bound to a DPoP key"), "{:?}", answer.challenges);
    assert_eq!(answer.challenges[1], "DPoP realm=\"orders-api\", algs=\"ES256 ES384 EdDSA RS256 PS256\"");
    let problem: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["status"], 401);

    let answer = call(&app, &format!("DPoP {bound}"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.challenges[0].starts_with("DPoP realm=\"orders-api\", algs=\"ES256 ES384 EdDSA RS256 PS256\", error=\"invalid_dpop_proof\""),
        "{:?}",
        answer.challenges
    );

    let stolen = call(&app, &format!("DPoP {bound}"), Some(&proof(&self::key(), "GET", &uri, &bound, None))).await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert!(stolen.challenges[0].contains("error=\"invalid_token\""), "{:?}", stolen.challenges);

    // A proof for another service's URL is refused here.
    let elsewhere = call(&app, &format!("DPoP {bound}"), Some(&proof(&key, "GET", "https://other.example.com/orders", &bound, None))).await;
    assert!(elsewhere.challenges[0].contains("invalid_dpop_proof"), "{:?}", elsewhere.challenges);

    // Without a token at all: a challenge per scheme.
    let response = app.clone().oneshot(Request::get("/orders").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.headers().get_all("www-authenticate").iter().count(), 2);
}

#[tokio::test]
async fn dpop_only_refuses_bearer_tokens_and_nonces_are_handed_out_and_required() {
    let server = TestServer::start().await;
    let verifier = verifier(&server).await.dpop_nonces(&[9; 32], std::time::Duration::from_secs(60)).build().await.unwrap();
    let app = Router::new().route("/orders", get(whoami)).route_layer(RequireBearer::new(verifier).dpop_only(ORIGIN));
    let key = key();
    let uri = format!("{ORIGIN}/orders");

    let unbound = token(&server, None).await;
    let answer = call(&app, &format!("Bearer {unbound}"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenges.len(), 1, "DPoP only: {:?}", answer.challenges);
    assert!(answer.challenges[0].starts_with("DPoP ") && answer.challenges[0].contains("invalid_token"), "{:?}", answer.challenges);

    let bound = token(&server, Some(&key)).await;
    let asked = call(&app, &format!("DPoP {bound}"), Some(&proof(&key, "GET", &uri, &bound, None))).await;
    assert_eq!(asked.status, StatusCode::UNAUTHORIZED);
    assert!(asked.challenges[0].contains("error=\"use_dpop_nonce\""), "{:?}", asked.challenges);
    let nonce = asked.nonce.expect("a DPoP-Nonce");
    let answer = call(&app, &format!("DPoP {bound}"), Some(&proof(&key, "GET", &uri, &bound, Some(&nonce)))).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "alice"));
    assert!(answer.nonce.is_some(), "a fresh nonce rides on the answer");
}
