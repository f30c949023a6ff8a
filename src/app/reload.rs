//! SIGHUP: read the configuration again and put what can change at run
//! time in force, without dropping a connection.
//!
//! Reloadable: `[[clients]]` (added, removed, changed, secrets rotated),
//! `[feed]` (new streams and documents follow it), `keys.jwks_max_age` and
//! `http.request_timeout`. They are
//! read per request from the live configuration ([`AppState::config`]), so
//! a swap is all a reload does; requests in flight finish on the
//! configuration they started with, and the throttle's counts, the store,
//! the keys and every open connection are untouched.
//!
//! Everything else is bound at start — listeners (`listen`,
//! `management.listen`), `issuer`, `keys_dir`, `[store]`, `[tokens]`,
//! `keys.reload_interval`, `keys.rotate_every`, the other `[http]` limits,
//! `[throttle]`, `[log]`, `[dpop]`: a change there is logged as needing a restart
//! and the value in force is kept.
//!
//! A file that does not load (a syntax error, a bad value) changes
//! nothing: the error is logged and the previous configuration stays. So
//! does a client whose `access_ttl` exceeds the longest access-token
//! lifetime the key directory was opened with: retired keys are published
//! only that long, and a longer-lived token would outlive its key.

use crate::config::{Config, ConfigError, Note};
use crate::http::AppState;
use std::fmt::Debug;
use std::path::PathBuf;

/// Where the configuration is read from: the file and the environment the
/// process started with.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// What a reload changed, by name only (never a secret or its hash).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub clients_added: Vec<String>,
    pub clients_removed: Vec<String>,
    pub clients_changed: Vec<String>,
    /// Reloadable settings whose value changed.
    pub settings: Vec<&'static str>,
    /// Settings that changed in the file but keep their value until a restart.
    pub need_restart: Vec<&'static str>,
}

impl Changes {
    /// One INFO line for what took effect, one WARN line for what did not.
    pub fn log(&self) {
        let list = |names: &[String]| if names.is_empty() { "-".to_string() } else { names.join(",") };
        tracing::info!(
            clients_added = %list(&self.clients_added),
            clients_removed = %list(&self.clients_removed),
            clients_changed = %list(&self.clients_changed),
            settings = %if self.settings.is_empty() { "-".to_string() } else { self.settings.join(",") },
            "configuration reloaded"
        );
        if !self.need_restart.is_empty() {
            tracing::warn!(settings = %self.need_restart.join(","), "changed in the file but in force only after a restart; the running values stay");
        }
    }
}

/// The configuration to put in force: `current` with the reloadable parts
/// of `new`; and what changed.
pub fn merge(current: &Config, new: Config) -> Result<(Config, Changes), ConfigError> {
    let mut changes = Changes::default();
    for client in new.clients.iter() {
        match current.clients.get(&client.id) {
            None => changes.clients_added.push(client.id.clone()),
            Some(old) if old != client => changes.clients_changed.push(client.id.clone()),
            Some(_) => {}
        }
    }
    changes.clients_removed = current.clients.iter().filter(|c| new.clients.get(&c.id).is_none()).map(|c| c.id.clone()).collect();
    for list in [&mut changes.clients_added, &mut changes.clients_removed, &mut changes.clients_changed] {
        list.sort();
    }
    let longest = current.token_lifetimes().access;
    if let Some(client) = new.clients.iter().find(|client| client.access_ttl > longest) {
        return Err(ConfigError::invalid(
            format!("clients ({}).access_ttl", client.id),
            crate::config::format_duration(client.access_ttl),
            format!(
                "longer than the longest access-token lifetime in force ({}); retired keys are published only that long: restart to apply it",
                crate::config::format_duration(longest)
            ),
        ));
    }

    let mut merged = current.clone();
    let mut reload = |name: &'static str, changed: bool| {
        if changed {
            changes.settings.push(name);
        }
    };
    reload("feed", current.feed != new.feed);
    reload("keys.jwks_max_age", current.keys.jwks_max_age != new.keys.jwks_max_age);
    reload("http.request_timeout", current.http.request_timeout != new.http.request_timeout);
    merged.clients = new.clients.clone();
    merged.feed = new.feed.clone();
    merged.keys.jwks_max_age = new.keys.jwks_max_age;
    merged.http.request_timeout = new.http.request_timeout;

    let mut restart = |name: &'static str, old: &dyn Debug, new: &dyn Debug| {
        if format!("{old:?}") != format!("{new:?}") {
            changes.need_restart.push(name);
        }
    };
    restart("issuer", &current.issuer, &new.issuer);
    restart("listen", &current.listen, &new.listen);
    restart("management.listen", &current.management_listen, &new.management_listen);
    restart("keys_dir", &current.keys_dir, &new.keys_dir);
    restart("store", &current.store, &new.store);
    restart("tokens", &current.tokens, &new.tokens);
    restart("keys.reload_interval", &current.keys.reload_interval, &new.keys.reload_interval);
    restart("keys.rotate_every", &current.keys.rotate_every, &new.keys.rotate_every);
    let mut http = new.http.clone();
    http.request_timeout = current.http.request_timeout;
    restart("http", &current.http, &http);
    restart("throttle", &current.throttle, &new.throttle);
    restart("log.format", &current.log_format, &new.log_format);
    restart("dpop", &current.dpop, &new.dpop);
    Ok((merged, changes))
}

