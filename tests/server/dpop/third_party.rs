//! A third-party DPoP client — openid-client 6 with panva's jose, in
//! `tests/dpop-client/` — drives the code exchange and refreshes against
//! the real binary. No tessera code runs on the client side.

use crate::helpers::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether node and the client's packages are installed; under CI their
/// absence is a failure.
fn dpop_client_present() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dpop-client");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let packages = dir.join("node_modules/openid-client").exists() && dir.join("node_modules/jose").exists();
    if node && packages {
        return true;
    }
    let missing = format!("node: {node}, openid-client and jose in tests/dpop-client/node_modules: {packages}");
    if std::env::var_os("CI").is_some() {
        panic!("the third-party DPoP client test needs node and its packages under CI ({missing}); .ci/setup installs them");
    }
    eprintln!("\n*** SKIPPED: third-party DPoP client ({missing}); run .ci/setup or: (cd tests/dpop-client && npm ci) ***\n");
    false
}

async fn run_dpop_client(nonce: bool) {
    if !dpop_client_present() {
        return;
    }
    let env: &[(&str, &str)] = if nonce { &[("TESSERA_DPOP_REQUIRE_NONCE", "true")] } else { &[] };
    let server = TestServer::start_with(&default_config(), env).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dpop-client/drive.mjs");
    let mut args = vec![script.display().to_string(), server.base.clone(), BACKEND_ID.to_string(), BACKEND_SECRET.to_string()];
    if nonce {
        args.push("--nonce".into());
    }
    let run = tokio::task::spawn_blocking(move || Command::new("node").args(&args).output().expect("run node"));
    let output = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the client finished within a minute").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the DPoP client failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
    assert!(stdout.contains("dpop client: all steps passed"), "{stdout}");
}

#[tokio::test]
async fn openid_client_exchanges_a_code_and_refreshes_with_dpop() {
    run_dpop_client(false).await;
}

#[tokio::test]
async fn openid_client_follows_use_dpop_nonce_by_itself() {
    run_dpop_client(true).await;
}
