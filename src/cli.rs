//! The `tessera` command line: `serve`, `keys …`, `clients …`,
//! `token inspect`. Each command loads the same configuration the server
//! would, so `keys list` shows exactly the timeline the server follows.

use crate::clients::{Permission, generate_secret, secret_sha256_hex};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, format_duration, parse_duration};
use crate::keys::schedule::{self, KeyState, KeyUse};
use crate::keys::{KeyDirectory, Keyring, SigningAlgorithm};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "A stateless JWT token service")]
struct Cli {
    /// Config file (TOML). Default: ./tessera.toml when it exists, else built-in defaults.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the token service.
    Serve {
        /// Development mode: serve the demo page at /demo (with a public
        /// `demo` client) and, on an http://localhost issuer, relax the
        /// refresh cookie's Secure flag and prefix. Never in production.
        #[arg(long)]
        dev: bool,
    },
    /// Manage the key directory.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Look inside tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a new key. By default it activates after twice the JWKS
    /// max-age (immediately if there is no usable key yet), so no verifier
    /// honouring Cache-Control ever meets an unknown kid.
    Generate {
        /// ES256, ES384, EdDSA, RS256 or PS256 (default: tokens.algorithm).
        #[arg(long)]
        alg: Option<String>,
        /// Delay before the key starts signing, e.g. "10m" or "0s".
        #[arg(long)]
        activate_in: Option<String>,
        /// Generate a refresh-token MAC key instead of a signing key.
        #[arg(long)]
        mac: bool,
    },
    /// Show every key's timeline.
    List,
    /// Withdraw a pending key before it signs.
    Retire { kid: String },
    /// Emergency: withdraw a key now (unpublished, untrusted, announced in the
    /// revocation feed); an active key gets a successor that signs at once.
    Revoke { kid: String },
    /// Delete expired keys.
    Prune,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Create a client: prints its secret once and the config to add.
    Add {
        #[arg(long)]
        id: String,
        /// A public client (SPA, mobile app): no secret.
        #[arg(long)]
        public: bool,
        /// sessions, introspect or revoke_sessions (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// An audience its tokens may carry (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// A scope its tokens may carry (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Append the client to this config file instead of only printing it.
        #[arg(long)]
        append_to: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Decode a token and say whether this service's keys accept it.
    Inspect { token: String },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = path.or_else(|| {
        let default = PathBuf::from("tessera.toml");
        default.exists().then_some(default)
    });
    Ok(Config::load(path.as_deref())?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = load_config(cli.config)?;
    match cli.command {
        Command::Serve { dev } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(crate::server::serve(config, dev))?;
        }
        Command::Keys(command) => keys(&config, command)?,
        Command::Clients(ClientsCommand::Add { id, public, permissions, audiences, scopes, append_to }) => {
            add_client(&config, &id, public, &permissions, &audiences, &scopes, append_to)?;
        }
        Command::Token(TokenCommand::Inspect { token }) => return inspect(&config, token.trim()),
    }
    Ok(ExitCode::SUCCESS)
}

fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let directory = KeyDirectory::new(&config.keys_dir);
    let lifetimes = config.token_lifetimes();
    let now = SystemClock.now();
    match command {
        KeysCommand::Generate { alg, activate_in, mac } => {
            let key_use = if mac { KeyUse::RefreshMac } else { KeyUse::Signing };
            let metas = directory.metadata()?;
            let has_usable = schedule::timeline(&metas, lifetimes, now)
                .iter()
                .any(|r| r.meta.key_use == key_use && matches!(r.state, KeyState::Active | KeyState::Pending));
            let delay = match activate_in {
                Some(text) => {
                    parse_duration(&text).with_context(|| format!("--activate-in {text:?}: expected a duration like \"10m\" or \"0s\""))?
                }
                None if has_usable => config.keys.publication_lead(),
                None => std::time::Duration::ZERO,
            };
            if has_usable && delay < config.keys.jwks_max_age {
                eprintln!(
                    "warning: activating in {} is shorter than the JWKS max-age ({}); verifiers with a cached JWKS may briefly meet an unknown kid",
                    format_duration(delay),
                    format_duration(config.keys.jwks_max_age)
                );
            }
            let activates_at = now + chrono::Duration::from_std(delay)?;
            let meta = if mac {
                directory.generate_mac(now, activates_at)?
            } else {
                let alg_name = alg.unwrap_or_else(|| config.tokens.algorithm.as_str().to_string());
                let alg = SigningAlgorithm::parse(&alg_name)
                    .with_context(|| format!("--alg {alg_name:?}: expected one of {}", SigningAlgorithm::NAMES.join(", ")))?;
                directory.generate_signing(alg, now, activates_at)?
            };
            println!(
                "generated {} key {} ({}), activates {}",
                if mac { "refresh MAC" } else { "signing" },
                meta.kid,
                meta.alg,
                when(Some(meta.activates_at), now)
            );
        }
        KeysCommand::List => {
            let rows = schedule::timeline(&directory.metadata()?, lifetimes, now);
            if rows.is_empty() {
                println!("no keys in {} (tessera serve creates them)", directory.path().display());
                return Ok(());
            }
            println!("{:<44} {:<12} {:<6} {:<8} {:<30} {:<30} {:<30}", "KID", "USE", "ALG", "STATE", "ACTIVATES", "RETIRES", "EXPIRES");
            for row in rows {
                let key_use = if row.meta.key_use == KeyUse::Signing { "signing" } else { "refresh-mac" };
                println!(
                    "{:<44} {:<12} {:<6} {:<8} {:<30} {:<30} {:<30}",
                    row.meta.kid,
                    key_use,
                    row.meta.alg,
                    row.state.as_str(),
                    when(Some(row.meta.activates_at), now),
                    when(row.retires, now),
                    when(row.expires, now)
                );
            }
        }
        KeysCommand::Retire { kid } => {
            let meta = directory.retire(&kid, lifetimes, now)?;
            println!("retired {}; it stays published until its last tokens expire", meta.kid);
        }
        KeysCommand::Revoke { kid } => {
            let (meta, successor) = directory.revoke(&kid, config.tokens.algorithm, lifetimes, now)?;
            println!(
                "revoked {}: withdrawn from the JWKS; serving replicas announce it in the revocation feed within {}",
                meta.kid,
                format_duration(config.keys.reload_interval * 2)
            );
            if let Some(next) = successor {
                println!("generated {} ({}) to sign from now on", next.kid, next.alg);
            }
        }
        KeysCommand::Prune => {
            let removed = directory.prune(lifetimes, now)?;
            if removed.is_empty() {
                println!("nothing to prune");
            }
            for kid in removed {
                println!("removed expired key {kid}");
            }
        }
    }
    Ok(())
}

