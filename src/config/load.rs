//! Reading the configuration: the file (kept with its spans, so errors can
//! say where), then the `TESSERA_*` variables, then validation; and what
//! loading noticed without refusing ([`Note`]), handed back rather than
//! logged because logging is set up only once its format is known.

use super::raw::RawConfig;
use super::{Config, ConfigError, env, locate};
use std::path::Path;

/// Something loading the configuration noticed that does not stop it: an
/// ignored variable, a risky but allowed value. Logged once logging is set
/// up (and again on each reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: tracing::Level,
    pub message: String,
}

impl Note {
    pub(crate) fn warn(message: impl Into<String>) -> Self {
        Self { level: tracing::Level::WARN, message: message.into() }
    }

    pub(crate) fn debug(message: impl Into<String>) -> Self {
        Self { level: tracing::Level::DEBUG, message: message.into() }
    }

    /// Log the note at its level.
    pub fn log(&self) {
        if self.level == tracing::Level::WARN {
            tracing::warn!("{}", self.message);
        } else {
            tracing::debug!("{}", self.message);
        }
    }
}

/// A loaded configuration and what loading it noticed.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub notes: Vec<Note>,
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, value: impl std::fmt::Debug, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), value: format!("{value:?}"), allowed: allowed.into() }
    }
}

impl Config {
    /// Load from an optional file plus `env`, returning what loading
    /// noticed instead of logging it (logging may not be set up yet).
    ///
    /// Errors name the key and, for a value from the file, its line and
    /// column; for a value from the environment, the variable.
    pub fn read(file: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let mut notes = Vec::new();
        let (mut table, map) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
                let map = locate::SourceMap::parse(&path.display().to_string(), &text)?;
                // The file alone first: its errors carry spans.
                toml::from_str::<RawConfig>(&text).map_err(|error| map.explain(&error))?;
                let table = text
                    .parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax { path: path.display().to_string(), message: e.to_string() })?;
                (table, Some(map))
            }
            None => (toml::Table::new(), None),
        };
        let applied = env::apply_env(&mut table, env, &mut notes)?;
        let raw: RawConfig = table.try_into().map_err(|error: toml::de::Error| {
            env::blame(env, &applied)
                .unwrap_or_else(|| ConfigError::Syntax { path: "the environment".into(), message: error.message().to_string() })
        })?;
        let config = raw.validate(&mut notes).map_err(|error| match error {
            ConfigError::Invalid { ref key, .. } => {
                let from_env = applied.iter().find(|(_, applied_key)| key == applied_key || key.starts_with(&format!("{applied_key}[")));
                match (from_env, map.as_ref().and_then(|map| map.place_of(key))) {
                    (Some((name, _)), _) => ConfigError::At { place: name.clone(), error: Box::new(error) },
                    (None, Some(place)) => ConfigError::At { place, error: Box::new(error) },
                    (None, None) => error,
                }
            }
            other => other,
        })?;
        Ok(Loaded { config, notes })
    }
}
