//! `tessera keys …`: generate, list, retire, revoke and prune keys in the
//! key directory the server reads.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, format_duration, parse_duration};
use crate::keys::schedule::{self, KeyState, KeyUse};
use crate::keys::{KeyDirectory, SigningAlgorithm};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
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
    Retire {
        /// The key's id; a thumbprint may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Emergency: withdraw a key now (unpublished, untrusted, announced in the
    /// revocation feed); an active key gets a successor that signs at once.
    Revoke {
        /// The key's id; a thumbprint may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Delete expired keys.
    Prune,
}

pub(super) fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
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
