//! `tessera token inspect`: the token from standard input (or the
//! argument), and the configured store's revocation list checked — or a
//! plain word that it was not.

use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Run `tessera token inspect [args]` in `dir` with `stdin` piped in.
fn inspect(dir: &std::path::Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(binary())
        .args(["token", "inspect"])
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn token_inspect_reads_the_token_from_stdin_and_checks_the_revocation_list() {
    let server = server().await;
    let ended = server.web_session("alice").await;
    let live = server.web_session("bob").await;
    assert_eq!(server.logout(ended["session_id"].as_str().unwrap()).await, 204);
    let token = |body: &Value| body["access_token"].as_str().unwrap().to_string();

    // While tessera runs it holds the store file: the answer says so.
    for args in [&[][..], &["-"][..]] {
        let (ok, out) = inspect(server.dir(), args, &format!("{}\n", token(&live)), &[]);
        assert!(ok, "{out}");
        assert!(out.contains("\"sub\": \"bob\"") && out.contains("revocation: not checked: "), "{args:?}: {out}");
        assert!(out.trim_end().ends_with("valid"), "{out}");
    }
    // The argument still works.
    let (ok, out) = inspect(server.dir(), &[&token(&live)], "", &[]);
    assert!(ok && out.contains("\"sub\": \"bob\""), "{out}");
    let (ok, out) = inspect(server.dir(), &[], "", &[]);
    assert!(!ok && out.contains("no token on standard input"), "{out}");

    // Stopped, its list is read: the logged-out session's token is revoked, the other is not.
    let dir = server.terminate_keep_dir();
    let (ok, out) = inspect(dir.path(), &[], &token(&ended), &[]);
    assert!(!ok && out.contains("revocation: revoked — the session was ended"), "{out}");
    let (ok, out) = inspect(dir.path(), &["-"], &token(&live), &[]);
    assert!(ok && out.contains("revocation: not revoked (1 entries checked in embedded store"), "{out}");
    let (ok, out) = inspect(dir.path(), &[], ended["refresh_token"].as_str().unwrap(), &[]);
    assert!(!ok && out.contains("revocation: revoked"), "refresh tokens too: {out}");
    // A memory store cannot be read from outside.
    let (ok, out) = inspect(dir.path(), &[], &token(&live), &[("TESSERA_STORE_KIND", "memory")]);
    assert!(ok && out.contains("revocation: not checked: the store is kind = \"memory\""), "{out}");
}

#[tokio::test]
async fn token_inspect_checks_the_list_in_redis_while_tessera_runs() {
    if !redis::available() {
        return;
    }
    let redis = redis::RedisServer::start();
    let url = redis.url();
    let env = [("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", url.as_str())];
    let server = TestServer::start_with(&config(), &env).await;
    let session = server.web_session("alice").await;
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    let (ok, out) = inspect(server.dir(), &[], session["access_token"].as_str().unwrap(), &env);
    assert!(!ok && out.contains("revocation: revoked — the session was ended"), "{out}");
    drop(redis);
    let (ok, out) = inspect(server.dir(), &[], session["access_token"].as_str().unwrap(), &env);
    assert!(ok && out.contains("revocation: not checked: "), "Redis gone: {out}");
}
