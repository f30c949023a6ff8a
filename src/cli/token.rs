//! `tessera token inspect`: decode a token and say whether this service
//! accepts it — keys, expiry, and the revocation list of the configured
//! store (or, plainly, why the list could not be read).
//!
//! The token is read from standard input when no argument (or `-`) is
//! given, so a live bearer token need not land in shell history or `ps`.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::keys::{KeyDirectory, Keyring};
use crate::revocations::{RevocationEntry, RevocationList, TokenFacts};
use crate::store::Store;
use anyhow::Context;
use clap::Subcommand;
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Decode a token and say whether this service accepts it. Without
    /// TOKEN, or with `-`, the token is read from standard input (keeps it
    /// out of shell history and the process list).
    Inspect { token: Option<String> },
}

pub(super) fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Inspect { token } = command;
    let token = match token {
        Some(token) if token != "-" => token,
        _ => read_stdin()?,
    };
    inspect(config, token.trim())
}

fn read_stdin() -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        eprintln!("paste the token, then press Ctrl-D:");
    }
    let mut text = String::new();
    stdin.read_to_string(&mut text).context("reading the token from standard input")?;
    anyhow::ensure!(!text.trim().is_empty(), "no token on standard input (pass it there, or as the argument)");
    Ok(text)
}

fn inspect(config: &Config, token: &str) -> anyhow::Result<ExitCode> {
    let clock = Arc::new(SystemClock);
    let keyring = Keyring::open(KeyDirectory::new(&config.keys_dir), config.token_lifetimes(), clock.clone())?;
    let view = keyring.view();
    let now = clock.now();

    if token.starts_with("rt1.") {
        println!("refresh token (opaque, MAC-protected)");
        return Ok(match crate::tokens::refresh::open(token, &view, now) {
            Ok(claims) => {
                println!("claims:\n{}", serde_json::to_string_pretty(&claims)?);
                if claims.exp.min(claims.session_exp) <= now.timestamp() {
                    println!("invalid: expired");
                    ExitCode::FAILURE
                } else {
                    println!("MAC checks out with key {}", token.split('.').nth(1).unwrap_or("?"));
                    let facts = TokenFacts { jti: Some(&claims.jti), sid: Some(&claims.sid), sub: &claims.sub, iat: claims.iat, kid: None };
                    verdict(revocation(config, facts))
                }
            }
            Err(error) => {
                println!("invalid: {error}");
                ExitCode::FAILURE
            }
        });
    }

    let header = unverified_part(token, 0).context("not a JWT: the header does not decode")?;
    println!("header:\n{}", serde_json::to_string_pretty(&header)?);
    let claims = unverified_part(token, 1).context("not a JWT: the claims do not decode")?;
    println!("claims:\n{}", serde_json::to_string_pretty(&claims)?);

    let Some(kid) = header["kid"].as_str() else {
        println!("invalid: no kid in the header");
        return Ok(ExitCode::FAILURE);
    };
    let Some((key, state)) = view.signing_key(kid, now) else {
        println!("invalid: kid {kid} is not a key in {}", config.keys_dir.display());
        return Ok(ExitCode::FAILURE);
    };
    println!("signed by: {kid} ({}, {})", key.alg, state.as_str());
    // The very check introspection makes; with no issuer configured, the
    // token's own is taken.
    let issuer = config.issuer.as_deref().or(claims["iss"].as_str()).unwrap_or_default();
    match crate::tokens::access::check(token, &view, issuer, config.tokens.leeway.as_secs() as i64, now) {
        Ok((claims, kid)) => {
            let facts =
                TokenFacts { jti: Some(&claims.jti), sid: claims.sid.as_deref(), sub: &claims.sub, iat: claims.iat, kid: Some(&kid) };
            Ok(verdict(revocation(config, facts)))
        }
        Err(reason) => {
            println!("invalid: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What the revocation list says of a token that is otherwise valid.
#[derive(Debug, PartialEq, Eq)]
enum Revocation {
    Live { entries: usize, store: String },
    Revoked(&'static str),
    NotChecked(String),
}

fn verdict(revocation: Revocation) -> ExitCode {
    match revocation {
        Revocation::Live { entries, store } => {
            println!("revocation: not revoked ({entries} entries checked in {store})");
            println!("valid");
            ExitCode::SUCCESS
        }
        Revocation::Revoked(why) => {
            println!("revocation: revoked — {why}");
            println!("invalid: revoked");
            ExitCode::FAILURE
        }
        Revocation::NotChecked(why) => {
            println!("revocation: not checked: {why}");
            println!("valid");
            ExitCode::SUCCESS
        }
    }
}

/// Check `facts` against the configured store's revocation list.
fn revocation(config: &Config, facts: TokenFacts<'_>) -> Revocation {
    let (entries, store) = match load(config) {
        Ok(loaded) => loaded,
        Err(why) => return Revocation::NotChecked(why),
    };
    let list = RevocationList::new();
    list.load(&entries, entries.iter().map(|e| e.seq).max().unwrap_or(0));
    match list.check(facts) {
        Some(revoked) => Revocation::Revoked(revoked.describe()),
        None => Revocation::Live { entries: entries.len(), store },
    }
}

/// Every live entry of the configured store, and a name for the store.
fn load(config: &Config) -> Result<(Vec<RevocationEntry>, String), String> {
    match &config.store {
        StoreConfig::Memory => Err("the store is kind = \"memory\": its list lives only inside the serving process".into()),
        StoreConfig::Embedded { path } => {
            if !path.exists() {
                return Err(format!("there is no store file at {}", path.display()));
            }
            let entries = crate::store::embedded::EmbeddedStore::read_revocations(path).map_err(|error| {
                let hint = if error.0.contains("already open") || error.0.contains("lock") {
                    " (a running tessera holds the file; ask it instead with POST /oauth2/introspect)"
                } else {
                    ""
                };
                format!("{}{hint}", error.0)
            })?;
            Ok((entries, format!("embedded store {}", path.display())))
        }
        StoreConfig::Redis(redis) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("starting a runtime: {e}"))?;
            runtime.block_on(async {
                // rediss:// uses rustls with ring, the one crypto library here.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let store = crate::store::redis::RedisStore::connect(redis.clone()).await.map_err(|e| e.to_string())?;
                let entries = store.revocations_since(0).await.map_err(|e| e.to_string())?;
                Ok((entries, store.describe()))
            })
        }
    }
}

/// Part `index` of a compact JWS as JSON, unchecked: for display only.
fn unverified_part(token: &str, index: usize) -> Option<serde_json::Value> {
    use base64::Engine;
    let part = token.split('.').nth(index)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::Covers;

    fn config(store: StoreConfig) -> Config {
        Config { store, ..Config::defaults() }
    }

    fn facts<'a>() -> TokenFacts<'a> {
        TokenFacts { jti: Some("jti-1"), sid: Some("sid-1"), sub: "alice", iat: 100, kid: None }
    }

    #[test]
    fn a_memory_store_is_reported_as_not_checked() {
        let answer = revocation(&config(StoreConfig::Memory), facts());
        assert!(matches!(answer, Revocation::NotChecked(ref why) if why.contains("memory")), "{answer:?}");
    }

    #[test]
    fn a_missing_store_file_is_reported_as_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let answer = revocation(&config(StoreConfig::Embedded { path: dir.path().join("none.redb") }), facts());
        assert!(matches!(answer, Revocation::NotChecked(ref why) if why.contains("no store file")), "{answer:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_embedded_list_is_read_once_the_server_let_go_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.redb");
        let store = crate::store::embedded::EmbeddedStore::open(&path, Arc::default(), Arc::new(crate::clock::SystemClock)).unwrap();
        store.revoke(vec![crate::revocations::Revocation::new(Covers::Session { sid: "sid-1".into() }, i64::MAX / 2)]).await.unwrap();
        let held = tokio::task::spawn_blocking({
            let path = path.clone();
            move || revocation(&config(StoreConfig::Embedded { path }), facts())
        })
        .await
        .unwrap();
        assert!(matches!(held, Revocation::NotChecked(ref why) if why.contains("running tessera")), "{held:?}");
        drop(store);
        // The writer thread lets go of the file when its queue closes.
        let mut answer = Revocation::NotChecked(String::new());
        for _ in 0..100 {
            let path = path.clone();
            answer = tokio::task::spawn_blocking(move || revocation(&config(StoreConfig::Embedded { path }), facts())).await.unwrap();
            if !matches!(answer, Revocation::NotChecked(_)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(answer, Revocation::Revoked("the session was ended"));
        let other = TokenFacts { sid: Some("sid-2"), jti: Some("jti-2"), ..facts() };
        let path = path.clone();
        let live = tokio::task::spawn_blocking(move || revocation(&config(StoreConfig::Embedded { path }), other)).await.unwrap();
        assert!(matches!(live, Revocation::Live { entries: 1, .. }), "{live:?}");
    }
}