/// "2026-11-27T10:00:00Z (in 10m)" — absolute and relative.
fn when(instant: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(instant) = instant else {
        return "-".into();
    };
    let delta = instant.signed_duration_since(now);
    let relative = match delta.to_std() {
        Ok(ahead) => format!("in {}", format_duration(std::time::Duration::from_secs(ahead.as_secs()))),
        Err(_) => format!("{} ago", format_duration(std::time::Duration::from_secs((-delta).num_seconds().max(0) as u64))),
    };
    format!("{} ({relative})", instant.format("%Y-%m-%dT%H:%M:%SZ"))
}

fn add_client(
    config: &Config,
    id: &str,
    public: bool,
    permissions: &[String],
    audiences: &[String],
    scopes: &[String],
    append_to: Option<PathBuf>,
) -> anyhow::Result<()> {
    if config.clients.get(id).is_some() {
        bail!("a client with id {id:?} is already configured");
    }
    for permission in permissions {
        if Permission::parse(permission).is_none() {
            bail!("--permission {permission:?}: expected one of {}", Permission::NAMES.join(", "));
        }
    }
    let secret = (!public).then(generate_secret);
    let mut snippet = format!("\n[[clients]]\nid = {}\n", toml_string(id));
    match &secret {
        Some(secret) => snippet.push_str(&format!("secret_sha256 = \"{}\"\n", secret_sha256_hex(secret))),
        None => snippet.push_str("public = true\n"),
    }
    let list = |items: &[String]| format!("[{}]", items.iter().map(|s| toml_string(s)).collect::<Vec<_>>().join(", "));
    if !permissions.is_empty() {
        snippet.push_str(&format!("permissions = {}\n", list(permissions)));
    }
    if !audiences.is_empty() {
        snippet.push_str(&format!("audiences = {}\n", list(audiences)));
    }
    if !scopes.is_empty() {
        snippet.push_str(&format!("scopes = {}\n", list(scopes)));
    }
    // Validate the snippet exactly as the server will read it.
    let table: toml::Table = snippet.parse().context("generated client config")?;
    let candidate = format!("clients = {}", table.get("clients").map(|v| v.to_string()).unwrap_or_default());
    let _ = Config::load_with_env(None, &[("TESSERA_CLIENTS".into(), candidate.trim_start_matches("clients = ").to_string())])?;

    match &secret {
        Some(secret) => println!("client {id:?} created. Its secret is shown once; store it in your secret manager:\n\n    {secret}\n"),
        None => println!("public client {id:?} created (no secret).\n"),
    }
    match append_to {
        Some(path) => {
            let mut file =
                std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
            file.write_all(snippet.as_bytes())?;
            println!("appended to {}; restart tessera to load it:{snippet}", path.display());
        }
        None => println!("add this to your tessera.toml and restart tessera:{snippet}"),
    }
    Ok(())
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
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
                    println!("valid: MAC checks out with key {}", token.split('.').nth(1).unwrap_or("?"));
                    ExitCode::SUCCESS
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
    let verdict = crate::tokens::access::check(token, &view, issuer, config.tokens.leeway.as_secs() as i64, now);
    Ok(match verdict {
        Ok(_) => {
            println!("valid");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("invalid: {reason}");
            ExitCode::FAILURE
        }
    })
}

/// Part `index` of a compact JWS as JSON, unchecked: for display only.
fn unverified_part(token: &str, index: usize) -> Option<serde_json::Value> {
    use base64::Engine;
    let part = token.split('.').nth(index)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}
