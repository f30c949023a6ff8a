//! Fault tests: the store never fails open. Against the real binary: a
//! deleted or truncated store file, a crash (SIGKILL) with and without the
//! commit log, a Redis that lost its data under two
//! running replicas, a full disk, a stalled Redis; in-process with a manual
//! clock: a wall clock stepped forward and back. Each is bounded in time and
//! requests, on 127.0.0.1 only.

mod clock;
mod disk;
mod redis;

use crate::helpers::*;
use base64::Engine;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The standard clients, with a public feed (to see what it announces).
pub fn config() -> String {
    default_config()
}

/// Start `tessera serve` in `dir` expecting it to refuse: its stderr.
pub fn refused_start(dir: &std::path::Path, env: &[(&str, &str)], flags: &[&str]) -> String {
    std::fs::write(dir.join("tessera.toml"), config()).unwrap();
    let mut child = Command::new(binary())
        .arg("serve")
        .args(flags)
        .current_dir(dir)
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tessera kept running although it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "tessera must exit non-zero when it refuses");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The entries of the full feed document (its signature checked); none
/// while the feed is unavailable (503: the list is not current).
pub async fn feed(server: &TestServer) -> Vec<Value> {
    let response = reqwest::get(server.url("/v1/revocations")).await.unwrap();
    if response.status() != 200 {
        return Vec::new();
    }
    let (_, claims) = verify_with_ring(&response.text().await.unwrap(), &server.jwks().await);
    claims["revocations"].as_array().expect("a revocations array").clone()
}

/// The distinct instants of the global not-befores the feed announces
/// (replicas that notice a loss at once may each record the same one).
pub async fn announced_not_befores(server: &TestServer) -> Vec<i64> {
    let mut instants: Vec<i64> =
        feed(server).await.iter().filter(|e| e["kind"] == "all_before").map(|e| e["before"].as_i64().expect("before")).collect();
    instants.sort_unstable();
    instants.dedup();
    instants
}

/// `iat` of a token, unverified.
pub fn iat_of(token: &str) -> i64 {
    let claims = token.split('.').nth(1).expect("a JWS");
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    claims["iat"].as_i64().expect("iat")
}

/// Wait until `check` holds, for at most `limit`.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Tokens from before the loss: a logged-out session, a consumed refresh
/// token and its child, and a live session.
pub struct Before {
    logged_out: String,
    consumed: String,
    child: String,
    live: Value,
}

