//! Parsing what a caller asks for — subject, audience, scope, custom
//! claims — against what the client may have. Pure functions: each turns
//! raw input into a valid value or a [`Refusal`] naming the field.

use crate::authority::Refusal;
use crate::clients::{Client, valid_scope_token};
use crate::tokens::access::RESERVED_CLAIMS;
use serde::Deserialize;

/// Largest accepted custom-claims object, serialized.
pub const MAX_CUSTOM_CLAIMS_BYTES: usize = 4096;
/// Longest accepted `sub`, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 255;

/// `aud` as a caller may send it: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RequestedAudience {
    One(String),
    Many(Vec<String>),
}

/// A subject identifier: printable text of at most 255 bytes that is not
/// blank, with no control characters, no bidirectional controls (which make
/// a log line or an admin screen show another name than the one stored)
/// and no invisible characters (zero-width, word joiner, byte-order mark,
/// line and paragraph separators), so two subjects that look alike are
/// the same subject.
pub fn subject(sub: &str) -> Result<String, Refusal> {
    if sub.is_empty() {
        return Err(Refusal::field("sub", "must not be empty"));
    }
    if sub.len() > MAX_SUBJECT_BYTES {
        return Err(Refusal::field("sub", format!("is {} bytes long; at most {MAX_SUBJECT_BYTES} are allowed", sub.len())));
    }
    if let Some(bad) = sub.chars().find(|c| invisible_or_control(*c)) {
        return Err(Refusal::field(
            "sub",
            format!("must be printable text: it contains U+{:04X}, a control, bidirectional or invisible character", u32::from(bad)),
        ));
    }
    if sub.chars().all(char::is_whitespace) {
        return Err(Refusal::field("sub", "must not be blank"));
    }
    Ok(sub.to_string())
}

/// Characters a subject must not contain.
fn invisible_or_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}'      // bidirectional marks
            | '\u{202A}'..='\u{202E}'                  // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}'                  // bidirectional isolates
            | '\u{200B}'..='\u{200D}'                  // zero-width space, non-joiner, joiner
            | '\u{2060}' | '\u{FEFF}'                  // word joiner, byte-order mark
            | '\u{2028}' | '\u{2029}'                  // line and paragraph separators
        )
}

/// The audiences asked for by `aud` and RFC 8707 `resource` together (a
/// client may use either or both); `None` when neither was given.
pub fn requested_audience(aud: Option<RequestedAudience>, resources: &[&str]) -> Option<RequestedAudience> {
    if resources.is_empty() {
        return aud;
    }
    let mut all = match aud {
        None => Vec::new(),
        Some(RequestedAudience::One(one)) => vec![one],
        Some(RequestedAudience::Many(many)) => many,
    };
    all.extend(resources.iter().map(|r| r.to_string()));
    Some(RequestedAudience::Many(all))
}

/// The audiences a client may have: its configured ones, or the issuer
/// itself when it has none (RFC 9068 requires an `aud`).
pub fn allowed_audiences(client: &Client, issuer: &str) -> Vec<String> {
    if client.audiences.is_empty() { vec![issuer.to_string()] } else { client.audiences.clone() }
}

/// The audiences for a token: what was asked, each allowed for the client;
/// by default every audience the client has, or the issuer itself when it
/// has none (RFC 9068 requires an `aud`).
pub fn audience(requested: Option<RequestedAudience>, client: &Client, issuer: &str) -> Result<Vec<String>, Refusal> {
    let asked = match requested {
        None => {
            return Ok(if client.audiences.is_empty() { vec![issuer.to_string()] } else { client.audiences.clone() });
        }
        Some(RequestedAudience::One(one)) => vec![one],
        Some(RequestedAudience::Many(many)) => many,
    };
    if asked.is_empty() {
        return Err(Refusal::InvalidTarget("aud must name at least one audience".into()));
    }
    let mut out: Vec<String> = Vec::with_capacity(asked.len());
    for audience in asked {
        if !client.audiences.contains(&audience) {
            return Err(Refusal::InvalidTarget(format!(
                "client {:?} may not request audience {:?}; allowed: {}",
                client.id,
                truncate(&audience),
                list_or_none(&client.audiences)
            )));
        }
        if !out.contains(&audience) {
            out.push(audience);
        }
    }
    Ok(out)
}

