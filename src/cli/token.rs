//! `tessera token inspect`: decode a token and say whether this service
//! accepts it — keys, expiry, and the revocation list of the configured
//! store (or, plainly, why the list could not be read).
//!
//! The token is read from standard input when no argument (or `-`) is
//! given, so a live bearer token need not land in shell history or `ps`.
//! `--json` prints one object instead of prose: `kind`, `header`,
//! `claims`, `kid`, `key_state`, `revocation`, `valid`, `reason`.

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
    Inspect {
        #[arg(allow_hyphen_values = true)]
        token: Option<String>,
        /// Print one JSON object (`valid`, `claims`, …) instead of prose.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Inspect { token, json } = command;
    let token = match token {
        Some(token) if token != "-" => token,
        _ => read_stdin()?,
    };
    let mut report = Report { json, fields: serde_json::Map::new() };
    let code = inspect(config, token.trim(), &mut report)?;
    if json {
        report.set("valid", code == ExitCode::SUCCESS);
        println!("{}", serde_json::Value::Object(report.fields));
    }
    Ok(code)
}

/// What inspect finds: prose lines, or (with `--json`) fields of one object.
struct Report {
    json: bool,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn line(&self, text: impl std::fmt::Display) {
        if !self.json {
            println!("{text}");
        }
    }

    fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.fields.insert(key.to_string(), value.into());
    }

    /// An invalid token: the reason, as a line or the `reason` field.
    fn invalid(&mut self, reason: impl std::fmt::Display) -> ExitCode {
        self.line(format!("invalid: {reason}"));
        self.set("reason", reason.to_string());
        ExitCode::FAILURE
    }
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

fn inspect(config: &Config, token: &str, report: &mut Report) -> anyhow::Result<ExitCode> {
    let clock = Arc::new(SystemClock);
    let keyring = Keyring::open(KeyDirectory::new(&config.keys_dir), config.token_lifetimes(), clock.clone())?;
    let view = keyring.view();
    let now = clock.now();

    if token.starts_with("rt1.") {
        report.line("refresh token (opaque, MAC-protected)");
        report.set("kind", "refresh");
        return Ok(match crate::tokens::refresh::open(token, &view, now) {
            Ok(claims) => {
                report.line(format!("claims:\n{}", serde_json::to_string_pretty(&claims)?));
                report.set("claims", serde_json::to_value(&claims)?);
                if claims.exp.min(claims.session_exp) <= now.timestamp() {
                    report.invalid("expired")
                } else {
                    let kid = token.split('.').nth(1).unwrap_or("?");
                    report.line(format!("MAC checks out with key {kid}"));
                    report.set("kid", kid);
                    let facts = TokenFacts { jti: Some(&claims.jti), sid: Some(&claims.sid), sub: &claims.sub, iat: claims.iat, kid: None };
                    verdict(revocation(config, facts), report)
                }
            }
            Err(error) => report.invalid(error),
        });
    }

    let header = unverified_part(token, 0).context("not a JWT: the header does not decode")?;
    report.line(format!("header:\n{}", serde_json::to_string_pretty(&header)?));
    let claims = unverified_part(token, 1).context("not a JWT: the claims do not decode")?;
    report.line(format!("claims:\n{}", serde_json::to_string_pretty(&claims)?));
    report.set("kind", "access");
    report.set("header", header.clone());
    report.set("claims", claims.clone());

    let Some(kid) = header["kid"].as_str() else {
        return Ok(report.invalid("no kid in the header"));
    };
    let Some((key, state)) = view.signing_key(kid, now) else {
        return Ok(report.invalid(format!("kid {kid} is not a key in {}", config.keys_dir.display())));
    };
    report.line(format!("signed by: {kid} ({}, {})", key.alg, state.as_str()));
    report.set("kid", kid);
    report.set("key_state", state.as_str());
    // The very check introspection makes; with no issuer configured, the
    // token's own is taken.
    let issuer = config.issuer.as_deref().or(claims["iss"].as_str()).unwrap_or_default();
    match crate::tokens::access::check(token, &view, issuer, config.tokens.leeway.as_secs() as i64, now) {
        Ok((claims, kid)) => {
            let facts =
                TokenFacts { jti: Some(&claims.jti), sid: claims.sid.as_deref(), sub: &claims.sub, iat: claims.iat, kid: Some(&kid) };
            Ok(verdict(revocation(config, facts), report))
        }
        Err(reason) => Ok(report.invalid(reason)),
    }
}

/// What the revocation list says of a token that is otherwise valid.
#[derive(Debug, PartialEq, Eq)]
enum Revocation {
    Live { entries: usize, store: String },
    Revoked(&'static str),
    NotChecked(String),
}

fn verdict(revocation: Revocation, report: &mut Report) -> ExitCode {
    match revocation {
        Revocation::Live { entries, store } => {
            report.line(format!("revocation: not revoked ({entries} entries checked in {store})"));
            report.set("revocation", format!("not revoked ({entries} entries checked in {store})"));
            report.line("valid");
            ExitCode::SUCCESS
        }
        Revocation::Revoked(why) => {
            report.line(format!("revocation: revoked — {why}"));
            report.set("revocation", format!("revoked: {why}"));
            report.invalid("revoked")
        }
        Revocation::NotChecked(why) => {
            report.line(format!("revocation: not checked: {why}"));
            report.set("revocation", format!("not checked: {why}"));
            report.line("valid");
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
