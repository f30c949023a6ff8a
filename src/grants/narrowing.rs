//! What a token minted from an existing session may carry: the session's
//! grant as far as the client still has it, narrowed by what the request
//! asks for. Pure functions; the grants that mint from a session
//! (refresh, code exchange) call them.
//!
//! 1. **The client's current rights** ([`still_allowed`]): scopes and
//!    audiences the operator has removed from the client since the session
//!    began are dropped from the new tokens — the refresh token too, so
//!    they do not come back. If none of the session's scopes remains the
//!    refresh is refused (`invalid_scope`); if no audience remains,
//!    `invalid_target`. (Hydra and Keycloak re-check client scopes on
//!    refresh the same way.)
//! 2. **The request** (RFC 6749 §6, RFC 8707 §2.2): `scope` may narrow the
//!    new access token's scope ([`narrow_scope`]); `resource` (and
//!    `audience`) may narrow its audience ([`narrow_audience`]). Neither
//!    can widen, and the refresh token keeps the whole grant.

use crate::authority::Refusal;
use crate::clients::Client;
use crate::tokens::access::Audience;

/// The session's scope and audience, as far as `client` still may have
/// them now.
pub fn still_allowed(scope: Option<&str>, aud: &Audience, client: &Client, issuer: &str) -> Result<(Option<String>, Audience), Refusal> {
    let granted = || scope.into_iter().flat_map(|s| s.split(' ')).filter(|token| !token.is_empty());
    let scope_allowed = |token: &&str| client.scopes.iter().any(|s| s == token);
    let scope = if granted().all(|token| scope_allowed(&token)) {
        // Usually all of it, as granted: one copy, no list.
        let tokens = granted().count();
        scope
            .filter(|_| tokens > 0)
            .map(|s| if s.split(' ').count() == tokens { s.to_string() } else { granted().collect::<Vec<_>>().join(" ") })
    } else {
        let kept: Vec<&str> = granted().filter(scope_allowed).collect();
        if kept.is_empty() {
            return Err(Refusal::InvalidScope(format!(
                "none of the session's scopes ({}) is allowed for client {:?} any more",
                granted().collect::<Vec<_>>().join(" "),
                client.id
            )));
        }
        Some(kept.join(" "))
    };
    let audiences: &[String] = match aud {
        Audience::One(one) => std::slice::from_ref(one),
        Audience::Many(many) => many,
    };
    let audience_allowed = |a: &&String| if client.audiences.is_empty() { a.as_str() == issuer } else { client.audiences.contains(a) };
    if audiences.iter().all(|a| audience_allowed(&a)) && !audiences.is_empty() {
        return Ok((scope, aud.clone()));
    }
    let kept: Vec<String> = audiences.iter().filter(audience_allowed).cloned().collect();
    if kept.is_empty() {
        return Err(Refusal::InvalidTarget(format!(
            "none of the session's audiences ({}) is allowed for client {:?} any more",
            audiences.join(", "),
            client.id
        )));
    }
    Ok((scope, Audience::from_list(kept)))
}

/// RFC 6749 §6: a narrower scope may be asked for the new access token; the
/// refresh token keeps the scope granted.
pub fn narrow_scope(requested: Option<&str>, granted: Option<&str>) -> Result<Option<String>, Refusal> {
    let Some(requested) = requested else { return Ok(granted.map(str::to_string)) };
    let granted: Vec<&str> = granted.map(|g| g.split(' ').collect()).unwrap_or_default();
    let mut narrowed: Vec<&str> = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        if !granted.contains(&token) {
            return Err(Refusal::InvalidScope(format!(
                "scope {:?} was not granted to this session; granted: {}",
                token.chars().take(64).collect::<String>(),
                if granted.is_empty() { "none".to_string() } else { granted.join(" ") }
            )));
        }
        if !narrowed.contains(&token) {
            narrowed.push(token);
        }
    }
    Ok((!narrowed.is_empty()).then(|| narrowed.join(" ")))
}