/// The scope for a token (RFC 6749 §3.3): space-delimited tokens, each
/// allowed for the client; by default all the client's scopes. `None` means
/// no scope at all.
pub fn scope(requested: Option<&str>, client: &Client) -> Result<Option<String>, Refusal> {
    let Some(requested) = requested else {
        return Ok((!client.scopes.is_empty()).then(|| client.scopes.join(" ")));
    };
    let mut granted: Vec<&str> = Vec::new();
    for token in requested.split(' ') {
        if token.is_empty() {
            continue;
        }
        if !valid_scope_token(token) {
            return Err(Refusal::InvalidScope(format!("{:?} is not a valid scope token", truncate(token))));
        }
        if !client.scopes.iter().any(|s| s == token) {
            return Err(Refusal::InvalidScope(format!(
                "client {:?} may not request scope {token:?}; allowed: {}",
                client.id,
                list_or_none(&client.scopes)
            )));
        }
        if !granted.contains(&token) {
            granted.push(token);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// Custom claims: a JSON object of at most 4 KB that uses no registered or
/// reserved claim name.
pub fn custom_claims(claims: Option<serde_json::Value>) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    let map = match claims {
        None | Some(serde_json::Value::Null) => return Ok(Default::default()),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(Refusal::field("claims", "must be a JSON object")),
    };
    for name in map.keys() {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(Refusal::field(
                format!("claims.{name}"),
                format!("{name:?} is a registered or reserved claim name and cannot be set as a custom claim"),
            ));
        }
        if name.is_empty() {
            return Err(Refusal::field("claims", "claim names must not be empty"));
        }
    }
    let size = serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_CUSTOM_CLAIMS_BYTES {
        return Err(Refusal::field("claims", format!("are {size} bytes serialized; at most {MAX_CUSTOM_CLAIMS_BYTES} are allowed")));
    }
    Ok(map)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// Echo at most 64 characters of caller input in an error message.
fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(audiences: &[&str], scopes: &[&str]) -> Client {
        let toml = format!("[[clients]]\nid = \"web\"\npublic = true\naudiences = {audiences:?}\nscopes = {scopes:?}\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        crate::config::Config::load_with_env(Some(&path), &[]).unwrap().clients.get("web").unwrap().clone()
    }

    #[test]
    fn subject_limits() {
        assert!(subject("alice").is_ok());
        assert!(matches!(subject(""), Err(Refusal::InvalidField { field, .. }) if field == "sub"));
        assert!(subject(&"x".repeat(256)).is_err());
        assert!(subject("a\nb").is_err());
    }

    #[test]
    fn subjects_are_printable_text_that_shows_what_it_is() {
        for fine in ["alice", "Zoë Ångström", "user:42", "a/b", "名前", "a b"] {
            assert_eq!(subject(fine).unwrap(), fine);
        }
        for (bad, why) in [
            ("  ", "blank"),
            ("\u{3000}", "blank (ideographic space)"),
            ("x\u{202E}y", "right-to-left override"),
            ("\u{2066}admin\u{2069}", "bidirectional isolate"),
            ("x\u{200F}", "right-to-left mark"),
            ("ad\u{200B}min", "zero-width space"),
            ("ad\u{200D}min", "zero-width joiner"),
            ("\u{FEFF}alice", "byte-order mark"),
            ("a\u{2060}b", "word joiner"),
            ("a\u{2028}b", "line separator"),
            ("a\u{7f}b", "delete"),
            ("a\u{85}b", "next line (C1 control)"),
        ] {
            let refused = subject(bad);
            assert!(matches!(refused, Err(Refusal::InvalidField { ref field, .. }) if field == "sub"), "{why}: {refused:?}");
        }
        let message = subject("x\u{202E}y").unwrap_err().to_string();
        assert!(message.contains("U+202E"), "the refusal names the character: {message}");
    }

    #[test]
    fn resource_and_aud_together_ask_for_both() {
        assert!(requested_audience(None, &[]).is_none());
        let both = requested_audience(Some(RequestedAudience::One("a".into())), &["b"]);
        assert!(matches!(both, Some(RequestedAudience::Many(ref list)) if list == &["a", "b"]), "{both:?}");
        let c = client(&["orders"], &[]);
        assert!(matches!(audience(requested_audience(None, &["https://evil"]), &c, "i"), Err(Refusal::InvalidTarget(_))));
    }

    #[test]
    fn audience_defaults_and_limits() {
        let c = client(&["orders", "billing"], &[]);
        assert_eq!(audience(None, &c, "https://iss").unwrap(), ["orders", "billing"]);
        assert_eq!(audience(Some(RequestedAudience::One("orders".into())), &c, "https://iss").unwrap(), ["orders"]);
        assert!(matches!(audience(Some(RequestedAudience::One("admin".into())), &c, "i"), Err(Refusal::InvalidTarget(_))));
        assert!(audience(Some(RequestedAudience::Many(vec![])), &c, "i").is_err());
        let none = client(&[], &[]);
        assert_eq!(audience(None, &none, "https://iss").unwrap(), ["https://iss"]);
    }

    #[test]
    fn scope_narrows_never_widens() {
        let c = client(&[], &["read", "write"]);
        assert_eq!(scope(None, &c).unwrap().as_deref(), Some("read write"));
        assert_eq!(scope(Some("read read"), &c).unwrap().as_deref(), Some("read"));
        assert!(matches!(scope(Some("read admin"), &c), Err(Refusal::InvalidScope(_))));
        assert!(scope(Some("bad\"scope"), &c).is_err());
        assert_eq!(scope(Some(""), &c).unwrap(), None);
    }

    #[test]
    fn custom_claims_refuse_reserved_names_and_size() {
        assert!(custom_claims(Some(serde_json::json!({"tenant": "acme"}))).is_ok());
        let err = custom_claims(Some(serde_json::json!({"sub": "root"}))).unwrap_err();
        assert!(matches!(err, Refusal::InvalidField { ref field, .. } if field == "claims.sub"), "{err:?}");
        let big = serde_json::json!({"blob": "x".repeat(5000)});
        assert!(custom_claims(Some(big)).is_err());
        assert!(custom_claims(Some(serde_json::json!([1, 2]))).is_err());
    }
}
