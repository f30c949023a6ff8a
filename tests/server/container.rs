//! The container image's runtime contract, checked on the binary itself
//! (no container engine runs here): configuration from the environment
//! only, a non-root user, a working directory it cannot write, everything
//! it writes on the data volume, and a SIGTERM drain that ends cleanly.

use crate::helpers::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The distroless `nonroot` user and group.
const NONROOT: u32 = 65532;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every path under `dir`, relative.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().map(Result::unwrap) {
            found.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn the_image_contract_holds_env_only_config_non_root_read_only_workdir_and_sigterm_drain() {
    let root = tempfile::tempdir().unwrap();
    let workdir = root.path().join("app");
    let volume = root.path().join("var-lib-tessera");
    std::fs::create_dir(&workdir).unwrap();
    std::fs::create_dir(&volume).unwrap();
    std::fs::set_permissions(&workdir, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let clients = format!("[{{id = \"{SERVICE_ID}\", secret_sha256 = \"{}\", audiences = [\"orders-api\"]}}]", sha256_hex(SERVICE_SECRET));

    let mut command = Command::new(binary());
    command
        .arg("serve")
        .current_dir(&workdir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // What the Dockerfile and a deployment set; no file at all.
        .env("TESSERA_LISTEN", "0.0.0.0:0")
        .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .env("TESSERA_ISSUER", "https://auth.example.com")
        .env("TESSERA_KEYS_DIR", volume.join("keys"))
        .env("TESSERA_STORE_PATH", volume.join("data/tessera.redb"))
        .env("TESSERA_LOG_FORMAT", "json")
        .env("TESSERA_HTTP_DRAIN_TIMEOUT", "2s")
        .env("TESSERA_CLIENTS", clients)
        // Kubernetes adds these for a Service named tessera.
        .env("TESSERA_SERVICE_HOST", "10.96.0.12")
        .env("TESSERA_PORT", "tcp://10.96.0.12:8080")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if is_root() {
        std::os::unix::fs::chown(&volume, Some(NONROOT), Some(NONROOT)).unwrap();
        command.uid(NONROOT).gid(NONROOT);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    // Keep reading stdout to its end: a closed pipe would fail the banner's next line.
    let stdout = child.stdout.take().unwrap();
    let (found, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("tessera listening on http://") {
                let _ = found.send(address.rsplit(':').next().unwrap_or_default().to_string());
            }
        }
    });
    let Ok(port) = port.recv_timeout(Duration::from_secs(20)) else {
        let _ = child.kill();
        panic!("tessera did not start: {:?}", logs.join().unwrap());
    };

    let base = format!("http://127.0.0.1:{port}");
    let response = reqwest::Client::new()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a client from TESSERA_CLIENTS alone works");
    let token: serde_json::Value = response.json().await.unwrap();
    let claims = jws_claims(token["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "https://auth.example.com");

    assert!(tree(&workdir).is_empty(), "nothing written to the working directory: {:?}", tree(&workdir));
    let written = tree(&volume);
    assert!(written.iter().any(|p| p.starts_with("keys/") && p.ends_with(".pem")), "{written:?}");
    assert!(written.contains(&"data/tessera.redb".to_string()), "{written:?}");
    assert!(written.contains(&"data/tessera.redb-wal".to_string()), "the store's commit log is in the volume too: {written:?}");
    for key in written.iter().filter(|p| p.ends_with(".pem")) {
        let metadata = std::fs::metadata(volume.join(key)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{key}");
        if is_root() {
            assert_eq!(std::os::unix::fs::MetadataExt::uid(&metadata), NONROOT, "written by the non-root user");
        }
    }

    let started = Instant::now();
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(2) + Duration::from_secs(3), "within the drain timeout plus slack");
    let logs = logs.join().unwrap();
    for line in &logs {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(logs.iter().any(|l| l.contains("shut down cleanly")), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("TESSERA_SERVICE_HOST") || l.contains("\"WARN\"")), "{logs:?}");
}

/// The claims of a compact JWS, unverified.
fn jws_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
