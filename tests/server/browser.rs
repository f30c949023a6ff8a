//! The demo page in a real headless Chromium (Debian's, driven by
//! playwright-core from `tests/browser/`). `.ci/run` installs both; without
//! them this test is skipped loudly, and fails under CI.

use crate::helpers::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn browser_tools_present() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let chromium = Path::new(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())).exists();
    let playwright = dir.join("node_modules/playwright-core").exists();
    if node && chromium && playwright {
        return true;
    }
    let missing = format!("node: {node}, chromium: {chromium}, playwright-core in tests/browser/node_modules: {playwright}");
    if std::env::var_os("CI").is_some() {
        panic!("the browser test needs node, Debian's chromium and playwright-core under CI ({missing}); .ci/run installs them");
    }
    eprintln!("\n*** SKIPPED: browser test ({missing}); run .ci/run or: apt-get install chromium && (cd tests/browser && npm ci) ***\n");
    false
}

#[tokio::test]
async fn the_demo_page_works_in_headless_chromium() {
    if !browser_tools_present() {
        return;
    }
    // The replay must land after the grace window: keep it short.
    // (The grace window must outlast a request: http.request_timeout.)
    let env = [("TESSERA_TOKENS_REUSE_GRACE", "1s"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "800ms")];
    let server = TestServer::start_with_flags(&default_config(), &env, &["--dev"]).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/demo.mjs");
    let (base, management) = (server.base.clone(), server.management.clone());
    let shots_arg = shots.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).arg(base).arg(shots_arg).arg(management).output().expect("run node")
    });
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the browser test finished within two minutes").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    println!("screenshots: {}", shots.display());
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.logs());
    for expected in [
        "document.cookie cannot see the refresh token",
        "replay detected",
        "the cookie is gone",
        "cross-origin page could not refresh",
        "copied to a client without the key, are useless",
    ] {
        assert!(stdout.contains(expected), "missing step {expected:?}:\n{stdout}");
    }
    assert!(shots.join("05-theft-detected.png").exists());
}
