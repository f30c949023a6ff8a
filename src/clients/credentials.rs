//! Client credentials as a request presents them: HTTP Basic
//! (`client_secret_basic`, RFC 6749 §2.3.1, form-urlencoded before base64),
//! `client_secret_post`, or a public client's bare `client_id` — and the
//! refusal of a request that uses two methods at once.
//!
//! The Basic id and secret are percent-decoded (`+` is a space, `%XX` a
//! byte) and nothing else: they are not parsed as a form, so a `&` or `=`
//! in either is part of it, and a `%` not followed by two hex digits is
//! refused rather than guessed at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How a request presented client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic` (client_secret_basic).
    Basic {
        id: String,
        secret: String,
    },
    /// `client_id` and `client_secret` in the form body (client_secret_post).
    Post {
        id: String,
        secret: String,
    },
    /// Only `client_id` in the body: a public client.
    PublicId(String),
    None,
}

/// Why client authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    #[error("client authentication is required")]
    Missing,
    #[error("client authentication failed")]
    Failed,
    #[error("the request uses more than one client authentication method")]
    MultipleMethods,
    #[error("the Authorization header is not valid HTTP Basic credentials")]
    MalformedBasic,
    #[error("client_id in the body does not match the authenticated client")]
    Mismatch,
    #[error("the request has more than one Authorization header")]
    RepeatedAuthorization,
    #[error("too many failed authentication attempts; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
}

impl Credentials {
    /// The client id presented, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Credentials::Basic { id, .. } | Credentials::Post { id, .. } | Credentials::PublicId(id) => Some(id),
            Credentials::None => None,
        }
    }

    /// Gather credentials from the `Authorization` header and, for the
    /// token-family endpoints, the form's `client_id`/`client_secret`.
    pub fn from_request(authorization: Option<&str>, form_id: Option<&str>, form_secret: Option<&str>) -> Result<Self, ClientAuthError> {
        let basic = match authorization {
            Some(value) => Some(parse_basic(value)?),
            None => None,
        };
        match (basic, form_id, form_secret) {
            (Some(_), _, Some(_)) => Err(ClientAuthError::MultipleMethods),
            (Some((id, secret)), Some(body_id), None) => {
                if body_id == id {
                    Ok(Credentials::Basic { id, secret })
                } else {
                    Err(ClientAuthError::Mismatch)
                }
            }
            (Some((id, secret)), None, None) => Ok(Credentials::Basic { id, secret }),
            (None, Some(id), Some(secret)) => Ok(Credentials::Post { id: id.to_string(), secret: secret.to_string() }),
            (None, Some(id), None) => Ok(Credentials::PublicId(id.to_string())),
            (None, None, Some(_)) => Err(ClientAuthError::Failed),
            (None, None, None) => Ok(Credentials::None),
        }
    }
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded, joined by `:`,
/// then base64-encoded. The decoded header becomes the id, so the common
/// case — nothing escaped — costs two strings, not four.
fn parse_basic(header: &str) -> Result<(String, String), ClientAuthError> {
    let (scheme, encoded) = header.trim().split_once(' ').ok_or(ClientAuthError::MalformedBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ClientAuthError::MalformedBasic);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ClientAuthError::MalformedBasic)?;
    let mut id = String::from_utf8(decoded).map_err(|_| ClientAuthError::MalformedBasic)?;
    let colon = id.find(':').ok_or(ClientAuthError::MalformedBasic)?;
    let secret = form_decode(&id[colon + 1..])?;
    id.truncate(colon);
    let id = if needs_decoding(&id) { form_decode(&id)? } else { id };
    Ok((id, secret))
}

fn needs_decoding(text: &str) -> bool {
    text.bytes().any(|byte| byte == b'%' || byte == b'+')
}

/// Undo RFC 6749 Appendix B's `application/x-www-form-urlencoded`
/// encoding of one value: `+` is a space, `%XX` is the byte XX, every
/// other character stands for itself; a malformed escape is refused and
/// the bytes must be UTF-8.
fn form_decode(text: &str) -> Result<String, ClientAuthError> {
    if !needs_decoding(text) {
        return Ok(text.to_owned());
    }
    match crate::urlencoded::unescape(text.as_bytes()) {
        (bytes, true) => String::from_utf8(bytes).map_err(|_| ClientAuthError::MalformedBasic),
        (_, false) => Err(ClientAuthError::MalformedBasic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> Result<Credentials, ClientAuthError> {
        Credentials::from_request(Some(&format!("Basic {}", STANDARD.encode(user_pass))), None, None)
    }

    fn decoded(id: &str, secret: &str) -> Result<Credentials, ClientAuthError> {
        Ok(Credentials::Basic { id: id.into(), secret: secret.into() })
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(basic("my%3Aclient:p%40ss+word"), decoded("my:client", "p@ss word"));
        assert_eq!(basic("caf%C3%A9:%2b%2B"), decoded("café", "++"), "either case of hex digits");
        assert_eq!(basic("a+b:plain"), decoded("a b", "plain"), "the id alone escaped");
        assert_eq!(basic("plain:"), decoded("plain", ""), "an empty secret");
    }

    #[test]
    fn basic_credentials_are_not_cut_at_ampersands_or_equals_signs() {
        assert_eq!(basic("svc:secret&junk=1"), decoded("svc", "secret&junk=1"));
        assert_eq!(basic("svc&whatever:secret"), decoded("svc&whatever", "secret"));
        assert_eq!(basic("svc:a=b"), decoded("svc", "a=b"));
        assert_eq!(basic("svc:pass:word"), decoded("svc", "pass:word"), "only the first colon separates");
    }

    #[test]
    fn broken_percent_escapes_and_non_utf8_are_refused() {
        for broken in ["svc:100%", "svc:%4", "svc:%zz", "svc:%+1", "%:x", "svc:%ff", "%ff:x", "no-colon"] {
            assert_eq!(basic(broken), Err(ClientAuthError::MalformedBasic), "{broken}");
        }
    }

    #[test]
    fn the_presented_client_id_is_known_for_every_method() {
        assert_eq!(basic("svc:x").unwrap().client_id(), Some("svc"));
        assert_eq!(Credentials::from_request(None, Some("web"), None).unwrap().client_id(), Some("web"));
        assert_eq!(Credentials::from_request(None, Some("svc"), Some("x")).unwrap().client_id(), Some("svc"));
        assert_eq!(Credentials::None.client_id(), None);
    }

    #[test]
    fn two_authentication_methods_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        assert_eq!(Credentials::from_request(Some(&header), Some("a"), Some("b")), Err(ClientAuthError::MultipleMethods));
        assert_eq!(Credentials::from_request(Some("Bearer x"), None, None), Err(ClientAuthError::MalformedBasic));
    }
}