/// RFC 8707 §2.2: the resources asked for become the new access token's
/// audience, each one the session's; none asked keeps the session's.
pub fn narrow_audience(requested: &[&str], granted: &Audience) -> Result<Option<Audience>, Refusal> {
    if requested.is_empty() {
        return Ok(None);
    }
    let granted: Vec<String> = Vec::from(granted.clone());
    let mut narrowed: Vec<String> = Vec::new();
    for resource in requested {
        if !granted.iter().any(|g| g == resource) {
            return Err(Refusal::InvalidTarget(format!(
                "resource {:?} is not an audience of this session; its audiences: {}",
                resource.chars().take(128).collect::<String>(),
                granted.join(", ")
            )));
        }
        if !narrowed.iter().any(|n| n == resource) {
            narrowed.push(resource.to_string());
        }
    }
    Ok(Some(Audience::from_list(narrowed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(audiences: &[&str], scopes: &[&str]) -> Client {
        let mut client = Client::public("web", Duration::from_secs(600));
        client.audiences = audiences.iter().map(|a| a.to_string()).collect();
        client.scopes = scopes.iter().map(|s| s.to_string()).collect();
        client
    }

    fn many(list: &[&str]) -> Audience {
        Audience::Many(list.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn removed_scopes_and_audiences_are_dropped() {
        let now = client(&["orders"], &["read"]);
        let (scope, aud) = still_allowed(Some("read write"), &many(&["orders", "billing"]), &now, "https://iss").unwrap();
        assert_eq!(scope.as_deref(), Some("read"));
        assert_eq!(aud, Audience::One("orders".into()));
    }

    #[test]
    fn an_unchanged_client_keeps_the_grant_as_it_was() {
        let same = client(&["orders", "billing"], &["read", "write"]);
        let aud = many(&["orders", "billing"]);
        assert_eq!(still_allowed(Some("read write"), &aud, &same, "i").unwrap(), (Some("read write".into()), aud.clone()));
        assert_eq!(still_allowed(None, &Audience::One("orders".into()), &same, "i").unwrap().0, None, "no scope stays no scope");
        assert_eq!(still_allowed(Some(""), &aud, &same, "i").unwrap().0, None, "an empty scope is none");
        assert_eq!(still_allowed(Some(" read  write "), &aud, &same, "i").unwrap().0.as_deref(), Some("read write"));
        assert!(matches!(still_allowed(None, &many(&[]), &same, "i"), Err(Refusal::InvalidTarget(_))), "no audience left is refused");
    }

    #[test]
    fn nothing_left_is_refused() {
        let none = client(&["orders"], &[]);
        assert!(matches!(still_allowed(Some("read"), &Audience::One("orders".into()), &none, "i"), Err(Refusal::InvalidScope(_))));
        let elsewhere = client(&["billing"], &["read"]);
        assert!(matches!(still_allowed(Some("read"), &Audience::One("orders".into()), &elsewhere, "i"), Err(Refusal::InvalidTarget(_))));
    }

    #[test]
    fn a_client_without_audiences_keeps_the_issuer_as_audience() {
        let bare = client(&[], &[]);
        let issuer = Audience::One("https://iss".into());
        assert_eq!(still_allowed(None, &issuer, &bare, "https://iss").unwrap().1, issuer);
    }

    #[test]
    fn scope_may_narrow_but_never_widen() {
        assert_eq!(narrow_scope(None, Some("read write")).unwrap().as_deref(), Some("read write"));
        assert_eq!(narrow_scope(Some("read"), Some("read write")).unwrap().as_deref(), Some("read"));
        assert!(matches!(narrow_scope(Some("admin"), Some("read write")), Err(Refusal::InvalidScope(_))));
        assert!(matches!(narrow_scope(Some("read"), None), Err(Refusal::InvalidScope(_))));
    }

    #[test]
    fn resources_narrow_the_audience_but_never_widen_it() {
        let granted = many(&["orders", "billing"]);
        assert_eq!(narrow_audience(&[], &granted).unwrap(), None);
        assert_eq!(narrow_audience(&["orders", "orders"], &granted).unwrap(), Some(Audience::One("orders".into())));
        assert_eq!(narrow_audience(&["billing", "orders"], &granted).unwrap(), Some(many(&["billing", "orders"])));
        assert!(matches!(narrow_audience(&["https://evil"], &granted), Err(Refusal::InvalidTarget(_))));
    }
}
