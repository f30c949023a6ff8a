//! DPoP (RFC 9449) against the real binary: bound tokens from every grant
//! and from `POST /v1/sessions`, each refusal at the token endpoint, the
//! binding through rotation and grace retries, `require_dpop`, nonces,
//! replays across two replicas on one Redis, and a third-party client
//! (openid-client 6 with panva's jose, in `tests/dpop-client/`).

use crate::helpers::redis::RedisServer;
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_jose::dpop::{ProofClaims, sign_proof};
use tessera_jose::{Algorithm, KeyPair};

mod demo_api;
mod third_party;

/// A client's DPoP key and the proofs it makes.
struct DpopKey(KeyPair);

impl DpopKey {
    fn new() -> Self {
        Self(KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap())
    }

    fn jkt(&self) -> String {
        self.0.thumbprint()
    }

    /// A fresh proof for `htm` at `htu`, made `age` seconds ago (negative: in the future).
    fn proof_aged(&self, htm: &str, htu: &str, age: i64) -> String {
        let iat = chrono::Utc::now().timestamp() - age;
        sign_proof(&self.0, &ProofClaims::new(htm, htu, &tessera::tokens::random_id(), iat))
    }

    /// A fresh proof for the token endpoint of `issuer`.
    fn proof(&self, issuer: &str) -> String {
        self.proof_aged("POST", &format!("{issuer}/oauth2/token"), 0)
    }

    fn proof_with_nonce(&self, issuer: &str, nonce: &str) -> String {
        let claims =
            ProofClaims::new("POST", &format!("{issuer}/oauth2/token"), &tessera::tokens::random_id(), chrono::Utc::now().timestamp());
        sign_proof(&self.0, &claims.nonce(nonce))
    }

    /// A proof with any header and claims, signed by this key (whether the
    /// header's alg and jwk say so or not).
    fn raw(&self, header: &Value, claims: &Value) -> String {
        tessera_jose::sign_compact(&URL_SAFE_NO_PAD.encode(header.to_string()), claims.to_string().as_bytes(), &self.0)
    }

    fn public_jwk(&self) -> Value {
        self.0.public_members().iter().map(|(name, value)| (name.to_string(), Value::from(value.as_str()))).collect()
    }
}

/// POST /oauth2/token with an optional `DPoP` header; status, body and the
/// `DPoP-Nonce` header.
async fn token_with(
    server: &TestServer,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form.iter().copied()));
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let nonce = response.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_string());
    (status, response.json().await.unwrap_or_default(), nonce)
}

async fn refresh_with(server: &TestServer, refresh_token: &str, proof: Option<&str>) -> (u16, Value) {
    let (status, body, _) =
        token_with(server, None, &[("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", refresh_token)], proof).await;
    (status, body)
}

/// The claims of a token, unverified.
fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn refused_proof(status: u16, body: &Value) {
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
}

/// A web session bound to `key` from the start (`dpop_jkt`).
async fn bound_session(server: &TestServer, key: &DpopKey) -> Value {
    server.session(json!({"sub": "alice", "client_id": "web", "dpop_jkt": key.jkt()})).await
}

async fn introspect(server: &TestServer, token: &str) -> Value {
    server.form("/oauth2/introspect", Some((BACKEND_ID, BACKEND_SECRET)), &[("token", token)]).await.json().await.unwrap()
}

