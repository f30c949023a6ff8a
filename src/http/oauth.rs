//! What every OAuth endpoint shares: the form (RFC 6749 §3.2), token
//! responses that are never cached (§5.1), and how a session's tokens reach
//! a client — in the body, or with the refresh token in a cookie.

use super::AppState;
use super::error::OAuthError;
use crate::clients::Client;
use crate::tokens::issue::IssuedSession;
use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, HashSet};

/// A parsed `application/x-www-form-urlencoded` body in which every
/// parameter appears at most once (RFC 6749 §3.2) — counting copies sent
/// empty, so `client_id=&client_id=svc` is refused, not read as `svc` —
/// except those in [`REPEATABLE`].
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>, Vec<(String, String)>);

/// Parameters a request may repeat: RFC 8707 `resource` (one per resource).
pub const REPEATABLE: &[&str] = &["resource"];

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        let mut seen = HashSet::new();
        let mut repeatable = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            let repeats = REPEATABLE.contains(&name.as_ref());
            if !repeats && !seen.insert(name.clone()) {
                return Err(OAuthError::invalid_request(format!("parameter {:?} is repeated", name.chars().take(64).collect::<String>())));
            }
            // RFC 6749 §3.2: parameters sent without a value are treated
            // as omitted.
            if value.is_empty() {
                continue;
            }
            if repeats {
                repeatable.push((name.into_owned(), value.into_owned()));
            } else {
                map.insert(name.into_owned(), value.into_owned());
            }
        }
        Ok(Self(map, repeatable))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every value of a [`REPEATABLE`] parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.1.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// A session's tokens as the client receives them: for a client with
/// `refresh_cookie`, the refresh token goes into the cookie and the body
/// carries only the access token.
pub fn deliver(state: &AppState, client: &Client, mut issued: IssuedSession) -> Response {
    let cookie = if client.refresh_cookie {
        issued.refresh_token.take().map(|token| state.cookie.set(&client.id, &token, issued.refresh_expires_in))
    } else {
        None
    };
    let mut response = no_store(Json(issued));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// RFC 6749 §5.1: token responses must not be cached.
pub fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(Form::parse(b"grant_type=a&grant_type=b").is_err());
        let form = Form::parse(b"grant_type=client_credentials&scope=&x=1").unwrap();
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn a_parameter_repeated_with_an_empty_copy_is_refused() {
        for body in ["client_id=&client_id=svc", "scope=&scope=x", "scope=x&scope=", "scope&scope=x", "scope=&scope="] {
            let error = Form::parse(body.as_bytes()).unwrap_err();
            assert_eq!(error.error, "invalid_request", "{body}");
            assert!(error.description.contains("repeated"), "{body}: {}", error.description);
        }
    }

    #[test]
    fn resource_may_repeat_and_keeps_its_order() {
        let form = Form::parse(b"grant_type=client_credentials&resource=https%3A%2F%2Fa&resource=b&resource=").unwrap();
        assert_eq!(form.all("resource"), ["https://a", "b"]);
        assert_eq!(form.get("resource"), None);
        assert!(form.all("grant_type").is_empty(), "only repeatable parameters are listed");
        assert!(Form::parse(b"scope=a&scope=b").is_err(), "other parameters still may not repeat");
    }
}
