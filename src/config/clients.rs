//! The `[[clients]]` tables: each client as written in the file, and its
//! validation into a [`Client`] with errors that name the key
//! (`clients[2].access_ttl`), the value and what is allowed. The client
//! model itself lives in [`crate::clients`], which knows nothing of files.

use super::{ConfigError, parse_duration};
use crate::clients::{Client, Permission, PreviousSecret, parse_sha256_hex, valid_client_id, valid_scope_token};
use serde::Deserialize;
use std::time::Duration;

/// A client as written in the config file, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    id: Option<String>,
    secret_sha256: Option<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    access_ttl: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    refresh_cookie: bool,
    max_sessions_per_subject: Option<i64>,
    /// Written by `tessera clients rotate-secret`: the replaced secret's
    /// hash, accepted until `previous_valid_until` (RFC 3339).
    secret_sha256_previous: Option<String>,
    previous_valid_until: Option<String>,
}

impl RawClient {
    pub(crate) fn validate(self, index: usize, default_ttl: Duration) -> Result<Client, ConfigError> {
        let key = |field: &str| format!("clients[{index}].{field}");
        let id = self.id.unwrap_or_default();
        if !valid_client_id(&id) {
            return Err(ConfigError::invalid(key("id"), &id, "expected 1 to 128 printable ASCII characters without spaces"));
        }
        let secret_sha256 = match (self.public, self.secret_sha256) {
            (true, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("secret_sha256"),
                    "<set>",
                    "a public client has no secret; remove secret_sha256 or public = true",
                ));
            }
            (true, None) => None,
            (false, None) => {
                return Err(ConfigError::invalid(
                    key("secret_sha256"),
                    "<missing>",
                    "a confidential client needs secret_sha256 (run `tessera clients add`), or set public = true",
                ));
            }
            (false, Some(hex)) => Some(parse_sha256_hex(&hex).ok_or_else(|| {
                ConfigError::invalid(key("secret_sha256"), &hex, "expected 64 hexadecimal digits (the SHA-256 of the secret)")
            })?),
        };
        let mut permissions = Vec::new();
        for name in &self.permissions {
            let permission = Permission::parse(name).ok_or_else(|| {
                ConfigError::invalid(key("permissions"), name, format!("expected one of {}", Permission::NAMES.join(", ")))
            })?;
            if secret_sha256.is_none() {
                return Err(ConfigError::invalid(key("permissions"), name, "a public client cannot hold permissions"));
            }
            permissions.push(permission);
        }
        for audience in &self.audiences {
            if audience.is_empty() || audience.len() > 256 || audience.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    key("audiences"),
                    audience,
                    "expected non-empty audience names without spaces, at most 256 bytes",
                ));
            }
        }
        for scope in &self.scopes {
            if !valid_scope_token(scope) {
                return Err(ConfigError::invalid(
                    key("scopes"),
                    scope,
                    "expected RFC 6749 scope tokens: printable ASCII without spaces, quotes or backslashes",
                ));
            }
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://")) || origin.ends_with('/') {
                return Err(ConfigError::invalid(
                    key("allowed_origins"),
                    origin,
                    "expected origins like \"https://app.example.com\" (scheme and host, no path)",
                ));
            }
        }
        let access_ttl = match self.access_ttl {
            None => default_ttl,
            Some(text) => parse_duration(&text)
                .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(86_400))
                .ok_or_else(|| ConfigError::invalid(key("access_ttl"), &text, "expected a duration between 1s and 1d, like \"10m\""))?,
        };
        let max_sessions_per_subject = match self.max_sessions_per_subject {
            None => None,
            Some(n) if (1..=1000).contains(&n) => Some(n as usize),
            Some(n) => return Err(ConfigError::invalid(key("max_sessions_per_subject"), n, "expected a number from 1 to 1000")),
        };
        let previous_secret = match (self.secret_sha256_previous, self.previous_valid_until) {
            (None, None) => None,
            (Some(hex), Some(until)) if secret_sha256.is_some() => {
                let sha256 = parse_sha256_hex(&hex).ok_or_else(|| {
                    ConfigError::invalid(key("secret_sha256_previous"), &hex, "expected 64 hexadecimal digits (the SHA-256 of the secret)")
                })?;
                let valid_until = chrono::DateTime::parse_from_rfc3339(&until).map_err(|_| {
                    ConfigError::invalid(key("previous_valid_until"), &until, "expected an RFC 3339 time like \"2026-12-01T12:00:00Z\"")
                })?;
                Some(PreviousSecret { sha256, valid_until: valid_until.with_timezone(&chrono::Utc).into() })
            }
            _ => {
                return Err(ConfigError::invalid(
                    key("secret_sha256_previous"),
                    "<set>",
                    "set both secret_sha256_previous and previous_valid_until, on a confidential client (tessera clients rotate-secret writes them)",
                ));
            }
        };
        Ok(Client {
            id,
            secret_sha256,
            previous_secret,
            permissions,
            audiences: self.audiences,
            scopes: self.scopes,
            access_ttl,
            allowed_origins: self.allowed_origins,
            refresh_cookie: self.refresh_cookie,
            max_sessions_per_subject,
        })
    }
}
