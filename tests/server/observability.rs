//! What operators see: JSON log lines that parse and carry the request id,
//! the id returned on every response, probes kept out of the INFO log.

use crate::helpers::*;
use serde_json::Value;

/// Every stderr line, parsed; fails on a line that is not one JSON object.
fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines().map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))).collect()
}

#[tokio::test]
async fn json_log_lines_parse_and_carry_the_request_id() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_LOG_FORMAT", "json")]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/oauth2/token"))
        .header("x-request-id", "checkout-7f3a")
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "checkout-7f3a", "the caller's id comes back");
    let refused = client
        .post(server.url("/oauth2/token"))
        .header("x-request-id", "bad-secret-1")
        .basic_auth(SERVICE_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let logs = server.wait_for_log("bad-secret-1", 2).await;
    let lines = json_lines(&logs);
    for line in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let finished = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "checkout-7f3a" && l["message"] == "finished processing request")
        .unwrap_or_else(|| panic!("no finished line for the request: {logs}"));
    assert_eq!(finished["status"], 200);
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["span"]["path"], "/oauth2/token");
    let issued = lines.iter().find(|l| l["spans"][0]["request_id"] == "checkout-7f3a" && l["message"] == "service token issued");
    assert!(issued.is_some(), "lines logged while serving carry the id: {logs}");
    let security = lines
        .iter()
        .find(|l| l["security_event"] == "client_auth_failed")
        .unwrap_or_else(|| panic!("the failed authentication is a tagged security event: {logs}"));
    assert_eq!(security["spans"][0]["request_id"], "bad-secret-1");
    assert_eq!(security["level"], "WARN");
    assert!(!logs.contains(SERVICE_SECRET) && !logs.contains("wrong"), "no secret in the logs");
}

#[tokio::test]
async fn every_response_has_a_request_id_and_unusable_ones_are_replaced() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let generated = client.get(server.url("/no-such-path")).send().await.unwrap();
    assert_eq!(generated.status(), 404);
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 22, "128 random bits, base64url: {id}");
    let too_long = "x".repeat(129);
    let replaced = client.get(server.url("/healthz")).header("x-request-id", &too_long).send().await.unwrap();
    let returned = replaced.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(returned != too_long && returned.len() == 22, "{returned}");
    let spaced = client.get(server.url("/healthz")).header("x-request-id", "a b").send().await.unwrap();
    assert_ne!(spaced.headers()["x-request-id"], "a b");
    let kept = client.get(server.url("/healthz")).header("x-request-id", "x".repeat(128)).send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"].to_str().unwrap(), "x".repeat(128));
}

#[tokio::test]
async fn probe_requests_are_not_logged_at_info() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    for (url, id) in [
        (server.management_url("/healthz"), "probe-healthz"),
        (server.management_url("/readyz"), "probe-readyz"),
        (server.management_url("/metrics"), "probe-metrics"),
        (server.url("/healthz"), "probe-public-healthz"),
    ] {
        let response = client.get(url).header("x-request-id", id).send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], id);
    }
    let marker = client.get(server.url("/.well-known/jwks.json")).header("x-request-id", "after-the-probes").send().await.unwrap();
    assert_eq!(marker.status(), 200);
    let logs = server.wait_for_log("after-the-probes", 1).await;
    assert!(!logs.contains("probe-"), "probes stay out of the INFO log: {logs}");
}

#[tokio::test]
async fn metrics_say_whether_the_store_answers_and_when_the_signing_key_is_replaced() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_KEYS_ROTATE_EVERY", "30d")]).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("\ntessera_store_up 1\n"), "{metrics}");
    assert!(metrics.contains("\ntessera_revocations_current 1\n"), "{metrics}");
    let expires_in: i64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tessera_signing_key_expires_in_seconds "))
        .expect("the gauge is there with keys.rotate_every")
        .parse()
        .unwrap();
    assert!((29 * 86_400..=30 * 86_400).contains(&expires_in), "{expires_in}");
    assert!(metrics.contains("tessera_build_info{version=\""), "{metrics}");
}

#[tokio::test]
async fn the_healthcheck_command_asks_the_management_listener() {
    let server = TestServer::start().await;
    let management = server.management.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &str| {
        std::process::Command::new(binary())
            .args(["healthcheck", "--path", path])
            .env("TESSERA_MANAGEMENT_LISTEN", &management)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let ready = run("/readyz");
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stdout));
    assert!(String::from_utf8_lossy(&ready.stdout).contains("200 OK"));
    assert!(!run("/no-such-probe").status.success(), "a non-200 answer fails the check");
    drop(server);
    assert!(!run("/healthz").status.success(), "no server, no health");
}

#[test]
fn version_names_the_release_and_the_git_revision() {
    let output = std::process::Command::new(binary()).arg("--version").output().unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    let expected = format!("tessera {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected) && version.trim_end().ends_with(')'), "{version}");
    let revision = version.trim_end().trim_end_matches(')').rsplit('(').next().unwrap().to_string();
    assert!(revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()), "{revision}");
}
