//! The `[[clients]]` tables: each client as written in the file, and its
//! validation into a [`Client`] with errors that name the key
//! (`clients[2].access_ttl`), the value and what is allowed, plus the one
//! check that spans clients (`session_clients` names configured clients).
//! The client model itself lives in [`crate::clients`], which knows
//! nothing of files.

use super::{ConfigError, parse_duration};
use crate::clients::{Client, DEFAULT_REVOCATION_QUOTA, Permission, PreviousSecret, parse_sha256_hex, valid_client_id, valid_scope_token};
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
    session_clients: Option<Vec<String>>,
    revocation_quota: Option<i64>,
    /// Written by `tessera clients rotate-secret`: the replaced secret's
    /// hash, accepted until `previous_valid_until` (RFC 3339).
    secret_sha256_previous: Option<String>,
    previous_valid_until: Option<String>,
    #[serde(default)]
    require_dpop: bool,
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
        if self.session_clients.is_some() && !permissions.contains(&Permission::Sessions) {
            return Err(ConfigError::invalid(
                key("session_clients"),
                self.session_clients.unwrap_or_default(),
                "only a client with the \"sessions\" permission creates sessions; add it to permissions or remove session_clients",
            ));
        }
        let revocation_quota = match self.revocation_quota {
            None => DEFAULT_REVOCATION_QUOTA,
            Some(n) if (1..=1_000_000).contains(&n) => n as u32,
            Some(n) => return Err(ConfigError::invalid(key("revocation_quota"), n, "expected revocations per minute from 1 to 1000000")),
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
            session_clients: self.session_clients,
            revocation_quota,
            require_dpop: self.require_dpop,
        })
    }
}

/// Every name in a client's `session_clients` must be a configured client:
/// a typo would otherwise silently leave the login backend unable to start
/// sessions for the client it meant.
pub(crate) fn check_session_clients(clients: &[Client]) -> Result<(), ConfigError> {
    for (index, client) in clients.iter().enumerate() {
        for target in client.session_clients.iter().flatten() {
            if !clients.iter().any(|c| c.id == *target) {
                let known: Vec<&str> = clients.iter().map(|c| c.id.as_str()).collect();
                return Err(ConfigError::invalid(
                    format!("clients[{index}].session_clients"),
                    target,
                    format!("names no configured client; configured: {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    const SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn load(clients: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, clients.replace("SECRET", SECRET)).unwrap();
        Config::load_with_env(Some(&path), &[]).map_err(|e| e.to_string())
    }

    #[test]
    fn session_clients_must_name_configured_clients() {
        let config = load(
            "[[clients]]\nid = \"login\"\nsecret_sha256 = \"SECRET\"\npermissions = [\"sessions\"]\nsession_clients = [\"web\"]\n\
             [[clients]]\nid = \"web\"\npublic = true\n",
        )
        .unwrap();
        assert_eq!(config.clients.get("login").unwrap().session_clients.as_deref(), Some(&["web".to_string()][..]));
        assert_eq!(config.clients.get("web").unwrap().session_clients, None);

        let typo =
            load("[[clients]]\nid = \"login\"\nsecret_sha256 = \"SECRET\"\npermissions = [\"sessions\"]\nsession_clients = [\"wbe\"]\n")
                .unwrap_err();
        assert!(typo.contains("clients[0].session_clients") && typo.contains("wbe") && typo.contains("login"), "{typo}");
    }

    #[test]
    fn session_clients_need_the_sessions_permission() {
        let error = load(
            "[[clients]]\nid = \"svc\"\nsecret_sha256 = \"SECRET\"\nsession_clients = [\"web\"]\n[[clients]]\nid = \"web\"\npublic = true\n",
        )
        .unwrap_err();
        assert!(error.contains("clients[0].session_clients") && error.contains("\"sessions\" permission"), "{error}");
    }

    #[test]
    fn the_revocation_quota_defaults_to_600_a_minute_and_is_bounded() {
        let config = load("[[clients]]\nid = \"svc\"\nsecret_sha256 = \"SECRET\"\n[[clients]]\nid = \"slow\"\nsecret_sha256 = \"SECRET\"\nrevocation_quota = 5\n").unwrap();
        assert_eq!(config.clients.get("svc").unwrap().revocation_quota, 600);
        assert_eq!(config.clients.get("slow").unwrap().revocation_quota, 5);
        let error = load("[[clients]]\nid = \"svc\"\nsecret_sha256 = \"SECRET\"\nrevocation_quota = 0\n").unwrap_err();
        assert!(error.contains("clients[0].revocation_quota"), "{error}");
    }

    #[test]
    fn clock_skew_defaults_to_two_seconds_and_the_longest_access_lifetime_is_known() {
        let config = load("[[clients]]\nid = \"web\"\npublic = true\naccess_ttl = \"1h\"\n").unwrap();
        assert_eq!(config.tokens.clock_skew, Duration::from_secs(2));
        assert_eq!(config.tokens.longest_access_ttl, Duration::from_secs(3600));
        let none = load("[tokens]\nclock_skew = \"0s\"\naccess_ttl = \"5m\"\n").unwrap();
        assert_eq!(none.tokens.clock_skew, Duration::ZERO);
        assert_eq!(none.tokens.longest_access_ttl, Duration::from_secs(300));
        assert!(load("[tokens]\nclock_skew = \"5m\"\n").unwrap_err().contains("tokens.clock_skew"));
    }
}
