//! The browser flow over HTTP: one-time code + PKCE handoff, the refresh
//! cookie and every attribute it carries, the CSRF rules, CORS preflights,
//! browser logout, and dev mode.

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

const APP: &str = "https://app.example";
const ISSUER: &str = "https://auth.example";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn config() -> String {
    format!(
        "{}\n[[clients]]\nid = \"spa\"\npublic = true\nrefresh_cookie = true\nallowed_origins = [\"{APP}\"]\naudiences = [\"orders-api\"]\n",
        default_config()
    )
}

async fn server() -> TestServer {
    TestServer::start_with(&config(), &[("TESSERA_ISSUER", ISSUER)]).await
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The login backend's part: a session for the SPA behind a code.
async fn code_for(server: &TestServer, sub: &str) -> Value {
    let response = server
        .create_session(json!({"sub": sub, "client_id": "spa", "code_challenge": challenge(VERIFIER), "code_challenge_method": "S256"}))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "no tokens for the backend: {body}");
    body
}

/// The page's code exchange: from the app's origin, with the CSRF header.
async fn exchange(server: &TestServer, code: &str, verifier: Option<&str>) -> reqwest::Response {
    exchange_from(server, code, verifier, Some(APP), true).await
}

async fn exchange_from(server: &TestServer, code: &str, verifier: Option<&str>, origin: Option<&str>, csrf: bool) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("client_id", "spa")];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let mut request = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if csrf {
        request = request.header("x-tessera-request", "1");
    }
    request.send().await.unwrap()
}

/// The refresh cookie's value and its attributes, from Set-Cookie.
fn refresh_cookie(headers: &HeaderMap) -> (String, Vec<String>) {
    let set = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Secure-tessera-refresh-spa="))
        .expect("a refresh cookie");
    let mut parts = set.split("; ");
    let value = parts.next().unwrap().split_once('=').unwrap().1.to_string();
    (value, parts.map(str::to_string).collect())
}

