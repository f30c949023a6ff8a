//! What every OAuth endpoint shares: the form (RFC 6749 §3.2), token
//! responses that are never cached (§5.1), and how a session's tokens reach
//! a client — in the body, or with the refresh token in a cookie.

use super::AppState;
use super::error::OAuthError;
use crate::clients::Client;
use crate::tokens::issue::IssuedSession;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;

/// A parsed `application/x-www-form-urlencoded` body in which every
/// parameter appears at most once (RFC 6749 §3.2) — counting copies sent
/// empty, so `client_id=&client_id=svc` is refused, not read as `svc` —
/// except those in [`REPEATABLE`]. Parameters sent empty are dropped
/// (§3.2: treated as omitted).
///
/// A form has a handful of parameters, so they are kept in order in one
/// vector and found by a scan. The body is copied once, as text; names and
/// values without `%` or `+` (tokens, ids, grant types) are slices of it,
/// and only the others are decoded into strings of their own. The
/// separators are found with `memchr`: a form is mostly one long token.
#[derive(Debug)]
pub struct Form {
    /// The body, when it is UTF-8 (a form almost always is: it is ASCII).
    text: String,
    /// Each parameter's name and value, in the order sent.
    params: Vec<(Part, Part)>,
    /// The names and values that had to be decoded.
    decoded: Vec<String>,
}

/// A name or a value: a slice of the body's text, or one decoded.
#[derive(Debug)]
enum Part {
    Raw(std::ops::Range<usize>),
    Decoded(usize),
}

/// Parameters a request may repeat: RFC 8707 `resource` (one per resource).
pub const REPEATABLE: &[&str] = &["resource"];

/// Beyond this many parameters, repeats are found with a hash set rather
/// than by comparing each name with those before it.
const SCAN_LIMIT: usize = 16;

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        // A body that is not UTF-8 has every part decoded (lossily), as
        // `form_urlencoded` does.
        let text = std::str::from_utf8(body).ok();
        let mut form = Self { text: text.unwrap_or_default().to_owned(), params: Vec::with_capacity(4), decoded: Vec::new() };
        let mut start = 0;
        while start < body.len() {
            let end = memchr::memchr(b'&', &body[start..]).map_or(body.len(), |at| start + at);
            if end > start {
                let pair = start..end;
                let (name, value) = match memchr::memchr(b'=', &body[pair.clone()]) {
                    Some(at) => (start..start + at, start + at + 1..end),
                    None => (pair, end..end),
                };
                let name = form.part(body, name, text.is_some());
                let value = form.part(body, value, text.is_some());
                form.params.push((name, value));
            }
            start = end + 1;
        }
        // Repeats count copies sent empty too; only then are those dropped.
        if let Some(repeated) = first_repeat(form.names()) {
            return Err(OAuthError::invalid_request(format!("parameter {:?} is repeated", repeated.chars().take(64).collect::<String>())));
        }
        // RFC 6749 §3.2: parameters sent without a value are treated as omitted.
        let Self { text, params, decoded } = &mut form;
        params.retain(|(_, value)| !part_text(text, decoded, value).is_empty());
        Ok(form)
    }

    /// `body[range]` as a part: a slice of the text when it needs no decoding.
    fn part(&mut self, body: &[u8], range: std::ops::Range<usize>, utf8: bool) -> Part {
        let raw = &body[range.clone()];
        if utf8 && memchr::memchr2(b'%', b'+', raw).is_none() {
            return Part::Raw(range);
        }
        self.decoded.push(decode(raw));
        Part::Decoded(self.decoded.len() - 1)
    }

    /// Every parameter's name and value, in order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(name, value)| (part_text(&self.text, &self.decoded, name), part_text(&self.text, &self.decoded, value)))
    }

    fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.params.iter().map(|(name, _)| part_text(&self.text, &self.decoded, name))
    }

    /// The value of a parameter that may appear once (a [`REPEATABLE`] one
    /// is read with [`Form::all`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        if REPEATABLE.contains(&name) {
            return None;
        }
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every value of a [`REPEATABLE`] parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        if !REPEATABLE.contains(&name) {
            return Vec::new();
        }
        self.pairs().filter(|(n, _)| *n == name).map(|(_, v)| v).collect()
    }
}

/// The text of `part`. A raw part's range starts and ends at the body's
/// ends or next to an ASCII `&` or `=`, so it lies on character boundaries.
fn part_text<'a>(text: &'a str, decoded: &'a [String], part: &Part) -> &'a str {
    match part {
        Part::Raw(range) => &text[range.clone()],
        Part::Decoded(index) => &decoded[*index],
    }
}

/// The first name that occurs twice, other than a [`REPEATABLE`] one.
fn first_repeat<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Option<&'a str> {
    let count = names.len();
    let mut names = names.filter(|name| !REPEATABLE.contains(name));
    if count <= SCAN_LIMIT {
        let mut before: Vec<&str> = Vec::with_capacity(count);
        for name in names {
            if before.contains(&name) {
                return Some(name);
            }
            before.push(name);
        }
        return None;
    }
    let mut seen = HashSet::with_capacity(count);
    names.find(|name| !seen.insert(*name))
}

