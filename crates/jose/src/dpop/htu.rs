//! The `htu` comparison of RFC 9449 §4.3: the proof's `htu` and the URI of
//! the request are compared without query and fragment, after RFC 3986 §6
//! syntax-based and scheme-based normalisation — scheme and host lowercase,
//! the default port dropped, percent-encodings in one form (unreserved
//! characters decoded, hex digits uppercase), dot segments removed, an
//! empty path made `/`.
//!
//! Only `http` and `https` URIs with a host are accepted, and a URI with
//! user information is refused rather than normalised: no server asks for
//! a proof at such a URI, so one naming it is a mistake or a trick.

/// The normalised form of an `http`/`https` URI, without query and
/// fragment; `None` when it is no such URI.
pub fn normalize_htu(uri: &str) -> Option<String> {
    if uri.len() > 2048 || uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let uri = uri.split(['#', '?']).next().unwrap_or_default();
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |slash| rest.split_at(slash));
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = percent_normalized(&host.to_ascii_lowercase())?;
    let port = if port.is_empty() || port == default_port { String::new() } else { format!(":{port}") };
    let path = remove_dot_segments(&percent_normalized(path)?);
    let path = if path.is_empty() { "/".to_string() } else { path };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// `host[:port]`, the host possibly an IPv6 literal in brackets.
fn split_host_port(authority: &str) -> Option<(&str, &str)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        match rest {
            "" => Some((host, "")),
            _ => Some((host, rest.strip_prefix(':')?)),
        }
    } else {
        Some(authority.split_once(':').unwrap_or((authority, "")))
    }
}

/// RFC 3986 §2.1 and §6.2.2.2: unreserved characters decoded, every other
/// percent-encoding with uppercase hex digits; `None` for a broken one.
fn percent_normalized(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'%' {
            out.push(char::from(bytes[index]));
            index += 1;
            continue;
        }
        let hex = text.get(index + 1..index + 3)?;
        let value = u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(value));
        } else {
            out.push_str(&format!("%{value:02X}"));
        }
        index += 3;
    }
    Some(out)
}

/// RFC 3986 §5.2.4, as written there.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    let pop = |output: &mut String| output.truncate(output.rfind('/').unwrap_or(0));
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut output);
        } else if input == "/.." {
            input = "/";
            pop(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_fragment_case_and_default_ports_do_not_matter() {
        let canonical = Some("https://server.example.com/token".to_string());
        for uri in [
            "https://server.example.com/token",
            "HTTPS://Server.Example.COM/token",
            "https://server.example.com:443/token",
            "https://server.example.com:/token",
            "https://server.example.com/token?x=1",
            "https://server.example.com/token#top",
            "https://server.example.com/token?a=b#c",
            "https://server.example.com/./token",
            "https://server.example.com/a/../token",
            "https://server.example.com/%74oken",
        ] {
            assert_eq!(normalize_htu(uri), canonical, "{uri}");
        }
        assert_eq!(normalize_htu("http://127.0.0.1:80"), Some("http://127.0.0.1/".into()));
        assert_eq!(normalize_htu("http://127.0.0.1:8080/oauth2/token"), Some("http://127.0.0.1:8080/oauth2/token".into()));
        assert_eq!(normalize_htu("http://[::1]:8080/x"), Some("http://[::1]:8080/x".into()));
        assert_eq!(normalize_htu("http://[::1]/x"), Some("http://[::1]/x".into()));
    }

    #[test]
    fn what_differs_after_normalisation_stays_different() {
        let token = normalize_htu("https://server.example.com/token");
        for other in [
            "http://server.example.com/token",
            "https://server.example.com:8443/token",
            "https://server.example.com/Token",
            "https://server.example.com/token/",
            "https://other.example.com/token",
            "https://server.example.com/%2Ftoken",
        ] {
            assert_ne!(normalize_htu(other), token, "{other}");
        }
        assert_eq!(normalize_htu("https://h/a%2fb"), Some("https://h/a%2Fb".into()));
    }

    #[test]
    fn only_http_uris_with_a_host_and_no_user_are_accepted() {
        for uri in [
            "",
            "/token",
            "ftp://server.example.com/token",
            "https:///token",
            "https://user@server.example.com/token",
            "https://server.example.com:44x/token",
            "https://server.example.com/to ken",
            "https://server.example.com/%zz",
            "https://server.example.com/%4",
            "https://[::1/x",
            "https://[::1]x/y",
            "https://server.example.com/é",
        ] {
            assert_eq!(normalize_htu(uri), None, "{uri}");
        }
        assert_eq!(normalize_htu(&format!("https://h/{}", "a".repeat(3000))), None);
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_shows() {
        // RFC 3986 §5.2.4's own examples.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
        assert_eq!(remove_dot_segments("/.."), "/");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/a/./b/."), "/a/b/");
    }
}