/// A cookie-carried refresh, as the SPA's page sends it.
async fn cookie_refresh(server: &TestServer, cookie: &str, origin: Option<&str>, csrf: bool) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("__Secure-tessera-refresh-spa={cookie}"))
        .body("grant_type=refresh_token&client_id=spa");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if csrf {
        request = request.header("x-tessera-request", "1");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_code_handoff_sets_a_strict_host_only_cookie_and_keeps_the_token_out_of_the_body() {
    let server = server().await;
    let code = code_for(&server, "alice").await;
    let response = exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await;
    assert_eq!(response.status(), 200);
    let (value, attributes) = refresh_cookie(response.headers());
    assert!(value.starts_with("rt1."));
    for expected in ["Path=/oauth2", "HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(attributes.iter().any(|a| a == expected), "missing {expected}: {attributes:?}");
    }
    assert!(attributes.iter().any(|a| a.starts_with("Max-Age=")));
    assert!(!attributes.iter().any(|a| a.starts_with("Domain")), "host-only: no Domain");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "the body carries only the access token: {body}");
    assert_eq!(body["session_id"], code["session_id"]);
    assert!(server.active(body["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_cross_site_form_cannot_exchange_a_code_into_the_cookie() {
    let server = server().await;
    let code = code_for(&server, "mallory").await;
    for (origin, csrf) in [(Some("https://evil.example"), false), (Some("https://evil.example"), true), (None, true), (Some(APP), false)] {
        let response = exchange_from(&server, code["code"].as_str().unwrap(), Some(VERIFIER), origin, csrf).await;
        assert_eq!(response.status(), 403, "origin {origin:?}, header {csrf}");
        assert!(!response.headers().contains_key(SET_COOKIE), "no cookie may be set");
    }
}

#[tokio::test]
async fn a_code_for_a_session_ended_before_the_exchange_is_refused() {
    let server = server().await;
    let code = code_for(&server, "dave").await;
    assert_eq!(server.logout_everywhere("dave").await, 204);
    let response = exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_second_use_of_the_code_fails_and_ends_what_the_first_issued() {
    let server = server().await;
    let code = code_for(&server, "alice").await;
    let first: Value = exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await.json().await.unwrap();
    let second = exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await;
    assert_eq!(second.status(), 400);
    assert_eq!(second.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert!(!server.active(first["access_token"].as_str().unwrap()).await, "the first use's tokens are revoked");
}

#[tokio::test]
async fn a_wrong_or_missing_verifier_is_refused() {
    let server = server().await;
    let code = code_for(&server, "alice").await;
    let response = exchange(&server, code["code"].as_str().unwrap(), None).await;
    assert_eq!((response.status().as_u16(), response.json::<Value>().await.unwrap()["error"].clone()), (400, json!("invalid_request")));
    let code = code_for(&server, "alice").await;
    let wrong = "x".repeat(43);
    let response = exchange(&server, code["code"].as_str().unwrap(), Some(&wrong)).await;
    assert_eq!((response.status().as_u16(), response.json::<Value>().await.unwrap()["error"].clone()), (400, json!("invalid_grant")));
    // Another client cannot redeem the SPA's code.
    let code = code_for(&server, "alice").await;
    let response = server
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code["code"].as_str().unwrap()),
                ("client_id", "web"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Only S256.
    let response = server
        .create_session(json!({"sub": "a", "client_id": "spa", "code_challenge": challenge(VERIFIER), "code_challenge_method": "plain"}))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["field"], "code_challenge_method");
}

#[tokio::test]
async fn cookie_carried_refresh_needs_a_listed_origin_and_the_custom_header() {
    let server = server().await;
    let code = code_for(&server, "alice").await;
    let (cookie, _) = refresh_cookie(exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await.headers());
    for (origin, csrf, why) in
        [(None, true, "no Origin"), (Some("https://evil.example"), true, "foreign Origin"), (Some(APP), false, "no custom header")]
    {
        let response = cookie_refresh(&server, &cookie, origin, csrf).await;
        assert_eq!(response.status(), 403, "{why}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "access_denied", "{why}: {body}");
    }
    // The refusals consumed nothing; the real page succeeds and gets a rotated cookie.
    let response = cookie_refresh(&server, &cookie, Some(APP), true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], APP);
    assert_eq!(response.headers()["access-control-allow-credentials"], "true");
    let (rotated, _) = refresh_cookie(response.headers());
    assert_ne!(rotated, cookie, "rotated on each refresh");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn cors_preflights_are_granted_to_listed_origins_only() {
    let server = server().await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, server.url("/oauth2/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-tessera-request, content-type")
            .send()
    };
    let granted = preflight(APP).await.unwrap();
    assert_eq!(granted.status(), 204);
    assert_eq!(granted.headers()["access-control-allow-origin"], APP);
    assert_eq!(granted.headers()["access-control-allow-credentials"], "true");
    assert!(granted.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-tessera-request"));
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    // Discovery documents are for anyone, without credentials.
    let jwks =
        reqwest::Client::new().get(server.url("/.well-known/jwks.json")).header("origin", "https://any.example").send().await.unwrap();
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    assert!(!jwks.headers().contains_key("access-control-allow-credentials"));
}

#[tokio::test]
async fn browser_logout_ends_the_session_and_clears_the_cookie() {
    let server = server().await;
    let code = code_for(&server, "alice").await;
    let response = exchange(&server, code["code"].as_str().unwrap(), Some(VERIFIER)).await;
    let (cookie, _) = refresh_cookie(response.headers());
    let access: Value = response.json().await.unwrap();
    let logout = |csrf: bool| {
        let mut request = reqwest::Client::new()
            .post(server.url("/oauth2/logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("__Secure-tessera-refresh-spa={cookie}"))
            .header("origin", APP)
            .body("client_id=spa");
        if csrf {
            request = request.header("x-tessera-request", "1");
        }
        request.send()
    };
    assert_eq!(logout(false).await.unwrap().status(), 403);
    assert!(server.active(access["access_token"].as_str().unwrap()).await);
    let response = logout(true).await.unwrap();
    assert_eq!(response.status(), 204);
    let (value, attributes) = refresh_cookie(response.headers());
    assert_eq!(value, "");
    assert!(attributes.iter().any(|a| a == "Max-Age=0"), "{attributes:?}");
    assert!(!server.active(access["access_token"].as_str().unwrap()).await);
    let response = cookie_refresh(&server, &cookie, Some(APP), true).await;
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn dev_mode_serves_the_demo_and_relaxes_the_cookie_only_on_localhost() {
    let production = server().await;
    let response = reqwest::get(production.url("/demo")).await.unwrap();
    assert_eq!(response.status(), 404, "no demo outside --dev");

    let dev = TestServer::start_with_flags(&config(), &[], &["--dev"]).await;
    let page = reqwest::get(dev.url("/demo")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert!(page.text().await.unwrap().contains("tessera browser demo"));
    let login: Value = reqwest::Client::new()
        .post(dev.url("/demo/login"))
        .json(&json!({"sub": "alice", "code_challenge": challenge(VERIFIER)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = form_body([
        ("grant_type", "authorization_code"),
        ("code", login["code"].as_str().unwrap()),
        ("client_id", "demo"),
        ("code_verifier", VERIFIER),
    ]);
    // The demo client takes DPoP-bound tokens only (require_dpop).
    let key = tessera_jose::KeyPair::from_pkcs8(
        tessera_jose::Algorithm::ES256,
        &tessera_jose::KeyPair::generate_pkcs8(tessera_jose::Algorithm::ES256).unwrap(),
    )
    .unwrap();
    let claims = tessera_jose::dpop::ProofClaims::new("POST", &dev.url("/oauth2/token"), "demo-proof-1", chrono::Utc::now().timestamp());
    let response = reqwest::Client::new()
        .post(dev.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", dev.base.as_str())
        .header("x-tessera-request", "1")
        .header("dpop", tessera_jose::dpop::sign_proof(&key, &claims))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.starts_with("tessera-refresh-demo=") && !set.contains("Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(dev.logs().contains("development mode"), "the relaxation is warned about");
}
