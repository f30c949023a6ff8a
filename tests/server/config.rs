//! Configuration as platforms deliver it: Kubernetes service-link variables
//! do not stop the start, an unknown `TESSERA_*` is a warning naming the
//! closest key, and every refused value is named with its place.

use crate::helpers::*;
use std::process::Command;

/// Run `tessera keys list` (it reads the configuration and little else) in a
/// fresh directory holding `file` as tessera.toml; returns success and stderr.
fn check_config(file: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tessera.toml"), file).unwrap();
    let mut command = Command::new(binary());
    command.args(["keys", "list"]).current_dir(dir.path()).env("TESSERA_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run tessera");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn kubernetes_service_link_variables_do_not_stop_the_start() {
    let server = TestServer::start_with(
        &default_config(),
        &[
            ("TESSERA_PORT", "tcp://10.96.0.12:8080"),
            ("TESSERA_SERVICE_HOST", "10.96.0.12"),
            ("TESSERA_SERVICE_PORT", "8080"),
            ("TESSERA_SERVICE_PORT_HTTP", "8080"),
            ("TESSERA_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("TESSERA_PORT_8080_TCP_PROTO", "tcp"),
            ("TESSERA_PORT_8080_TCP_PORT", "8080"),
            ("TESSERA_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("TESSERA_REDIS_SERVICE_HOST", "10.96.0.13"),
            ("TESSERA_TOKENS_ACCES_TTL", "5m"),
        ],
    )
    .await;
    let status = server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials")]).await.status();
    assert_eq!(status, 200);
    let logs = server.logs();
    assert!(
        logs.contains("ignoring unknown environment variable TESSERA_TOKENS_ACCES_TTL; did you mean TESSERA_TOKENS_ACCESS_TTL?"),
        "{logs}"
    );
    assert!(!logs.contains("TESSERA_SERVICE_HOST") && !logs.contains("TESSERA_PORT"), "service links are noted at debug only: {logs}");
}

#[test]
fn an_unknown_file_key_is_named_with_its_line_column_and_the_closest_key() {
    let (ok, stderr) = check_config("issuer = \"https://auth.example.com\"\n\n[tokens]\naccess_tl = \"5m\"\n", &[]);
    assert!(!ok);
    assert!(stderr.contains("error: tessera.toml:4:1: unknown config key `tokens.access_tl`; did you mean `access_ttl`?"), "{stderr}");
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_place() {
    let (ok, stderr) = check_config("[tokens]\naccess_ttl = 600\n", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("error: tessera.toml:2:14: config `tokens.access_ttl`: invalid type: integer `600`, expected a string"),
        "{stderr}"
    );
    let (ok, stderr) = check_config("", &[("TESSERA_HTTP_MAX_CONNECTIONS", "\"many\"")]);
    assert!(!ok);
    assert!(
        stderr.contains("config `TESSERA_HTTP_MAX_CONNECTIONS (http.max_connections)`: invalid type: string \"many\", expected an integer"),
        "{stderr}"
    );
    let (ok, stderr) = check_config("[http]\ntrusted_proxies = \"10.0.0.0/8\"\n", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("tessera.toml:2:19: config `http.trusted_proxies`: invalid type: string \"10.0.0.0/8\", expected an array"),
        "{stderr}"
    );
}

#[test]
fn an_out_of_range_value_names_its_key_place_and_bounds() {
    let (ok, stderr) = check_config("[[clients]]\nid = \"web\"\npublic = true\naccess_ttl = \"3 days\"\n", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("error: tessera.toml:4:14: config `clients[0].access_ttl` = \"3 days\": expected a duration between 1s and 1d"),
        "{stderr}"
    );
    let (ok, stderr) = check_config("", &[("TESSERA_TOKENS_REUSE_GRACE", "1 hour")]);
    assert!(!ok);
    assert!(stderr.contains("error: TESSERA_TOKENS_REUSE_GRACE: config `tokens.reuse_grace` = \"1 hour\""), "{stderr}");
}

#[test]
fn durations_take_humantime_forms() {
    let (ok, stderr) =
        check_config("[tokens]\naccess_ttl = \"10 minutes\"\nrefresh_idle_ttl = \"1h 30m\"\nsession_max_age = \"30d\"\n", &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_wildcard_listener_without_an_issuer_is_refused() {
    let (ok, stderr) = check_config("listen = \"0.0.0.0:8080\"\n", &[]);
    assert!(!ok);
    assert!(stderr.contains("config `issuer` = \"<unset>\": required when listen (0.0.0.0:8080) is not a loopback address"), "{stderr}");
    let (ok, stderr) = check_config("listen = \"0.0.0.0:8080\"\nissuer = \"https://auth.example.com\"\n", &[]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn a_plain_http_issuer_off_loopback_is_warned_about() {
    let (ok, stderr) = check_config("issuer = \"http://auth.example.com\"\n", &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("WARN") && stderr.contains("issuer http://auth.example.com is plain http on a non-loopback host"), "{stderr}");
    let (ok, stderr) = check_config("issuer = \"http://localhost:8080\"\n", &[]);
    assert!(ok && !stderr.contains("WARN"), "{stderr}");
}
