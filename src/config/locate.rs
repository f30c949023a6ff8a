//! Where each key sits in the config file, so that every error can say
//! `tessera.toml:4:14` and name the key, and an unknown key can get a
//! "did you mean".
//!
//! serde reports a wrong type or an unknown field with a byte span but no
//! key path, and validation reports a key path but no span. The
//! [`SourceMap`] joins the two: it walks toml's spanned document
//! (`toml::de::DeTable`) once and records each key's path
//! (`tokens.access_ttl`, `clients[2].scopes`) with the spans of its name and
//! its value.

use super::ConfigError;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// One key of the file: its dotted path and where its name and value are.
struct Entry {
    path: String,
    name: Range<usize>,
    value: Range<usize>,
}

/// The keys of one config file, with their places.
pub(super) struct SourceMap {
    file: String,
    text: String,
    entries: Vec<Entry>,
}

impl SourceMap {
    /// Parse `text` (the file `file`); a syntax error keeps toml's own
    /// message, which already shows the line, the column and a caret.
    pub(super) fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let document = DeTable::parse(text).map_err(|error| ConfigError::Syntax { path: file.to_string(), message: error.to_string() })?;
        let mut entries = Vec::new();
        walk_table(document.get_ref(), "", &mut entries);
        Ok(Self { file: file.to_string(), text: text.to_string(), entries })
    }

    /// `file:line:column` of the value of `key`, when the file sets it.
    pub(super) fn place_of(&self, key: &str) -> Option<String> {
        let entry = self.entries.iter().find(|entry| entry.path == key)?;
        Some(self.place(entry.value.start))
    }

    /// The key whose name or value covers `span` (the innermost one).
    pub(super) fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        self.entries
            .iter()
            .filter(|entry| covers(&entry.name, span) || covers(&entry.value, span))
            .min_by_key(|entry| entry.value.len() + entry.name.len())
            .map(|entry| entry.path.as_str())
    }

    /// `file:line:column` of a byte offset (line and column from 1).
    pub(super) fn place(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |rest| rest.chars().count()) + 1;
        format!("{}:{line}:{column}", self.file)
    }

    /// Turn a serde error from reading this file into one that names the
    /// key and its place: an unknown key with a "did you mean", a wrong type
    /// with the key it was given for.
    pub(super) fn explain(&self, error: &toml::de::Error) -> ConfigError {
        let message = error.message().trim().to_string();
        let Some(span) = error.span() else {
            return ConfigError::Syntax { path: self.file.clone(), message };
        };
        let place = self.place(span.start);
        let key = self.key_at(&span).unwrap_or("?").to_string();
        let error = match unknown_field(&message) {
            Some((field, expected)) => {
                let section = key.rsplit_once('.').map(|(section, _)| section).unwrap_or_default();
                ConfigError::UnknownKey { key: key.clone(), hint: hint(field, &expected, section) }
            }
            None => ConfigError::WrongType { key, message: in_toml_terms(&message) },
        };
        ConfigError::At { place, error: Box::new(error) }
    }
}

/// serde's Rust type names in the words of a TOML file.
pub(super) fn in_toml_terms(message: &str) -> String {
    message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
        .replace("expected struct RawClient", "expected a table (a [[clients]] entry)")
}

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && inner.start < outer.end.max(outer.start + 1)
}

fn walk_table(table: &DeTable<'_>, prefix: &str, entries: &mut Vec<Entry>) {
    for (name, value) in table.iter() {
        let path = if prefix.is_empty() { name.get_ref().to_string() } else { format!("{prefix}.{}", name.get_ref()) };
        entries.push(Entry { path: path.clone(), name: name.span(), value: value.span() });
        walk_value(value.get_ref(), &path, entries);
    }
}

fn walk_value(value: &DeValue<'_>, path: &str, entries: &mut Vec<Entry>) {
    match value {
        DeValue::Table(table) => walk_table(table, path, entries),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{index}]");
                if let DeValue::Table(table) = item.get_ref() {
                    entries.push(Entry { path: item_path.clone(), name: item.span(), value: item.span() });
                    walk_table(table, &item_path, entries);
                }
            }
        }
        _ => {}
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"),
/// split into the field and the names it could have been.
pub(super) fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).collect();
    Some((field, expected))
}

/// "; did you mean `access_ttl`?" when a known name is close, then the
/// names the section takes.
fn hint(field: &str, expected: &[&str], section: &str) -> String {
    let mut hint = closest(field, expected.iter().copied()).map(|name| format!("; did you mean `{name}`?")).unwrap_or_default();
    if !expected.is_empty() {
        let table = if section.is_empty() { "the top level".to_string() } else { format!("[{}]", strip_index(section)) };
        hint.push_str(&format!(" ({table} takes: {})", expected.join(", ")));
    }
    hint
}

fn strip_index(section: &str) -> String {
    section.split('.').map(|part| part.split('[').next().unwrap_or(part)).collect::<Vec<_>>().join(".")
}

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a typo (at most a third of its length, and at most 3 edits).
pub(super) fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|candidate| (strsim::damerau_levenshtein(&name, &candidate.to_ascii_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "issuer = \"https://a.example\"\n\n[tokens]\naccess_ttl = \"5m\"\n\n[[clients]]\nid = \"web\"\n\n[[clients]]\nid = \"b\"\nscopes = [\"x\"]\n";

    #[test]
    fn keys_are_found_with_line_and_column() {
        let map = SourceMap::parse("t.toml", FILE).unwrap();
        assert_eq!(map.place_of("issuer").as_deref(), Some("t.toml:1:10"));
        assert_eq!(map.place_of("tokens.access_ttl").as_deref(), Some("t.toml:4:14"));
        assert_eq!(map.place_of("clients[1].scopes").as_deref(), Some("t.toml:11:10"));
        assert_eq!(map.place_of("clients[1].id").as_deref(), Some("t.toml:10:6"));
        assert_eq!(map.place_of("nothing"), None);
    }

    #[test]
    fn a_span_names_the_innermost_key() {
        let map = SourceMap::parse("t.toml", FILE).unwrap();
        let at = FILE.find("\"5m\"").unwrap();
        assert_eq!(map.key_at(&(at..at + 4)), Some("tokens.access_ttl"));
        let at = FILE.find("\"x\"").unwrap();
        assert_eq!(map.key_at(&(at..at + 3)), Some("clients[1].scopes"));
    }

    #[test]
    fn unknown_field_messages_are_split_and_typos_matched() {
        let (field, expected) = unknown_field("unknown field `access_tl`, expected one of `algorithm`, `access_ttl`").unwrap();
        assert_eq!((field, expected.as_slice()), ("access_tl", ["algorithm", "access_ttl"].as_slice()));
        assert_eq!(closest("access_tl", expected.into_iter()), Some("access_ttl"));
        assert_eq!(closest("scope", ["scopes", "id"].into_iter()), Some("scopes"));
        assert_eq!(closest("zzzzzz", ["scopes", "id"].into_iter()), None);
    }
}