#[tokio::test]
async fn a_session_bound_with_dpop_jkt_refreshes_only_with_that_key_and_stays_bound() {
    let server = TestServer::start().await;
    let metadata: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server")).await.unwrap().json().await.unwrap();
    assert_eq!(metadata["dpop_signing_alg_values_supported"], json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"]));
    let key = DpopKey::new();
    let session = bound_session(&server, &key).await;
    assert_eq!(session["token_type"], "DPoP");
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["cnf"], json!({"jkt": key.jkt()}));
    let seen = introspect(&server, access).await;
    assert_eq!((seen["active"].as_bool(), seen["token_type"].as_str()), (Some(true), Some("DPoP")));
    assert_eq!(seen["cnf"]["jkt"], key.jkt());
    let seen = introspect(&server, session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(seen["cnf"]["jkt"], key.jkt(), "the refresh token is bound too: {seen}");

    // Three rotations: each child is bound to the same key.
    let mut refresh = session["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (status, body) = refresh_with(&server, &refresh, Some(&key.proof(&server.base))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["token_type"].as_str(), &claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"]),
            (Some("DPoP"), &json!(key.jkt()))
        );
        refresh = body["refresh_token"].as_str().unwrap().to_string();
    }
    assert_eq!(introspect(&server, &refresh).await["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn a_bound_refresh_token_without_a_proof_or_with_another_keys_is_refused_and_stays_unused() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let session = bound_session(&server, &key).await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let (status, body) = refresh_with(&server, refresh, None).await;
    refused_proof(status, &body);
    assert!(body["error_description"].as_str().unwrap().contains("bound to a DPoP key"), "{body}");
    let (status, body) = refresh_with(&server, refresh, Some(&DpopKey::new().proof(&server.base))).await;
    refused_proof(status, &body);
    assert!(body["error_description"].as_str().unwrap().contains("another key"), "{body}");
    // Neither attempt consumed it: the holder of the key still refreshes, once.
    let (status, body) = refresh_with(&server, refresh, Some(&key.proof(&server.base))).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.active(session["access_token"].as_str().unwrap()).await, "the session lives on");
}

#[tokio::test]
async fn proofs_for_another_method_or_uri_or_outside_the_time_window_are_refused() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let session = bound_session(&server, &key).await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let token_uri = server.url("/oauth2/token");
    for (what, proof) in [
        ("htm GET", key.proof_aged("GET", &token_uri, 0)),
        ("htu of the revocation endpoint", key.proof_aged("POST", &server.url("/oauth2/revoke"), 0)),
        ("htu of another host", key.proof_aged("POST", "http://elsewhere.test/oauth2/token", 0)),
        ("iat two minutes ago", key.proof_aged("POST", &token_uri, 120)),
        ("iat a minute ahead", key.proof_aged("POST", &token_uri, -60)),
        ("not a JWT", "not-a-proof".to_string()),
    ] {
        let (status, body) = refresh_with(&server, refresh, Some(&proof)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{what}: {body}");
    }
    // Query, case and default port do not matter (RFC 9449 §4.3).
    let spelled_otherwise = token_uri.replace("http://", "HTTP://") + "?ignored=1";
    let (status, body) = refresh_with(&server, refresh, Some(&key.proof_aged("POST", &spelled_otherwise, 0))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn symmetric_none_and_private_key_proofs_are_refused() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"jti": "j-1", "htm": "POST", "htu": server.url("/oauth2/token"), "iat": now});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut private = key.public_jwk();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    for (what, proof) in [
        ("alg none", unsigned),
        (
            "HS256 with a symmetric key",
            key.raw(&json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}), &claims),
        ),
        ("HS256 with a public key", key.raw(&json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk()}), &claims)),
        ("a private key in the jwk", key.raw(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}), &claims)),
        ("typ JWT", key.raw(&json!({"typ": "JWT", "alg": "ES256", "jwk": key.public_jwk()}), &claims)),
    ] {
        let (status, body, _) =
            token_with(&server, Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials")], Some(&proof)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{what}: {body}");
    }
    let (status, body, _) = token_with(
        &server,
        Some((SERVICE_ID, SERVICE_SECRET)),
        &[("grant_type", "client_credentials")],
        Some(&key.raw(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()}), &claims)),
    )
    .await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "the same claims, properly made: {body}");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let proof = key.proof(&server.base);
    let form = [("grant_type", "client_credentials")];
    let (status, body, _) = token_with(&server, Some((SERVICE_ID, SERVICE_SECRET)), &form, Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt(), "a bound service token");
    let (status, body, _) = token_with(&server, Some((SERVICE_ID, SERVICE_SECRET)), &form, Some(&proof)).await;
    refused_proof(status, &body);
    assert!(body["error_description"].as_str().unwrap().contains("used before"), "{body}");
    let (status, body, _) = token_with(&server, Some((SERVICE_ID, SERVICE_SECRET)), &form, None).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("Bearer")), "without a proof a service token is a bearer token: {body}");
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound_but_its_access_tokens_are() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    // The login backend's own session: a confidential client.
    let session = server.session(json!({"sub": "alice", "dpop_jkt": key.jkt()})).await;
    assert_eq!(claims(session["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
    let refresh = session["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&server, refresh).await.get("cnf"), None, "RFC 9449 §5: bound by client authentication instead");
    let other = DpopKey::new();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, body, _) = token_with(&server, Some((BACKEND_ID, BACKEND_SECRET)), &form, Some(&other.proof(&server.base))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], other.jkt(), "bound to this request's key");
}

const VERIFIER: &str = "a-code-verifier-of-at-least-forty-three-characters-0123456789";

/// A one-time code for a web session of `sub`, bound to `VERIFIER` and,
/// when given, to `jkt`.
async fn handoff_code(server: &TestServer, sub: &str, jkt: Option<String>) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes()));
    let mut body = json!({"sub": sub, "client_id": "web", "code_challenge": challenge, "code_challenge_method": "S256"});
    if let Some(jkt) = jkt {
        body["dpop_jkt"] = json!(jkt);
    }
    server.session(body).await["code"].as_str().unwrap().to_string()
}

