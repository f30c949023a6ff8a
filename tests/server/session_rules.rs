//! The session rules as a caller sees them: who may create sessions for
//! whom, the session limit, session ids tessera can recognise, how long a
//! logout stays in the list, and the revocation quota. Claims (refresh
//! re-checks, `resource`, `sub`, clock skew), cookies and `token inspect`
//! have files of their own below.

mod claims;
mod cookies;
mod inspect;

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const SESSONLY: (&str, &str) = ("sessonly", "sessonly-secret-0123456789abcdefghijklmnopqrstuvwxyz");
pub const SVC2: (&str, &str) = ("svc2", "svc2-secret-0123456789abcdefghijklmnopqrstuvwxyzABCD");
pub const REVOKER: (&str, &str) = ("revoker", "revoker-secret-0123456789abcdefghijklmnopqrstuvwxyz");

/// The web client's grant in the standard configuration.
const WEB_AUDIENCES: &str = "audiences = [\"orders-api\"]\nscopes = [\"read\", \"write\"]";

/// The standard clients (web with two audiences) plus a caller limited to `web`, a second service,
/// a revoker with a small quota, and two cookie clients.
pub fn config() -> String {
    format!(
        r#"{}
[[clients]]
id = "{}"
secret_sha256 = "{}"
permissions = ["sessions"]
session_clients = ["web"]

[[clients]]
id = "{}"
secret_sha256 = "{}"
audiences = ["billing-api", "orders-api"]
scopes = ["billing"]

[[clients]]
id = "{}"
secret_sha256 = "{}"
permissions = ["revoke_sessions"]
revocation_quota = 3

[[clients]]
id = "spa"
public = true
refresh_cookie = true
allowed_origins = ["https://app.example"]
audiences = ["orders-api", "billing-api"]

[[clients]]
id = "spa2"
public = true
refresh_cookie = true
allowed_origins = ["https://app.example"]
audiences = ["orders-api"]
"#,
        default_config()
            .replace("[keys]", "[tokens]\nrefresh_idle_ttl = \"1h\"\nsession_max_age = \"90d\"\n\n[keys]")
            .replace(WEB_AUDIENCES, "audiences = [\"orders-api\", \"billing-api\"]\nscopes = [\"read\", \"write\"]"),
        SESSONLY.0,
        sha256_hex(SESSONLY.1),
        SVC2.0,
        sha256_hex(SVC2.1),
        REVOKER.0,
        sha256_hex(REVOKER.1),
    )
}

pub async fn server() -> TestServer {
    TestServer::start_with(&config(), &[]).await
}