impl Before {
    pub async fn make(server: &TestServer) -> Self {
        let ended = server.web_session("alice").await;
        let consumed = ended["refresh_token"].as_str().unwrap().to_string();
        let (status, child) = server.refresh("web", &consumed).await;
        assert_eq!(status, 200, "{child}");
        assert_eq!(server.logout(ended["session_id"].as_str().unwrap()).await, 204);
        let logged_out = child["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(server.refresh("web", &logged_out).await.0, 400, "logged out");
        let other = server.web_session("bob").await;
        let consumed_live = other["refresh_token"].as_str().unwrap().to_string();
        let (status, live) = server.refresh("web", &consumed_live).await;
        assert_eq!(status, 200);
        Self { logged_out, consumed: consumed_live, child: live["refresh_token"].as_str().unwrap().to_string(), live }
    }

    /// Nothing from before comes back: the logged-out session, the consumed
    /// token, even the live session and its access token (users sign in again).
    pub async fn all_refused_by(&self, server: &TestServer) {
        for (what, token) in
            [("the logged-out session", &self.logged_out), ("a consumed token", &self.consumed), ("a live session", &self.child)]
        {
            let (status, body) = server.refresh("web", token).await;
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{what} must not refresh: {body}");
        }
        assert!(!server.active(self.live["access_token"].as_str().unwrap()).await, "an access token from before is inactive");
    }
}

impl Before {
    /// A verifier following the feed refuses the access token from before
    /// (and takes `fresh`, issued after the not-before).
    pub async fn refused_offline(&self, server: &TestServer, fresh: &str) {
        use tessera_verifier::{RevocationKind, Verifier, VerifyError};
        let verifier = Verifier::builder().issuer(&server.base).audience("orders-api").build().await.unwrap();
        let old = self.live["access_token"].as_str().unwrap();
        let refused = within(Duration::from_secs(5), || async {
            matches!(verifier.verify(old).await, Err(VerifyError::Revoked(RevocationKind::AllBefore)))
        })
        .await;
        assert!(refused, "offline verification must refuse a token from before the not-before: {:?}", verifier.verify(old).await);
        assert!(verifier.verify(fresh).await.is_ok(), "and take one issued after it");
    }
}

/// A session made now works, refresh included.
pub async fn new_sessions_work(server: &TestServer) {
    let session = server.web_session("carol").await;
    let (status, body) = server.refresh("web", session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "a session made after the not-before refreshes: {body}");
}

#[tokio::test]
async fn a_deleted_or_truncated_store_is_refused_and_accepting_it_revives_no_session() {
    use std::os::unix::fs::PermissionsExt;
    for damage in ["delete", "truncate"] {
        // One address, so one issuer, across the restarts: offline
        // verification of the old tokens then fails for the right reason.
        let listen = format!("127.0.0.1:{}", crate::helpers::redis::free_port());
        let env = [("TESSERA_LISTEN", listen.as_str())];
        let server = TestServer::start_with(&config(), &env).await;
        let store = server.dir().join("data/tessera.redb");
        assert_eq!(std::fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600, "the store file is private");
        assert_eq!(std::fs::metadata(store.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let before = Before::make(&server).await;
        let dir = server.stop_keep_dir();
        match damage {
            "delete" => std::fs::remove_file(&store).unwrap(),
            _ => std::fs::File::create(&store).unwrap().set_len(0).unwrap(),
        }

        // Refused, naming the absolute path (store.path is relative) and the way out.
        let stderr = refused_start(dir.path(), &env, &[]);
        assert!(stderr.contains(&store.display().to_string()), "{damage}: the error names {}: {stderr}", store.display());
        assert!(stderr.contains("--accept-new-store"), "{damage}: {stderr}");
        if damage == "delete" {
            assert!(stderr.contains("store_replaced") && stderr.contains("missing"), "{stderr}");
            assert!(!store.exists(), "a refused start creates no store");
        } else {
            assert!(stderr.contains("empty"), "{stderr}");
            assert_eq!(std::fs::metadata(&store).unwrap().len(), 0, "a refused start re-initialises nothing");
        }

        // Accepted: a new store, behind a global not-before the feed announces.
        let started_at = chrono::Utc::now().timestamp();
        let server = TestServer::start_in_with_flags(dir, &config(), &env, &["--accept-new-store"]).await;
        assert!(server.logs().contains("store_replaced"), "a security event is logged");
        before.all_refused_by(&server).await;
        let announced = announced_not_befores(&server).await;
        assert_eq!(announced.len(), 1, "{damage}: {announced:?}");
        assert!(announced[0] >= started_at - 1, "at the new store's creation");
        let fresh = server.web_session("dave").await;
        assert!(iat_of(fresh["access_token"].as_str().unwrap()) > announced[0], "new tokens come after it");
        new_sessions_work(&server).await;
        before.refused_offline(&server, fresh["access_token"].as_str().unwrap()).await;

        // The next start needs no flag, and still refuses the old tokens.
        let dir = server.stop_keep_dir();
        let server = TestServer::start_in(dir, &config(), &env).await;
        before.all_refused_by(&server).await;
        assert_eq!(announced_not_befores(&server).await, announced);
        new_sessions_work(&server).await;
    }
}

#[tokio::test]
async fn a_store_replaced_by_another_is_refused_and_the_config_key_accepts_it() {
    let first = TestServer::start_with(&config(), &[]).await;
    let before = Before::make(&first).await;
    let first_dir = first.stop_keep_dir();
    let other = TestServer::start_with(&config(), &[]).await;
    let other_dir = other.stop_keep_dir();
    std::fs::copy(other_dir.path().join("data/tessera.redb"), first_dir.path().join("data/tessera.redb")).unwrap();

    let stderr = refused_start(first_dir.path(), &[], &[]);
    assert!(stderr.contains("is another store") && stderr.contains("store_replaced"), "{stderr}");
    let server = TestServer::start_in(first_dir, &config(), &[("TESSERA_STORE_ACCEPT_NEW_STORE", "true")]).await;
    before.all_refused_by(&server).await;
    assert_eq!(announced_not_befores(&server).await.len(), 1);
    new_sessions_work(&server).await;
}

#[tokio::test]
async fn a_key_directory_others_can_write_stops_the_start_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with(&config(), &[]).await;
    let dir = server.stop_keep_dir();
    let keys = dir.path().join("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_start(dir.path(), &[], &[]);
    assert!(stderr.contains(&keys.display().to_string()) && stderr.contains("chmod go-w"), "{stderr}");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = TestServer::start_in(dir, &config(), &[]).await;
    assert_eq!(server.create_session(json!({"sub": "a", "client_id": "web"})).await.status(), 201);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash_and_a_lost_commit_log_is_refused() {
    let server = TestServer::start_with(&config(), &[]).await;
    let store = server.dir().join("data/tessera.redb");
    let log = std::path::PathBuf::from(format!("{}-wal", store.display()));
    let aside = server.dir().join("wal-aside");
    let before = Before::make(&server).await;

    // SIGKILL: the writes since the start live in the commit log only.
    let dir = server.stop_keep_dir();
    let server = TestServer::start_in(dir, &config(), &[]).await;
    let (status, body) = server.refresh("web", &before.logged_out).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the logout survived the crash: {body}");
    let (status, body) = server.refresh("web", &before.consumed).await;
    assert!(
        status == 400 || body["refresh_token"].as_str() == Some(before.child.as_str()),
        "a consumed token never yields a second child after a crash: {status} {body}"
    );

    // Crash again and lose the log: refused, with the way out.
    let dir = server.stop_keep_dir();
    std::fs::rename(&log, &aside).unwrap();
    let stderr = refused_start(dir.path(), &[], &[]);
    assert!(
        stderr.contains("commit log") && stderr.contains(&log.display().to_string()) && stderr.contains("--accept-new-store"),
        "{stderr}"
    );

    // Restored, it starts; after a clean stop (SIGTERM) the log is not needed.
    std::fs::rename(&aside, &log).unwrap();
    let server = TestServer::start_in(dir, &config(), &[]).await;
    let dir = server.terminate_keep_dir();
    std::fs::remove_file(&log).unwrap();
    let server = TestServer::start_in(dir, &config(), &[]).await;
    let (status, body) = server.refresh("web", &before.logged_out).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    new_sessions_work(&server).await;
}
