//! `tessera::verifier` against tokens from the real tessera binary: what
//! verifies, and the specific error each refused token gets.

#[path = "server/helpers/mod.rs"]
#[allow(dead_code)] // this binary uses a few of the server tests' helpers
mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tessera::verifier::{Algorithm, BuildError, Verifier, VerifierBuilder, VerifyError};

/// A session for the public client `web`: audience orders-api, scope read.
async fn access_token(server: &TestServer) -> (String, Value) {
    let response = server.create_session(json!({"sub": "alice", "client_id": "web", "scope": "read", "claims": {"tenant": "acme"}})).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), body)
}

fn builder(server: &TestServer) -> VerifierBuilder {
    Verifier::builder().issuer(&server.base).audience("orders-api")
}

/// The decoded header and the still-encoded payload.
fn split(token: &str) -> (Value, String) {
    let (header, rest) = token.split_once('.').unwrap();
    (serde_json::from_slice(&B64.decode(header).unwrap()).unwrap(), rest.split_once('.').unwrap().0.to_string())
}

fn encode(value: &Value) -> String {
    B64.encode(value.to_string())
}

#[tokio::test]
async fn session_tokens_verify_for_every_signing_algorithm() {
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256"] {
        let server = TestServer::start_with(&default_config(), &[("TESSERA_TOKENS_ALGORITHM", alg)]).await;
        let (token, session) = access_token(&server).await;
        let verifier = builder(&server).build().await.unwrap();
        let claims = verifier.verify(&token).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.iss, server.base);
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.aud, ["orders-api"]);
        assert_eq!(claims.client_id, "web");
        assert_eq!(claims.sid.as_deref(), session["session_id"].as_str());
        assert!(claims.has_scope("read") && !claims.has_scope("write"));
        assert_eq!(claims.extra["tenant"], "acme");
        assert_eq!(claims.exp - claims.iat, 600);
    }
}

#[tokio::test]
async fn a_token_for_another_audience_fails_with_wrong_audience() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let verifier = Verifier::builder().issuer(&server.base).audience("billing-api").build().await.unwrap();
    let error = verifier.verify(&token).await.unwrap_err();
    assert_eq!(error, VerifyError::WrongAudience { aud: vec!["orders-api".into()], expected: vec!["billing-api".into()] });
    let both = Verifier::builder().issuer(&server.base).audience("billing-api").audience("orders-api").build().await.unwrap();
    assert!(both.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_from_another_issuer_fails_with_wrong_issuer() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let verifier = Verifier::builder()
        .issuer("https://other.example")
        .jwks_url(server.url("/.well-known/jwks.json"))
        .audience("orders-api")
        .revocation_feed(false)
        .build()
        .await
        .unwrap();
    assert!(matches!(verifier.verify(&token).await, Err(VerifyError::WrongIssuer { iss, .. }) if iss == server.base));
    // RFC 8414 §3.3: the metadata must name the very issuer that was asked for.
    let error = builder(&server).issuer(format!("{}/", server.base)).build().await.unwrap_err();
    assert!(matches!(error, BuildError::IssuerMismatch { found, .. } if found == server.base));
}

#[tokio::test]
async fn an_expired_token_fails_with_expired() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_TOKENS_ACCESS_TTL", "1s")]).await;
    let (token, _) = access_token(&server).await;
    let strict = builder(&server).leeway(Duration::ZERO).build().await.unwrap();
    let (_, payload) = split(&token);
    let exp = serde_json::from_slice::<Value>(&B64.decode(payload).unwrap()).unwrap()["exp"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(strict.verify(&token).await.unwrap_err(), VerifyError::Expired { exp });
    let lenient = builder(&server).leeway(Duration::from_secs(60)).build().await.unwrap();
    assert!(lenient.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_tampered_token_fails_with_bad_signature() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let verifier = builder(&server).build().await.unwrap();
    assert!(verifier.verify(&token).await.is_ok());
    let (input, signature) = token.rsplit_once('.').unwrap();
    let middle = signature.len() / 2;
    let flipped = if &signature[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{input}.{}{flipped}{}", &signature[..middle], &signature[middle + 1..]);
    assert_eq!(verifier.verify(&tampered).await.unwrap_err(), VerifyError::BadSignature);

    let (header, payload) = split(&token);
    let mut claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["scope"] = "read write admin".into();
    let escalated = format!("{}.{}.{signature}", encode(&header), encode(&claims));
    assert_eq!(verifier.verify(&escalated).await.unwrap_err(), VerifyError::BadSignature);
}

#[tokio::test]
async fn a_token_of_another_type_fails_with_wrong_type() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let verifier = builder(&server).build().await.unwrap();
    let (mut header, payload) = split(&token);
    header["typ"] = "JWT".into();
    let plain_jwt = format!("{}.{payload}.{}", encode(&header), token.rsplit_once('.').unwrap().1);
    assert_eq!(verifier.verify(&plain_jwt).await.unwrap_err(), VerifyError::WrongType { found: Some("JWT".into()), expected: "at+jwt" });
    // The revocation feed is signed by the same key: still no access token.
    let feed = reqwest::get(server.url("/v1/revocations")).await.unwrap().text().await.unwrap();
    let error = verifier.verify(&feed).await.unwrap_err();
    assert_eq!(error, VerifyError::WrongType { found: Some("revocations+jwt".into()), expected: "at+jwt" });
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_fails_with_algorithm_mismatch() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let verifier = builder(&server).build().await.unwrap();
    let (mut header, payload) = split(&token);
    let kid = header["kid"].as_str().unwrap().to_string();
    let jwks: Value = reqwest::get(server.url("/.well-known/jwks.json")).await.unwrap().json().await.unwrap();
    let public_jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap().to_string();

    // The classic confusion: HMAC under the published key, hoping the
    // verifier takes `alg` from the header.
    header["alg"] = "HS256".into();
    let input = format!("{}.{payload}", encode(&header));
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_jwk.as_bytes()), input.as_bytes());
    let confused = format!("{input}.{}", B64.encode(mac.as_ref()));
    let expected = VerifyError::AlgorithmMismatch { header: "HS256".into(), key: Algorithm::ES256 };
    assert_eq!(verifier.verify(&confused).await.unwrap_err(), expected);

    header["alg"] = "none".into();
    let unsigned = format!("{}.{payload}.", encode(&header));
    assert_eq!(
        verifier.verify(&unsigned).await.unwrap_err(),
        VerifyError::AlgorithmMismatch { header: "none".into(), key: Algorithm::ES256 }
    );
}

#[tokio::test]
async fn a_key_algorithm_outside_the_allow_list_fails_with_algorithm_not_allowed() {
    let server = TestServer::start().await;
    let (token, _) = access_token(&server).await;
    let eddsa_only = builder(&server).algorithms(&[Algorithm::EdDSA]).build().await.unwrap();
    assert_eq!(eddsa_only.verify(&token).await.unwrap_err(), VerifyError::AlgorithmNotAllowed(Algorithm::ES256));
}
