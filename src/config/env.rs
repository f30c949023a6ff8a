//! `TESSERA_*` environment variables: each known key overrides the file's
//! value; anything else is ignored and said so.
//!
//! Only names that map to a key declared in `raw.rs` are read. An unknown
//! name does not stop the start, because platforms set variables of their
//! own in this namespace: Kubernetes gives every pod `TESSERA_PORT`,
//! `TESSERA_SERVICE_HOST`, `TESSERA_PORT_8080_TCP_ADDR`, … for a Service
//! named `tessera` (its "service links"). Those are recognised and noted at
//! debug level; any other unknown name is a warning naming the closest known
//! variable, so a typo such as `TESSERA_TOKENS_ACCES_TTL` is still seen.

use super::locate::closest;
use super::raw::{self, EnvForm};
use super::{ConfigError, Note};

/// Variables that are not configuration keys but are read all the same.
const OTHER_VARIABLES: [&str; 2] = ["TESSERA_CONFIG", "TESSERA_LOG"];

/// The variable that sets `key` (`tokens.access_ttl` → `TESSERA_TOKENS_ACCESS_TTL`).
pub(super) fn env_name(key: &str) -> String {
    format!("TESSERA_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A variable Kubernetes sets for a Service whose name starts with
/// `tessera`: `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT[_{NAME}]`,
/// `{SVC}_PORT` (a `tcp://` URL) and `{SVC}_PORT_{N}_{PROTO}[_PROTO|_PORT|_ADDR]`.
pub(super) fn is_service_link(name: &str, value: &str) -> bool {
    let words: Vec<&str> = name.split('_').collect();
    let protocol = |word: &str| matches!(word, "TCP" | "UDP" | "SCTP");
    let url = ["tcp://", "udp://", "sctp://"].iter().any(|scheme| value.starts_with(scheme));
    for (at, word) in words.iter().enumerate().skip(1) {
        let rest = &words[at + 1..];
        match *word {
            "SERVICE" if matches!(rest.first(), Some(&"HOST")) && rest.len() == 1 => return true,
            "SERVICE" if matches!(rest.first(), Some(&"PORT")) => return true,
            "PORT" if rest.is_empty() && url => return true,
            "PORT" if rest.len() >= 2 && rest[0].bytes().all(|b| b.is_ascii_digit()) && protocol(rest[1]) => {
                return rest.len() == 2 || (rest.len() == 3 && matches!(rest[2], "PROTO" | "PORT" | "ADDR"));
            }
            _ => {}
        }
    }
    false
}

/// Set each key a known `TESSERA_*` variable names in `table`; note the
/// others. Returns the `(variable, key)` pairs that were applied.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    notes: &mut Vec<Note>,
) -> Result<Vec<(String, &'static str)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        if !name.starts_with("TESSERA_") || OTHER_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let Some((key, form)) = raw::env_keys().find(|(key, _)| env_name(key) == *name) else {
            notes.push(unknown(name, value));
            continue;
        };
        set(table, key, form, name, value)?;
        applied.push((name.clone(), key));
    }
    Ok(applied)
}

fn unknown(name: &str, value: &str) -> Note {
    if is_service_link(name, value) {
        return Note::debug(format!("ignoring {name}: a Kubernetes service-link variable, not a tessera setting"));
    }
    let known: Vec<String> = raw::env_keys().map(|(key, _)| env_name(key)).chain(OTHER_VARIABLES.map(String::from)).collect();
    let hint = closest(name, known.iter().map(String::as_str)).map(|near| format!("; did you mean {near}?")).unwrap_or_default();
    Note::warn(format!(
        "ignoring unknown environment variable {name}{hint} (tessera reads TESSERA_CONFIG, TESSERA_LOG and one TESSERA_* per config key, like TESSERA_TOKENS_ACCESS_TTL)"
    ))
}

/// Write one variable's value at `key` in the table, as its form says.
pub(super) fn set(table: &mut toml::Table, key: &str, form: EnvForm, name: &str, value: &str) -> Result<(), ConfigError> {
    let parsed = if form == EnvForm::Plain {
        toml::Value::String(value.to_string())
    } else {
        format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).ok_or_else(|| {
            ConfigError::invalid(
                name,
                value,
                "expected a TOML value: a number, an array like [\"redis://a:7000\"], or an array of inline tables for TESSERA_CLIENTS",
            )
        })?
    };
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().expect("non-empty key");
    let mut node = &mut *table;
    for part in parts {
        let entry = node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            other => return Err(ConfigError::invalid(part, other.to_string(), "expected a table")),
        };
    }
    node.insert(leaf.to_string(), parsed);
    Ok(())
}

/// Which variable was wrong when the merged settings do not deserialize:
/// each applied variable is tried alone, and the first that fails is named.
pub(super) fn blame(env: &[(String, String)], applied: &[(String, &'static str)]) -> Option<ConfigError> {
    for (name, key) in applied {
        let value = env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())?;
        let form = raw::env_keys().find(|(k, _)| k == key).map(|(_, form)| form)?;
        let mut table = toml::Table::new();
        set(&mut table, key, form, name, value).ok()?;
        if let Err(error) = table.try_into::<raw::RawConfig>() {
            let message = super::locate::in_toml_terms(error.message().trim());
            return Some(ConfigError::WrongType { key: format!("{name} ({key})"), message });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_service_links_are_recognised() {
        for (name, value) in [
            ("TESSERA_SERVICE_HOST", "10.0.0.1"),
            ("TESSERA_SERVICE_PORT", "8080"),
            ("TESSERA_SERVICE_PORT_HTTP", "8080"),
            ("TESSERA_PORT", "tcp://10.0.0.1:8080"),
            ("TESSERA_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("TESSERA_PORT_8080_TCP_PROTO", "tcp"),
            ("TESSERA_PORT_8080_TCP_PORT", "8080"),
            ("TESSERA_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("TESSERA_MANAGEMENT_SERVICE_HOST", "10.0.0.2"),
            ("TESSERA_REDIS_PORT_6379_TCP_ADDR", "10.0.0.3"),
        ] {
            assert!(is_service_link(name, value), "{name}");
        }
        for (name, value) in [("TESSERA_PORT", "8080"), ("TESSERA_TOKENS_ACCES_TTL", "5m"), ("TESSERA_PORT_HTTP", "1")] {
            assert!(!is_service_link(name, value), "{name}");
        }
    }

    #[test]
    fn an_unknown_variable_is_a_warning_naming_the_closest_key() {
        let note = unknown("TESSERA_TOKENS_ACCES_TTL", "5m");
        assert_eq!(note.level, tracing::Level::WARN);
        assert!(note.message.contains("did you mean TESSERA_TOKENS_ACCESS_TTL?"), "{}", note.message);
        assert_eq!(unknown("TESSERA_SERVICE_HOST", "10.0.0.1").level, tracing::Level::DEBUG);
    }
}
