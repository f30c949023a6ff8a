//! `tessera clients …`: add, list, remove a client and rotate its secret,
//! editing tessera.toml in place (see [`super::config_file`]); a running
//! server takes the change on SIGHUP.
//!
//! A new secret is printed once and only its SHA-256 is stored. Rotation
//! keeps the replaced secret's hash as `secret_sha256_previous`, accepted
//! until `previous_valid_until` (default: 24 hours later), so the client's
//! holders can switch without an outage; a second rotation within the grace
//! ends the older secret at once.

use super::config_file::ConfigFile;
use crate::clients::{Permission, generate_secret, secret_sha256_hex};
use crate::config::{Config, format_duration, parse_duration};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(super) enum ClientsCommand {
    /// Create a client: prints its secret once and the config to add.
    Add {
        /// The client id (`client_id`), 1 to 128 printable characters.
        #[arg(long, allow_hyphen_values = true)]
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
        /// Add the client to this config file instead of only printing it.
        #[arg(long)]
        append_to: Option<PathBuf>,
        /// Print `{"id", "secret", "public", "file"}` as JSON, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// List the configured clients (never a secret or its hash).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client from the config file.
    Remove {
        /// The client id.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
    },
    /// Give a confidential client a new secret; the old one stays valid for
    /// the grace period.
    RotateSecret {
        /// The client id.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// How long the old secret keeps working, like "24h" or "0s".
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Print `{"id", "secret", "previous_valid_until", "file"}` as JSON, nothing else.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(config: &Config, file: Option<PathBuf>, command: ClientsCommand) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let need_file = || file.clone().context("no config file: pass --config FILE or run in a directory with tessera.toml");
    match command {
        ClientsCommand::Add { id, public, permissions, audiences, scopes, append_to, json } => {
            add(config, &env, &NewClient { id, public, permissions, audiences, scopes }, append_to.as_deref(), json)
        }
        ClientsCommand::List { json } => list(config, json),
        ClientsCommand::Remove { id } => remove(&need_file()?, &env, &id),
        ClientsCommand::RotateSecret { id, grace, json } => rotate(&need_file()?, &env, &id, &grace, json),
    }
}

struct NewClient {
    id: String,
    public: bool,
    permissions: Vec<String>,
    audiences: Vec<String>,
    scopes: Vec<String>,
}

fn add(config: &Config, env: &[(String, String)], new: &NewClient, append_to: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if config.clients.get(&new.id).is_some() {
        bail!("a client with id {:?} is already configured", new.id);
    }
    for permission in &new.permissions {
        if Permission::parse(permission).is_none() {
            bail!("--permission {permission:?}: expected one of {}", Permission::NAMES.join(", "));
        }
    }
    let secret = (!new.public).then(generate_secret);
    let mut table = toml_edit::Table::new();
    table.insert("id", toml_edit::value(new.id.as_str()));
    match &secret {
        Some(secret) => table.insert("secret_sha256", toml_edit::value(secret_sha256_hex(secret))),
        None => table.insert("public", toml_edit::value(true)),
    };
    for (key, items) in [("permissions", &new.permissions), ("audiences", &new.audiences), ("scopes", &new.scopes)] {
        if !items.is_empty() {
            table.insert(key, toml_edit::value(items.iter().map(String::as_str).collect::<toml_edit::Array>()));
        }
    }
    // Check the client exactly as the server will read it, in a scratch file.
    let scratch = std::env::temp_dir().join(format!("tessera-new-client-{}.toml", std::process::id()));
    let mut check = ConfigFile::open(&scratch)?;
    check.clients()?.push(table.clone());
    let checked = check.save(&[]).context("the new client");
    let snippet = std::fs::read_to_string(&scratch).unwrap_or_default();
    let _ = std::fs::remove_file(&scratch);
    checked?;

    if let Some(path) = append_to {
        let mut file = ConfigFile::open(path)?;
        if file.position(&new.id)?.is_some() {
            bail!("a client with id {:?} is already in {}", new.id, path.display());
        }
        file.clients()?.push(table);
        file.save(env)?;
    }
    if json {
        let file = append_to.map(|p| p.display().to_string());
        println!("{}", json!({"id": new.id, "secret": secret, "public": new.public, "file": file}));
        return Ok(());
    }
    match &secret {
        Some(secret) => {
            println!("client {:?} created. Its secret is shown once; store it in your secret manager:\n\n    {secret}\n", new.id)
        }
        None => println!("public client {:?} created (no secret).\n", new.id),
    }
    match append_to {
        Some(path) => println!("added to {}; a running tessera loads it on SIGHUP (kill -HUP <pid>):\n\n{snippet}", path.display()),
        None => println!("add this to your tessera.toml, then send tessera SIGHUP (kill -HUP <pid>):\n\n{snippet}"),
    }
    Ok(())
}

fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let mut clients: Vec<_> = config.clients.iter().collect();
    clients.sort_by(|a, b| a.id.cmp(&b.id));
    let rows: Vec<serde_json::Value> = clients
        .iter()
        .map(|client| {
            let previous_until =
                client.previous_secret.filter(|previous| previous.valid_until > std::time::SystemTime::now()).map(|previous| {
                    chrono::DateTime::<chrono::Utc>::from(previous.valid_until).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
            json!({
                "id": client.id,
                "public": client.is_public(),
                "permissions": client.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "audiences": client.audiences,
                "scopes": client.scopes,
                "access_ttl": format_duration(client.access_ttl),
                "previous_secret_valid_until": previous_until,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no clients configured");
        return Ok(());
    }
    println!("{:<24} {:<13} {:<10} {:<36} AUDIENCES / SCOPES", "ID", "KIND", "TTL", "PERMISSIONS");
    for row in &rows {
        let words =
            |key: &str| row[key].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
        let kind = if row["public"] == true { "public" } else { "confidential" };
        let mut extra = format!("{} / {}", or_dash(words("audiences")), or_dash(words("scopes")));
        if let Some(until) = row["previous_secret_valid_until"].as_str() {
            extra.push_str(&format!("  (previous secret valid until {until})"));
        }
        println!(
            "{:<24} {:<13} {:<10} {:<36} {extra}",
            row["id"].as_str().unwrap_or_default(),
            kind,
            row["access_ttl"].as_str().unwrap_or_default(),
            or_dash(words("permissions"))
        );
    }
    Ok(())
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

fn remove(path: &Path, env: &[(String, String)], id: &str) -> anyhow::Result<()> {
    let mut file = ConfigFile::open(path)?;
    let Some(index) = file.position(id)? else {
        bail!("no client {id:?} in {} (a client set by TESSERA_CLIENTS cannot be removed here)", path.display());
    };
    file.clients()?.remove(index);
    file.save(env)?;
    println!("removed client {id:?} from {}; a running tessera drops it on SIGHUP (kill -HUP <pid>)", file.path().display());
    Ok(())
}

fn rotate(path: &Path, env: &[(String, String)], id: &str, grace: &str, json: bool) -> anyhow::Result<()> {
    let grace = parse_duration(grace).with_context(|| format!("--grace {grace:?}: expected a duration like \"24h\" or \"0s\""))?;
    let mut file = ConfigFile::open(path)?;
    let table = file.client(id)?;
    let Some(old) = table.get("secret_sha256").and_then(|v| v.as_str()).map(str::to_string) else {
        bail!("client {id:?} is public: it has no secret to rotate");
    };
    let secret = generate_secret();
    table.insert("secret_sha256", toml_edit::value(secret_sha256_hex(&secret)));
    let until = (!grace.is_zero()).then(|| {
        let until = chrono::Utc::now() + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    match &until {
        Some(until) => {
            table.insert("secret_sha256_previous", toml_edit::value(old));
            table.insert("previous_valid_until", toml_edit::value(until.as_str()));
        }
        None => {
            table.remove("secret_sha256_previous");
            table.remove("previous_valid_until");
        }
    }
    file.save(env)?;
    if json {
        println!("{}", json!({"id": id, "secret": secret, "previous_valid_until": until, "file": path.display().to_string()}));
        return Ok(());
    }
    println!("new secret for {id:?}, shown once; store it in your secret manager:\n\n    {secret}\n");
    match until {
        Some(until) => println!("the previous secret stays valid until {until}."),
        None => println!("the previous secret stops working as soon as tessera reloads."),
    }
    println!("written to {}; a running tessera takes it on SIGHUP (kill -HUP <pid>)", path.display());
    Ok(())
}