/// Read the configuration from `source` and put it in force, or change
/// nothing and say why.
pub fn reload(state: &AppState, source: &Source) -> Result<Changes, ConfigError> {
    let loaded = Config::read(source.file.as_deref(), &source.env)?;
    loaded.notes.iter().for_each(Note::log);
    let mut new = loaded.config;
    if state.is_dev() {
        new.clients = crate::http::demo::with_demo_client(new.clients, state.issuer(), new.tokens.access_ttl);
    }
    let (merged, changes) = merge(&state.config(), new)?;
    state.replace_config(merged);
    Ok(changes)
}

/// Reload on every signal `hangups` delivers, until the task is stopped.
pub async fn on_hangup(state: AppState, source: Source, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        tracing::info!(file = %source.file.as_deref().map_or("-".into(), |p| p.display().to_string()), "SIGHUP: reloading the configuration");
        match reload(&state, &source) {
            Ok(changes) => changes.log(),
            Err(error) => tracing::error!(%error, "configuration reload refused; the previous configuration stays in force"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{Client, ClientRegistry};
    use std::time::Duration;

    fn with_clients(clients: Vec<Client>) -> Config {
        let mut config = Config::defaults();
        config.clients = ClientRegistry::new(clients).unwrap();
        config
    }

    #[test]
    fn a_merge_takes_clients_and_reloadable_settings_and_keeps_the_rest() {
        let minute = Duration::from_secs(60);
        let current = with_clients(vec![Client::public("web", minute), Client::public("old", minute)]);
        let mut changed_web = Client::public("web", minute);
        changed_web.scopes = vec!["read".into()];
        let mut new = with_clients(vec![changed_web, Client::public("new", minute)]);
        new.feed.public = !current.feed.public;
        new.listen = "127.0.0.1:1".parse().unwrap();
        new.tokens.reuse_grace = Duration::ZERO;
        let (merged, changes) = merge(&current, new).unwrap();
        assert_eq!(changes.clients_added, ["new"]);
        assert_eq!(changes.clients_removed, ["old"]);
        assert_eq!(changes.clients_changed, ["web"]);
        assert_eq!(changes.settings, ["feed"]);
        assert_eq!(changes.need_restart, ["listen", "tokens"]);
        assert!(merged.clients.get("new").is_some() && merged.clients.get("old").is_none());
        assert_eq!(merged.feed.public, !current.feed.public);
        assert_eq!(merged.listen, current.listen, "the listener keeps its address");
        assert_eq!(merged.tokens.reuse_grace, current.tokens.reuse_grace);
    }

    #[test]
    fn a_client_outliving_the_published_keys_is_refused() {
        let current = with_clients(vec![]);
        let new = with_clients(vec![Client::public("long", Duration::from_secs(3600))]);
        let error = merge(&current, new).unwrap_err().to_string();
        assert!(error.contains("long") && error.contains("restart"), "{error}");
    }
}