async fn exchange(server: &TestServer, code: &str, proof: Option<String>) -> (u16, Value, Option<String>) {
    let form = [("grant_type", "authorization_code"), ("client_id", "web"), ("code", code), ("code_verifier", VERIFIER)];
    token_with(server, None, &form, proof.as_deref()).await
}

#[tokio::test]
async fn a_code_bound_to_a_key_is_exchanged_only_with_a_proof_by_that_key() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let (status, body, _) = exchange(&server, &handoff_code(&server, "alice", Some(key.jkt())).await, None).await;
    refused_proof(status, &body);
    let stranger = Some(DpopKey::new().proof(&server.base));
    let (status, body, _) = exchange(&server, &handoff_code(&server, "alice", Some(key.jkt())).await, stranger).await;
    refused_proof(status, &body);
    let (status, body, _) = exchange(&server, &handoff_code(&server, "alice", Some(key.jkt())).await, Some(key.proof(&server.base))).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
    let (status, body) = refresh_with(&server, body["refresh_token"].as_str().unwrap(), None).await;
    refused_proof(status, &body);

    // A code made without dpop_jkt binds to whatever key the exchange proves.
    let other = DpopKey::new();
    let (status, body, _) = exchange(&server, &handoff_code(&server, "bob", None).await, Some(other.proof(&server.base))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], other.jkt());
}

