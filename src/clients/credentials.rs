//! Client credentials as a request presents them: HTTP Basic
//! (`client_secret_basic`, RFC 6749 §2.3.1, form-urlencoded before base64),
//! `client_secret_post`, or a public client's bare `client_id` — and the
//! refusal of a request that uses two methods at once.

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
}

impl Credentials {
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
/// then base64-encoded.
fn parse_basic(header: &str) -> Result<(String, String), ClientAuthError> {
    let (scheme, encoded) = header.trim().split_once(' ').ok_or(ClientAuthError::MalformedBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ClientAuthError::MalformedBasic);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ClientAuthError::MalformedBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| ClientAuthError::MalformedBasic)?;
    let (id, secret) = text.split_once(':').ok_or(ClientAuthError::MalformedBasic)?;
    let unescape =
        |s: &str| -> String { form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default() };
    Ok((unescape(id), unescape(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:p%40ss+word"));
        let creds = Credentials::from_request(Some(&header), None, None).unwrap();
        assert_eq!(creds, Credentials::Basic { id: "my:client".into(), secret: "p@ss word".into() });
    }

    #[test]
    fn two_authentication_methods_are_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        assert_eq!(Credentials::from_request(Some(&header), Some("a"), Some("b")), Err(ClientAuthError::MultipleMethods));
        assert_eq!(Credentials::from_request(Some("Bearer x"), None, None), Err(ClientAuthError::MalformedBasic));
    }
}
