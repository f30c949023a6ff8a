//! `tessera token inspect`: decode a token and say whether this service
//! accepts it.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::keys::{KeyDirectory, Keyring};
use anyhow::Context;
use clap::Subcommand;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Decode a token and say whether this service's keys accept it.
    Inspect { token: String },
}

pub(super) fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Inspect { token } = command;
    inspect(config, token.trim())
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