#[tokio::test]
async fn a_retry_inside_the_grace_window_must_prove_the_same_key() {
    let server = TestServer::start().await;
    // An unbound session: its first DPoP refresh binds the child.
    let session = server.web_session("alice").await;
    assert_eq!(session["token_type"], "Bearer");
    let refresh = session["refresh_token"].as_str().unwrap();
    let key = DpopKey::new();
    let (status, first) = refresh_with(&server, refresh, Some(&key.proof(&server.base))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(introspect(&server, first["refresh_token"].as_str().unwrap()).await["cnf"]["jkt"], key.jkt());
    // A retry by the same key gets the same child (a new proof, same key).
    let (status, again) = refresh_with(&server, refresh, Some(&key.proof(&server.base))).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    assert_eq!(claims(again["access_token"].as_str().unwrap())["jti"], claims(first["access_token"].as_str().unwrap())["jti"]);
    // Another key, or none, inside the window: refused, and no second child.
    let (status, body) = refresh_with(&server, refresh, Some(&DpopKey::new().proof(&server.base))).await;
    refused_proof(status, &body);
    let (status, body) = refresh_with(&server, refresh, None).await;
    refused_proof(status, &body);
}

#[tokio::test]
async fn require_dpop_refuses_sessions_without_a_key_and_token_requests_without_a_proof() {
    let config = format!("{}\n[[clients]]\nid = \"spa\"\npublic = true\nrequire_dpop = true\n", default_config());
    let server = TestServer::start_with(&config, &[]).await;
    let response = server.create_session(json!({"sub": "alice", "client_id": "spa"})).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "dpop_jkt", "{problem}");
    let key = DpopKey::new();
    let session = server.session(json!({"sub": "alice", "client_id": "spa", "dpop_jkt": key.jkt()})).await;
    let refresh = session["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("client_id", "spa"), ("refresh_token", refresh)];
    let (status, body, _) = token_with(&server, None, &form, None).await;
    refused_proof(status, &body);
    let (status, body, _) = token_with(&server, None, &form, Some(&key.proof(&server.base))).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    let response = server.create_session(json!({"sub": "alice", "client_id": "spa", "dpop_jkt": "not-a-thumbprint"})).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn with_nonces_required_a_proof_without_one_gets_use_dpop_nonce_and_the_nonce() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_DPOP_REQUIRE_NONCE", "true")]).await;
    let key = DpopKey::new();
    let form = [("grant_type", "client_credentials")];
    let auth = Some((SERVICE_ID, SERVICE_SECRET));
    let (status, body, nonce) = token_with(&server, auth, &form, Some(&key.proof(&server.base))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("use_dpop_nonce")), "{body}");
    let nonce = nonce.expect("a DPoP-Nonce header");
    let (status, body, _) = token_with(&server, auth, &form, Some(&key.proof_with_nonce(&server.base, "made-up"))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("use_dpop_nonce")), "{body}");
    let (status, body, fresh) = token_with(&server, auth, &form, Some(&key.proof_with_nonce(&server.base, &nonce))).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    assert!(fresh.is_some(), "successful answers carry a nonce too");
    let (status, body, _) = token_with(&server, auth, &form, None).await;
    assert_eq!(status, 200, "bearer requests need no nonce: {body}");
}

#[tokio::test]
async fn revocation_and_logout_end_bound_tokens_like_bearer_ones() {
    let server = TestServer::start().await;
    let key = DpopKey::new();
    let session = bound_session(&server, &key).await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    assert!(!server.active(access).await);
    let (status, body) = refresh_with(&server, session["refresh_token"].as_str().unwrap(), Some(&key.proof(&server.base))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    let other = bound_session(&server, &key).await;
    let refresh = other["refresh_token"].as_str().unwrap();
    let response = server.form("/oauth2/revoke", None, &[("token", refresh), ("client_id", "web")]).await;
    assert_eq!(response.status(), 200);
    assert!(!server.active(other["access_token"].as_str().unwrap()).await, "revoking the refresh token ends the session");
}

#[tokio::test]
async fn a_proof_used_on_one_replica_is_refused_on_the_other_and_nonces_work_across_them() {
    if !crate::helpers::redis::available() {
        return;
    }
    let redis = RedisServer::start();
    let keys = tempfile::tempdir().unwrap();
    let keys_dir = keys.path().join("keys").display().to_string();
    let url = redis.url();
    let issuer = "http://tessera.test";
    let env = [
        ("TESSERA_KEYS_DIR", keys_dir.as_str()),
        ("TESSERA_STORE_KIND", "redis"),
        ("TESSERA_STORE_URL", url.as_str()),
        ("TESSERA_ISSUER", issuer),
        ("TESSERA_DPOP_REQUIRE_NONCE", "true"),
    ];
    let a = TestServer::start_with(&default_config(), &env).await;
    let b = TestServer::start_with(&default_config(), &env).await;
    let key = DpopKey::new();
    let auth = Some((SERVICE_ID, SERVICE_SECRET));
    let form = [("grant_type", "client_credentials")];
    let (_, _, nonce) = token_with(&a, auth, &form, Some(&key.proof(issuer))).await;
    let nonce = nonce.expect("A hands out a nonce");
    let proof = key.proof_with_nonce(issuer, &nonce);
    let (status, body, _) = token_with(&b, auth, &form, Some(&proof)).await;
    assert_eq!(status, 200, "B accepts A's nonce (one secret, no shared state): {body}");
    let (status, body, _) = token_with(&a, auth, &form, Some(&proof)).await;
    refused_proof(status, &body);
    let (status, body, _) = token_with(&b, auth, &form, Some(&proof)).await;
    refused_proof(status, &body);
}
