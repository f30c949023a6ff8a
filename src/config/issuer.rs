//! Whether the issuer fits where tessera listens: a listener other clients
//! can reach needs the URL they reach it at, and a plain-http issuer off
//! this host is a warning.

use super::{ConfigError, Note};
use std::net::SocketAddr;

/// A server reachable beyond this host must know the URL its clients use:
/// `http://0.0.0.0:8080` would end up in every token's `iss`. A plain-http
/// issuer off loopback is allowed (a private network of services may use
/// one) but warned about: the `Secure` refresh cookie
/// and RFC 8414 both expect https.
pub(super) fn check_issuer(issuer: Option<&str>, listen: SocketAddr, notes: &mut Vec<Note>) -> Result<(), ConfigError> {
    match issuer {
        None if !listen.ip().is_loopback() => Err(ConfigError::invalid(
            "issuer",
            "<unset>",
            format!(
                "required when listen ({listen}) is not a loopback address: set the URL clients reach tessera at, like \"https://auth.example.com\" (TESSERA_ISSUER)"
            ),
        )),
        Some(url) if url.starts_with("http://") && !is_loopback_host(url) => {
            notes.push(Note::warn(format!(
                "issuer {url} is plain http on a non-loopback host: put TLS in front and use an https issuer; browsers will not send the Secure refresh cookie over http"
            )));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether an `http://` URL's host is `localhost` or a loopback address.
fn is_loopback_host(url: &str) -> bool {
    let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_needs_an_issuer_and_plain_http_off_loopback_is_warned() {
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let error = check_issuer(None, wildcard, &mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("issuer") && error.contains("0.0.0.0:8080") && error.contains("loopback"), "{error}");
        let mut notes = Vec::new();
        check_issuer(Some("https://auth.example.com"), wildcard, &mut notes).unwrap();
        check_issuer(Some("http://localhost:8080"), wildcard, &mut notes).unwrap();
        check_issuer(Some("http://[::1]:8080"), wildcard, &mut notes).unwrap();
        check_issuer(None, "127.0.0.1:0".parse().unwrap(), &mut notes).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        check_issuer(Some("http://auth.example.com"), wildcard, &mut notes).unwrap();
        assert!(notes[0].message.contains("plain http"), "{notes:?}");
    }
}
