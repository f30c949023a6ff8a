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
    let issued = lines.iter().find(|l| l["span"]["request_id"] == "checkout-7f3a" && l["message"] == "service token issued");
    assert!(issued.is_some(), "lines logged while serving carry the id: {logs}");
    let security = lines
        .iter()
        .find(|l| l["security_event"] == "client_auth_failed")
        .unwrap_or_else(|| panic!("the failed authentication is a tagged security event: {logs}"));
    assert_eq!(security["span"]["request_id"], "bad-secret-1");
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
