//! The refresh cookie as browsers see it: one per client, never larger
//! than a browser keeps; `resource` at the code exchange.

use super::*;
use reqwest::header::SET_COOKIE;

const APP: &str = "https://app.example";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes()).as_ref())
}

/// Sign `client` in through the code handoff; returns the Set-Cookie line
/// and the token response.
async fn sign_in(server: &TestServer, client: &str, extra: &[(&str, &str)]) -> (String, Value) {
    let code =
        server.session(json!({"sub": "alice", "client_id": client, "code_challenge": challenge(), "code_challenge_method": "S256"})).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code["code"].as_str().unwrap()),
        ("client_id", client),
        ("code_verifier", VERIFIER),
    ];
    form.extend_from_slice(extra);
    let response = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", APP)
        .header("x-tessera-request", "1")
        .body(form_body(form))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    (cookie, response.json().await.unwrap())
}

#[tokio::test]
async fn each_cookie_client_has_a_refresh_cookie_of_its_own() {
    let server = server().await;
    let (spa, _) = sign_in(&server, "spa", &[]).await;
    let (spa2, _) = sign_in(&server, "spa2", &[]).await;
    assert!(spa.starts_with("__Secure-tessera-refresh-spa=rt1.") && spa.contains("Path=/oauth2"), "{spa}");
    assert!(spa2.starts_with("__Secure-tessera-refresh-spa2=rt1."), "{spa2}");
    // The browser sends both; each client refreshes with its own.
    let jar = format!("{}; {}", spa.split(';').next().unwrap(), spa2.split(';').next().unwrap());
    for client in ["spa", "spa2"] {
        let response = reqwest::Client::new()
            .post(server.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", APP)
            .header("x-tessera-request", "1")
            .header("cookie", &jar)
            .body(format!("grant_type=refresh_token&client_id={client}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{client}");
        let rotated = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
        assert!(rotated.starts_with(&format!("__Secure-tessera-refresh-{client}=rt1.")), "{rotated}");
    }
}

#[tokio::test]
async fn a_session_whose_refresh_cookie_would_pass_4096_bytes_is_refused_naming_claims() {
    let server = server().await;
    let claims_of = |size: usize| json!({"profile": "x".repeat(size)});
    let response = server
        .create_session(json!({"sub": "alice", "client_id": "spa", "claims": claims_of(2_900), "code_challenge": challenge(), "code_challenge_method": "S256"}))
        .await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "claims", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("4096"), "{problem}");
    // The same claims are fine for a client that gets the token in the body.
    let body = server.session(json!({"sub": "alice", "client_id": "web", "claims": claims_of(2_900)})).await;
    assert!(body["refresh_token"].as_str().unwrap().len() > 4096);
    // And smaller claims fit the cookie, every attribute included.
    let code = server
        .session(json!({"sub": "alice", "client_id": "spa", "claims": claims_of(1_500), "code_challenge": challenge(), "code_challenge_method": "S256"}))
        .await;
    assert!(code["code"].is_string());
}

#[tokio::test]
async fn resource_at_the_code_exchange_narrows_the_first_access_token() {
    let server = server().await;
    let (_, body) = sign_in(&server, "spa", &[("resource", "billing-api")]).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], "billing-api");
    let (_, body) = sign_in(&server, "spa", &[]).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], json!(["orders-api", "billing-api"]));
}
