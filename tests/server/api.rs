//! Black-box tests of the real binary: sessions, client credentials,
//! discovery, errors, key reload, shutdown, and what reaches the logs.

use crate::helpers::*;
use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}

async fn oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

#[tokio::test]
async fn session_access_token_is_rfc9068_and_verifies_from_the_jwks() {
    let server = TestServer::start().await;
    let response = server
        .create_session(json!({"sub": "alice", "client_id": "web", "aud": "orders-api", "scope": "read", "claims": {"tenant": "acme", "roles": ["admin"]}}))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["refresh_expires_in"], 14 * 86_400);
    assert_eq!(body["scope"], "read");
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.starts_with("rt1."), "opaque refresh token, not a JWS");

    let (header, claims) = verify_with_ring(body["access_token"].as_str().unwrap(), &server.jwks().await);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["sid"], body["session_id"]);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert_eq!(claims["auth_time"], claims["iat"]);
    assert!(claims["jti"].as_str().unwrap().len() >= 22);

    // Two sessions never share ids.
    let second = server.web_session("alice").await;
    assert_ne!(second["session_id"], body["session_id"]);
    // Without scope/aud the client's full set is granted.
    assert_eq!(second["scope"], "read write");
}

#[tokio::test]
async fn eddsa_and_rsa_keys_issue_verifiable_tokens() {
    for alg in ["EdDSA", "PS256"] {
        let server = TestServer::start_with(&default_config(), &[("TESSERA_TOKENS_ALGORITHM", alg)]).await;
        let token = server.access_token(json!({"sub": "bob"})).await;
        let (header, claims) = verify_with_ring(&token, &server.jwks().await);
        assert_eq!(header["alg"], alg);
        // The backend's own session: its configured audience.
        assert_eq!(claims["aud"], "backend-api");
    }
}

