//! `tessera clients …`: create a client, print its secret once and the
//! config to add.

use crate::clients::{Permission, generate_secret, secret_sha256_hex};
use crate::config::Config;
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(super) enum ClientsCommand {
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

pub(super) fn run(config: &Config, command: ClientsCommand) -> anyhow::Result<()> {
    let ClientsCommand::Add { id, public, permissions, audiences, scopes, append_to } = command;
    add_client(config, &id, public, &permissions, &audiences, &scopes, append_to)
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