/// `POST /v1/sessions` as `caller`: status and body.
pub async fn create_as(server: &TestServer, caller: (&str, &str), body: Value) -> (u16, Value) {
    let response =
        reqwest::Client::new().post(server.url("/v1/sessions")).basic_auth(caller.0, Some(caller.1)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The claims of a compact JWS, unverified.
pub fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// The entries of the full signed revocation feed.
pub async fn feed_entries(server: &TestServer) -> Vec<Value> {
    let document = reqwest::get(server.url("/v1/revocations")).await.unwrap().text().await.unwrap();
    claims(document.trim())["revocations"].as_array().unwrap().clone()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn the_sessions_permission_does_not_mint_tokens_for_a_confidential_client() {
    let server = server().await;
    // Neither a caller without session_clients nor one that lists only web.
    for caller in [(BACKEND_ID, BACKEND_SECRET), SESSONLY] {
        let (status, problem) = create_as(&server, caller, json!({"sub": "alice", "client_id": "svc2"})).await;
        assert_eq!(status, 403, "{caller:?}: {problem}");
        assert_eq!(problem["code"], "forbidden");
        assert!(problem["detail"].as_str().unwrap().contains("svc2"), "{problem}");
    }
    // A public client is fine by default.
    let (status, body) = create_as(&server, (BACKEND_ID, BACKEND_SECRET), json!({"sub": "alice", "client_id": "web"})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn session_clients_limits_a_caller_to_the_clients_it_lists() {
    let server = server().await;
    let (status, body) = create_as(&server, SESSONLY, json!({"sub": "alice", "client_id": "web"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["client_id"], "web");
    let (status, problem) = create_as(&server, SESSONLY, json!({"sub": "alice", "client_id": "mobile"})).await;
    assert_eq!(status, 403, "mobile is public but not listed: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("session_clients are: web"), "{problem}");
}

#[tokio::test]
async fn user_and_service_tokens_can_be_told_apart_by_their_claims() {
    let server = server().await;
    for sub in ["svc2", "web", BACKEND_ID] {
        let (status, problem) = create_as(&server, (BACKEND_ID, BACKEND_SECRET), json!({"sub": sub, "client_id": "web"})).await;
        assert_eq!(status, 400, "{sub}: {problem}");
        assert_eq!(problem["field"], "sub");
    }
    let service = server.token(Some(SVC2), &[("grant_type", "client_credentials")]).await;
    assert_eq!(service.status(), 200);
    let service = claims(service.json::<Value>().await.unwrap()["access_token"].as_str().unwrap());
    assert_eq!(service["sub"], service["client_id"]);
    assert!(service.get("sid").is_none(), "{service}");
    let user = claims(server.web_session("alice").await["access_token"].as_str().unwrap());
    assert_ne!(user["sub"], user["client_id"]);
    assert!(user["sid"].is_string(), "{user}");
}

#[tokio::test]
async fn session_clients_naming_an_unknown_client_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config().replace("session_clients = [\"web\"]", "session_clients = [\"wbe\"]");
    std::fs::write(dir.path().join("tessera.toml"), config).unwrap();
    let output = std::process::Command::new(binary())
        .args(["serve"])
        .current_dir(dir.path())
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("session_clients") && stderr.contains("wbe") && stderr.contains("names no configured client"), "{stderr}");
}

/// 100 rounds of three sessions for one subject of `mobile` (limit 2):
/// the session just created is never the one ended.
async fn the_newest_session_always_survives(server: &TestServer) {
    for round in 0..100 {
        let sub = format!("limited-{round}");
        let mut sessions = Vec::new();
        for _ in 0..3 {
            sessions.push(server.session(json!({"sub": sub, "client_id": "mobile"})).await);
        }
        let token = |i: usize| sessions[i]["access_token"].as_str().unwrap().to_string();
        assert!(server.active(&token(2)).await, "round {round}: the session just created is alive");
        assert!(server.active(&token(1)).await, "round {round}: the second is alive");
        assert!(!server.active(&token(0)).await, "round {round}: the oldest was ended");
        let (status, body) = server.refresh("mobile", sessions[2]["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
}

#[tokio::test]
async fn the_session_limit_never_ends_the_session_it_creates() {
    the_newest_session_always_survives(&server().await).await;
}

#[tokio::test]
async fn the_session_limit_never_ends_the_session_it_creates_on_redis() {
    if !redis::available() {
        return;
    }
    let redis = redis::RedisServer::start();
    let url = redis.url();
    let server = TestServer::start_with(&config(), &[("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", url.as_str())]).await;
    the_newest_session_always_survives(&server).await;
}

#[tokio::test]
async fn logout_of_an_id_tessera_never_issued_is_404_and_stores_nothing() {
    let server = server().await;
    let session = server.web_session("alice").await;
    let sid = session["session_id"].as_str().unwrap();
    assert_eq!(sid.len(), 43, "{sid}");
    let forged = format!("{}{}", &sid[..42], if sid.ends_with('A') { 'B' } else { 'A' });
    for foreign in ["made-up", "AAAAAAAAAAAAAAAAAAAAAA", forged.as_str()] {
        let response = reqwest::Client::new()
            .delete(server.url(&format!("/v1/sessions/{foreign}")))
            .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{foreign}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "not_found", "{problem}");
    }
    assert!(feed_entries(&server).await.is_empty(), "nothing was stored");
    assert_eq!(server.logout(sid).await, 204);
    assert_eq!(feed_entries(&server).await.len(), 1);
    assert!(!server.active(session["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_logout_entry_lives_as_long_as_the_tokens_it_can_stop_not_the_session_maximum() {
    let server = server().await;
    let session = server.web_session("alice").await;
    let started = now();
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    let entries = feed_entries(&server).await;
    let expires = entries[0]["expires_at"].as_i64().unwrap();
    // Refresh idle 1 h (longer than 10 min access tokens) + 30 s leeway; the session could have lasted 90 days.
    assert!((started + 3_600 + 30..=now() + 3_600 + 30).contains(&expires), "{expires} vs {started}: {entries:?}");
}

async fn delete_as(server: &TestServer, caller: (&str, &str), sid: &str) -> reqwest::Response {
    reqwest::Client::new().delete(server.url(&format!("/v1/sessions/{sid}"))).basic_auth(caller.0, Some(caller.1)).send().await.unwrap()
}

#[tokio::test]
async fn revocations_past_a_clients_quota_are_refused_with_429_and_retry_after() {
    let server = server().await;
    // The quota is 3 a minute; even if a minute turns meanwhile, eight logouts run into it.
    let mut refused = None;
    for i in 0..8 {
        let session = server.web_session(&format!("user-{i}")).await;
        let response = delete_as(&server, REVOKER, session["session_id"].as_str().unwrap()).await;
        match response.status().as_u16() {
            204 => continue,
            429 => {
                refused = Some((session, response));
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let (session, refused) = refused.expect("the quota ran out");
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    assert!(server.active(session["access_token"].as_str().unwrap()).await, "the refused logout wrote nothing");
    // Another client's quota is its own.
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
}

#[tokio::test]
async fn rfc7009_revocations_count_against_the_quota_and_are_refused_in_oauth_format() {
    let server = server().await;
    let mut refused = None;
    for _ in 0..8 {
        let token: Value = server.token(Some(REVOKER), &[("grant_type", "client_credentials")]).await.json().await.unwrap();
        let response = server.form("/oauth2/revoke", Some(REVOKER), &[("token", token["access_token"].as_str().unwrap())]).await;
        if response.status() != 200 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the quota (3 a minute) ran out");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"], "temporarily_unavailable", "{error}");
}