#[tokio::test]
async fn malformed_session_requests_get_clear_problems() {
    let server = TestServer::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"sub": ""}), "sub"),
        (json!({"sub": "x".repeat(256)}), "sub"),
        (json!({"sub": "a", "client_id": "web", "aud": "admin-api"}), "aud"),
        (json!({"sub": "a", "client_id": "web", "aud": []}), "aud"),
        (json!({"sub": "a", "client_id": "web", "scope": "read admin"}), "scope"),
        (json!({"sub": "a", "claims": {"blob": "x".repeat(5000)}}), "claims"),
        (json!({"sub": "a", "claims": {"iss": "https://evil"}}), "claims.iss"),
        (json!({"sub": "a", "claims": {"scope": "admin"}}), "claims.scope"),
        (json!({"sub": "a", "claims": "not an object"}), "claims"),
        (json!({"sub": "a", "admin": true}), "admin"),
        (json!({"subject": "a"}), "subject"),
        (json!({"sub": "a", "client_id": "nobody"}), "client_id"),
    ];
    for (body, field) in cases {
        let response = server.create_session(body.clone()).await;
        let problem = problem(response, 400).await;
        assert_eq!(problem["field"], field, "for {body}: {problem}");
    }
    let client = reqwest::Client::new();
    let url = server.url("/v1/sessions");

    // Wrong content type.
    let response = client
        .post(&url)
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .header("content-type", "text/plain")
        .body(r#"{"sub":"a"}"#)
        .send()
        .await
        .unwrap();
    problem(response, 415).await;
    // Not JSON at all.
    let response = client
        .post(&url)
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(response, 400).await;
    // No credentials, wrong secret, unknown client: 401 with a challenge.
    for auth in [None, Some((BACKEND_ID, "wrong")), Some(("ghost", BACKEND_SECRET)), Some(("web", ""))] {
        let mut request = client.post(&url).json(&json!({"sub": "a"}));
        if let Some((id, secret)) = auth {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        problem(response, 401).await;
    }
    // Authenticated but without the sessions permission.
    let response = client.post(&url).basic_auth(SERVICE_ID, Some(SERVICE_SECRET)).json(&json!({"sub": "a"})).send().await.unwrap();
    problem(response, 403).await;
}

#[tokio::test]
async fn client_credentials_issues_service_tokens_within_the_clients_limits() {
    let server = TestServer::start().await;
    let response =
        server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials"), ("scope", "orders:read")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders:read");
    assert!(body.get("refresh_token").is_none(), "RFC 6749 §4.4.3: no refresh token");
    let (_, claims) = verify_with_ring(body["access_token"].as_str().unwrap(), &server.jwks().await);
    assert_eq!(claims["sub"], SERVICE_ID);
    assert_eq!(claims["client_id"], SERVICE_ID);
    assert_eq!(claims["aud"], json!(["orders-api", "billing-api"]));
    assert!(claims.get("sid").is_none());

    // client_secret_post and a narrowed audience.
    let response = server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", SERVICE_ID),
                ("client_secret", SERVICE_SECRET),
                ("audience", "billing-api"),
            ],
        )
        .await;
    let body: Value = response.json().await.unwrap();
    let (_, claims) = verify_with_ring(body["access_token"].as_str().unwrap(), &server.jwks().await);
    assert_eq!(claims["aud"], "billing-api");

    oauth_error(
        server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials"), ("scope", "admin")]).await,
        400,
        "invalid_scope",
    )
    .await;
    oauth_error(
        server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials"), ("audience", "admin-api")]).await,
        400,
        "invalid_target",
    )
    .await;
    oauth_error(server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "password")]).await, 400, "unsupported_grant_type").await;
    oauth_error(server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("scope", "x")]).await, 400, "invalid_request").await;
    oauth_error(server.token(None, &[("grant_type", "client_credentials"), ("client_id", "web")]).await, 400, "unauthorized_client").await;
    let body =
        oauth_error(server.token(Some((SERVICE_ID, "nope")), &[("grant_type", "client_credentials")]).await, 401, "invalid_client").await;
    assert!(!body["error_description"].as_str().unwrap().contains("nope"), "never echo a secret");
    oauth_error(server.token(None, &[("grant_type", "client_credentials")]).await, 401, "invalid_client").await;
    // Two authentication methods at once.
    oauth_error(
        server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials"), ("client_secret", SERVICE_SECRET)]).await,
        400,
        "invalid_request",
    )
    .await;
    // Repeated parameter.
    oauth_error(
        server
            .token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")])
            .await,
        400,
        "invalid_request",
    )
    .await;
    // JSON instead of a form.
    let response = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn jwks_is_cacheable_and_revalidates_with_304() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/.well-known/jwks.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwk-set+json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    for key in body["keys"].as_array().unwrap() {
        let names: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        for name in &names {
            assert!(["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"].contains(name), "non-public member {name} in JWKS");
        }
    }
    let response = reqwest::Client::new().get(server.url("/.well-known/jwks.json")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    let response =
        reqwest::Client::new().get(server.url("/.well-known/jwks.json")).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths() {
    let server = TestServer::start().await;
    let oauth: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server")).await.unwrap().json().await.unwrap();
    let oidc: Value = reqwest::get(server.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(oauth, oidc);
    assert_eq!(oauth["issuer"], server.base);
    assert_eq!(oauth["jwks_uri"], format!("{}/.well-known/jwks.json", server.base));
    assert_eq!(oauth["token_endpoint"], format!("{}/oauth2/token", server.base));
    assert!(oauth["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_problem_json() {
    let server = TestServer::start().await;
    problem(reqwest::get(server.url("/admin")).await.unwrap(), 404).await;
    let response = reqwest::Client::new().delete(server.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    problem(response, 405).await;
    let ready: Value = reqwest::get(server.management_url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn a_new_key_is_picked_up_without_restart() {
    let server = TestServer::start().await;
    let first = server.access_token(json!({"sub": "a"})).await;
    let (first_header, _) = verify_with_ring(&first, &server.jwks().await);

    let output = server.cli(&["keys", "generate", "--alg", "EdDSA", "--activate-in", "0s"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let token = server.access_token(json!({"sub": "a"})).await;
        let keys = server.jwks().await;
        let (header, _) = verify_with_ring(&token, &keys);
        if header["alg"] == "EdDSA" {
            // The old key stays published for tokens it already signed.
            assert!(keys["keys"].as_array().unwrap().iter().any(|k| k["kid"] == first_header["kid"]));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new key never took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_group_readable_key_stops_the_start_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let dir = server.stop_keep_dir();
    let pem = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pem"))
        .unwrap();
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(dir.path().join("tessera.toml"), default_config()).unwrap();
    let output =
        std::process::Command::new(binary()).arg("serve").current_dir(dir.path()).env("TESSERA_LISTEN", "127.0.0.1:0").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(pem.file_name().unwrap().to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[tokio::test]
async fn a_bad_config_value_stops_the_start_naming_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tessera.toml"), "[tokens]\naccess_ttl = \"ten minutes\"\n").unwrap();
    let output = std::process::Command::new(binary()).arg("serve").current_dir(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tokens.access_ttl") && stderr.contains("ten minutes") && stderr.contains("\"10m\""), "{stderr}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_logs_hold_no_tokens_or_secrets() {
    let server = TestServer::start().await;
    let body = server.web_session("carol").await;
    let service: Value =
        server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    server.token(Some((SERVICE_ID, "a-wrong-secret-value")), &[("grant_type", "client_credentials")]).await;
    let logs_before = server.logs();
    let (status, took) = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5));
    assert!(logs_before.contains("/v1/sessions"), "requests are logged: {logs_before}");
    for secret in [
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
        service["access_token"].as_str().unwrap(),
        SERVICE_SECRET,
        BACKEND_SECRET,
        "a-wrong-secret-value",
    ] {
        assert!(!logs_before.contains(secret), "a token or secret reached the logs");
    }
}

#[tokio::test]
async fn clients_add_prints_a_secret_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    let output = std::process::Command::new(binary())
        .args(["clients", "add", "--id", "new-backend", "--permission", "sessions", "--append-to"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let secret = stdout.lines().map(str::trim).find(|l| l.len() == 43).expect("a 256-bit base64url secret").to_string();
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(!written.contains(&secret), "only the hash is stored");
    assert!(written.contains(&sha256_hex(&secret)));

    let server = TestServer::start_in(dir, &written, &[]).await;
    let response = reqwest::Client::new()
        .post(server.url("/v1/sessions"))
        .basic_auth("new-backend", Some(&secret))
        .json(&json!({"sub": "dave"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn token_inspect_names_the_key_and_the_verdict() {
    let server = TestServer::start().await;
    let body = server.session(json!({"sub": "erin"})).await;
    let token = body["access_token"].as_str().unwrap();
    let output = server.cli(&["token", "inspect", token]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("\"sub\": \"erin\"") && stdout.contains("signed by:") && stdout.trim_end().ends_with("valid"), "{stdout}");

    let mut tampered = token.to_string();
    tampered.insert(token.find('.').unwrap() + 5, 'A');
    let output = server.cli(&["token", "inspect", &tampered]);
    assert!(!output.status.success());

    let output = server.cli(&["token", "inspect", body["refresh_token"].as_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

#[tokio::test]
async fn a_stalled_request_times_out_with_a_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(&default_config(), &[("TESSERA_HTTP_REQUEST_TIMEOUT", "300ms")]).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    // An authenticated caller promises 100 bytes of body, sends 10, then
    // stalls. (An unauthenticated one is refused before its body is read.)
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{BACKEND_ID}:{BACKEND_SECRET}"));
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nhost: x\r\nauthorization: Basic {credentials}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"sub\":\"a"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 1024];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            answer.extend_from_slice(&buffer[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("\"status\":408") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled request");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    // Announce 200 kB and send none of it: the server must answer from the
    // headers alone (a client that sent the body first could see its write
    // fail when the server closes the connection after answering).
    let authorization = basic(BACKEND_ID, BACKEND_SECRET);
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nhost: x\r\nauthorization: {authorization}\r\ncontent-type: application/json\r\ncontent-length: 200000\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.expect("an answer without the body").unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/problem+json") && text.contains("\"status\":413"), "{text}");
}

/// Sends `chunks` as a chunked body (no length announced) and reads the answer.
async fn chunked(server: &TestServer, path: &str, headers: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request =
        format!("POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n{headers}\r\n").into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    // The server may answer and close before it has read all of an oversized body.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.expect("an answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_sent_in_chunks_is_read_whole_and_held_to_the_limit() {
    let server = TestServer::start().await;
    let authorization = basic(BACKEND_ID, BACKEND_SECRET);
    let form = format!("authorization: {authorization}\r\ncontent-type: application/x-www-form-urlencoded\r\n");
    // A form split mid-name and mid-value is the form.
    let answer = chunked(&server, "/oauth2/token", &form, &[b"grant_type=client_", b"cred", b"entials"]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"access_token\""), "{answer}");
    // Past the limit (64 KiB by default) with no length announced: refused
    // while it is read, in each endpoint's own format.
    let piece = vec![b'a'; 16 * 1024];
    let many: Vec<&[u8]> = std::iter::repeat_n(piece.as_slice(), 5).collect();
    let answer = chunked(&server, "/oauth2/token", &form, &many).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\"") && answer.contains("exceeds 65536 bytes"), "{answer}");
    let json = format!("authorization: {authorization}\r\ncontent-type: application/json\r\n");
    let answer = chunked(&server, "/v1/sessions", &json, &many).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("\"code\":\"body_too_large\""), "{answer}");
    // Just under the limit, in pieces: read whole (and refused for what it says, not its size).
    let under: Vec<&[u8]> = std::iter::repeat_n(&piece[..16 * 1024 - 1], 4).collect();
    let answer = chunked(&server, "/v1/sessions", &json, &under).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_body\""), "{answer}");
}