/// One name or value: `+` is a space, `%XX` a byte (a `%` not followed by
/// two hex digits stays as it is), and the bytes are read as UTF-8
/// (invalid sequences replaced), as `form_urlencoded` does.
fn decode(raw: &[u8]) -> String {
    if memchr::memchr2(b'%', b'+', raw).is_none() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    match String::from_utf8(crate::urlencoded::unescape(raw).0) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
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
    let mut response = no_store(json_bytes(super::token_response::session(&issued)));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// JSON already written, as an `application/json` body.
pub fn json_bytes(body: impl Into<bytes::Bytes>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
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
    fn names_and_values_are_decoded_like_form_urlencoded() {
        let form = Form::parse(b"a%20b=c+d&scope=x%2By&plain=rt1.abc-_.Z&bad=%FF&&=lone&flag").unwrap();
        assert_eq!(form.get("a b"), Some("c d"));
        assert_eq!(form.get("scope"), Some("x+y"));
        assert_eq!(form.get("plain"), Some("rt1.abc-_.Z"));
        assert_eq!(form.get("bad"), Some("\u{fffd}"));
        assert_eq!(form.get("flag"), None, "a name without a value is omitted");
        assert_eq!(form.get(""), Some("lone"));
        // A value with a raw `=` and an escape keeps what follows the `=`.
        let form = Form::parse(b"redirect_uri=https://app/cb?a=b%20c&state=x=y+z").unwrap();
        assert_eq!(form.get("redirect_uri"), Some("https://app/cb?a=b c"));
        assert_eq!(form.get("state"), Some("x=y z"));
        for body in ["a%3D=1&a==2", "x=1&x%3D=2&x=3"] {
            let reference: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let names: Vec<&str> = reference.iter().map(|(n, _)| n.as_str()).collect();
            let repeated = (0..names.len()).any(|i| names[..i].contains(&names[i]));
            assert_eq!(Form::parse(body.as_bytes()).is_err(), repeated, "{body}");
        }
    }

    /// A body that is not UTF-8 has each part read lossily, the parts
    /// that need no decoding included, as `form_urlencoded` reads them.
    #[test]
    fn a_body_that_is_not_utf8_reads_as_form_urlencoded_reads_it() {
        for body in [&b"a=\xff&b=c%20d&t=rt1.x"[..], b"\xc3=1&ok=\xe9t\xe9", b"x=%C3%A9&y=\xf0\x9f"] {
            let form = Form::parse(body).unwrap();
            for (name, value) in form_urlencoded::parse(body) {
                assert_eq!(form.get(&name), Some(value.as_ref()), "{name:?} in {body:?}");
            }
        }
    }

    #[test]
    fn a_repeat_among_many_parameters_is_still_found() {
        let mut body: Vec<String> = (0..200).map(|i| format!("p{i}=v")).collect();
        assert!(Form::parse(body.join("&").as_bytes()).is_ok());
        body.push("p150=again".into());
        assert!(Form::parse(body.join("&").as_bytes()).is_err());
    }

    proptest::proptest! {
        /// Any body reads as `form_urlencoded` reads it: refused exactly
        /// when a non-repeatable name occurs twice, else the same values.
        #[test]
        fn any_body_reads_as_form_urlencoded_reads_it(body in "([ab=&+]|%[2Fg]{0,2}|%C3|%A9|\\PC){0,24}") {
            let reference: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let names: Vec<&str> = reference.iter().map(|(n, _)| n.as_str()).collect();
            let repeated = (0..names.len()).any(|i| !REPEATABLE.contains(&names[i]) && names[..i].contains(&names[i]));
            match Form::parse(body.as_bytes()) {
                Err(_) => proptest::prop_assert!(repeated, "{body:?} refused without a repeat"),
                Ok(form) => {
                    proptest::prop_assert!(!repeated, "{body:?} accepted with a repeat");
                    for (name, value) in &reference {
                        let expected = (!value.is_empty()).then_some(value.as_str());
                        proptest::prop_assert_eq!(form.get(name), expected, "{:?} in {:?}", name, body);
                    }
                    proptest::prop_assert_eq!(form.params.len(), reference.iter().filter(|(_, v)| !v.is_empty()).count());
                }
            }
        }
    }

    #[test]
    fn resource_may_repeat_and_keeps_its_order() {
        let form = Form::parse(b"grant_type=client_credentials&resource=https%3A%2F%2Fa&resource=b&resource=").unwrap();
        assert_eq!(form.all("resource"), ["https://a", "b"]);
        assert_eq!(form.get("resource"), None);
        assert!(form.all("grant_type").is_empty(), "only repeatable parameters are listed");
        assert!(form.all("scope").is_empty());
        assert!(Form::parse(b"scope=a&scope=b").is_err(), "other parameters still may not repeat");
    }
}
