//! Changing clients at run time: `tessera clients add/remove/rotate-secret`
//! edit tessera.toml, SIGHUP puts the change in force without a restart or
//! a dropped connection, and a file that does not load changes nothing.

use crate::helpers::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn client_credentials(server: &TestServer, id: &str, secret: &str) -> u16 {
    server.token(Some((id, secret)), &[("grant_type", "client_credentials")]).await.status().as_u16()
}

/// Run a CLI command in the server's directory; asserts success, returns stdout.
fn cli(server: &TestServer, args: &[&str]) -> String {
    let output = server.cli(args);
    assert!(output.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// One keep-alive request on an open connection; returns the status line.
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let mut buffer = vec![0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..read]).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sighup_with_a_new_client_makes_it_work_without_a_restart_or_a_dropped_connection() {
    let server = TestServer::start().await;
    let mut open = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    assert_eq!(healthz_on(&mut open).await, "HTTP/1.1 200 OK");

    let added: Value = serde_json::from_str(&cli(
        &server,
        &["clients", "add", "--id", "billing", "--audience", "billing-api", "--append-to", "tessera.toml", "--json"],
    ))
    .unwrap();
    let secret = added["secret"].as_str().expect("the new secret").to_string();
    assert_eq!(client_credentials(&server, "billing", &secret).await, 401, "not before the reload");

    server.signal("HUP");
    let logs = server.wait_for_log("configuration reloaded", 1).await;
    assert_eq!(client_credentials(&server, "billing", &secret).await, 200);
    assert!(logs.contains("clients_added=billing"), "{logs}");
    assert!(!logs.contains(&secret), "a secret never reaches the logs");
    assert_eq!(healthz_on(&mut open).await, "HTTP/1.1 200 OK", "the connection opened before the reload still serves");
    assert_eq!(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await, 200, "existing clients are untouched");

    cli(&server, &["clients", "remove", "--id", "billing"]);
    server.signal("HUP");
    let logs = server.wait_for_log("configuration reloaded", 2).await;
    assert!(logs.contains("clients_removed=billing"), "{logs}");
    assert_eq!(client_credentials(&server, "billing", &secret).await, 401);
}

#[tokio::test]
async fn an_invalid_file_keeps_the_old_configuration_and_says_why() {
    let server = TestServer::start().await;
    let path = server.dir().join("tessera.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("[keys]", "[keys]\nrotate_evry = \"1d\"")).unwrap();
    server.signal("HUP");
    let logs = server.wait_for_log("configuration reload refused", 1).await;
    assert!(logs.contains("unknown config key `keys.rotate_evry`; did you mean `rotate_every`?"), "{logs}");
    assert!(logs.contains("tessera.toml:3:1"), "the place is named: {logs}");
    assert_eq!(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await, 200, "the old configuration stays in force");

    // A change that needs a restart is reported and not applied.
    std::fs::write(&path, format!("{good}\n[tokens]\nleeway = \"10s\"\n")).unwrap();
    server.signal("HUP");
    let logs = server.wait_for_log("in force only after a restart", 1).await;
    assert!(logs.contains("settings=tokens"), "{logs}");
    assert_eq!(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await, 200);
}

#[tokio::test]
async fn a_rotated_secret_leaves_the_old_one_valid_for_the_grace_only() {
    let server = TestServer::start().await;
    let rotated: Value =
        serde_json::from_str(&cli(&server, &["clients", "rotate-secret", "--id", SERVICE_ID, "--grace", "1h", "--json"])).unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert!(rotated["previous_valid_until"].is_string(), "{rotated}");
    server.signal("HUP");
    let logs = server.wait_for_log("configuration reloaded", 1).await;
    assert!(logs.contains(&format!("clients_changed={SERVICE_ID}")), "{logs}");
    assert_eq!(client_credentials(&server, SERVICE_ID, &new_secret).await, 200);
    assert_eq!(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await, 200, "the old secret works during the grace");
    let listed: Value = serde_json::from_str(&cli(&server, &["clients", "list", "--json"])).unwrap();
    let entry = listed.as_array().unwrap().iter().find(|c| c["id"] == SERVICE_ID).unwrap().clone();
    assert_eq!(entry["previous_secret_valid_until"], rotated["previous_valid_until"]);
    assert!(!listed.to_string().contains("secret_sha256"), "the listing shows no hash");

    let rotated: Value =
        serde_json::from_str(&cli(&server, &["clients", "rotate-secret", "--id", SERVICE_ID, "--grace", "0s", "--json"])).unwrap();
    let newest = rotated["secret"].as_str().unwrap().to_string();
    server.signal("HUP");
    server.wait_for_log("configuration reloaded", 2).await;
    assert_eq!(client_credentials(&server, SERVICE_ID, &newest).await, 200);
    assert_eq!(client_credentials(&server, SERVICE_ID, &new_secret).await, 401, "no grace: the replaced secret ends at once");
    assert_eq!(client_credentials(&server, SERVICE_ID, SERVICE_SECRET).await, 401, "and the older one with it");
}
