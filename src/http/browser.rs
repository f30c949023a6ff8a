//! Browser support: the refresh token in an HttpOnly cookie, the CSRF checks
//! that cookie-carried requests must pass, and CORS for listed origins.
//!
//! The cookie is host-only (no `Domain`), `__Secure-` prefixed (not
//! `__Host-`, which would force `Path=/`), `HttpOnly; Secure;
//! SameSite=Strict; Path=/oauth2`, named per client
//! (`__Secure-tessera-refresh-<client id>`): script never sees it and the
//! browser sends it only to the token, revocation and logout endpoints.
//! A session whose refresh token would not fit in it is refused when it is
//! created ([`CookiePolicy::token_budget`]) rather than silently dropped by
//! the browser later. A request
//! that relies on it must come from one of the client's `allowed_origins`
//! (its `Origin` header) and carry the `X-Tessera-Request` header, which a
//! cross-site form cannot set and a cross-origin script cannot send without
//! a CORS preflight that tessera only grants to listed origins.

use super::AppState;
use super::error::OAuthError;
use super::extract::OAuthClient;
use crate::clients::Client;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The request header a cookie-carried request must have.
pub const CSRF_HEADER: &str = "x-tessera-request";

/// The most a browser keeps of one cookie (RFC 6265 §6.1 asks for at
/// least 4096 bytes; browsers drop, silently, what is larger).
pub const MAX_COOKIE_BYTES: usize = 4096;

/// How the refresh cookie is written: one cookie per client
/// (`__Secure-tessera-refresh-<client id>`), so signing in to one app on
/// an issuer never overwrites another app's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    prefix: &'static str,
    pub secure: bool,
}

impl CookiePolicy {
    /// The standard cookie; relaxed (no `Secure`, no prefix) only in dev mode
    /// on an http://localhost issuer, where browsers would refuse it.
    pub fn for_issuer(issuer: &str, dev: bool) -> Self {
        if dev && is_local_http(issuer) {
            Self { prefix: "tessera-refresh", secure: false }
        } else {
            Self { prefix: "__Secure-tessera-refresh", secure: true }
        }
    }

    /// The cookie name for `client_id`. A cookie name is an RFC 7230
    /// token, so characters a client id may have but a token may not
    /// (and `%` itself) are percent-encoded.
    pub fn name(&self, client_id: &str) -> String {
        let mut name = format!("{}-", self.prefix);
        for byte in client_id.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&byte) {
                name.push(byte as char);
            } else {
                name.push_str(&format!("%{byte:02X}"));
            }
        }
        name
    }

    fn attributes(&self) -> &'static str {
        if self.secure { "; Path=/oauth2; HttpOnly; Secure; SameSite=Strict" } else { "; Path=/oauth2; HttpOnly; SameSite=Strict" }
    }

    fn header(&self, client_id: &str, token: &str, max_age: u64) -> String {
        format!("{}={token}; Max-Age={max_age}{}", self.name(client_id), self.attributes())
    }

    pub fn set(&self, client_id: &str, token: &str, max_age: u64) -> HeaderValue {
        HeaderValue::from_str(&self.header(client_id, token, max_age)).expect("tokens are header-safe")
    }

    pub fn clear(&self, client_id: &str) -> HeaderValue {
        HeaderValue::from_str(&self.header(client_id, "", 0)).expect("ASCII")
    }

    /// The most bytes a refresh token may have for `client` so that its
    /// cookie — name, value and attributes, with a `Max-Age` of up to
    /// `max_age` — stays within [`MAX_COOKIE_BYTES`]; `None` when the
    /// client does not use the cookie.
    pub fn token_budget(&self, client: &Client, max_age: u64) -> Option<usize> {
        client.refresh_cookie.then(|| MAX_COOKIE_BYTES.saturating_sub(self.header(&client.id, "", max_age).len()))
    }

    /// `client_id`'s refresh token from the request's cookies, if any.
    pub fn read(&self, client_id: &str, headers: &HeaderMap) -> Option<String> {
        let name = self.name(client_id);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(found, _)| *found == name)
            .map(|(_, value)| value.to_string())
            .filter(|value| !value.is_empty())
    }
}

/// `http://localhost[:port]` or `http://127.0.0.1[:port]`.
pub fn is_local_http(issuer: &str) -> bool {
    let Some(rest) = issuer.strip_prefix("http://") else { return false };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host == "127.0.0.1"
}

/// The checks a cookie-carried request must pass.
pub fn check_csrf(headers: &HeaderMap, client: &Client) -> Result<(), OAuthError> {
    let forbidden = |why: &str| OAuthError::new(StatusCode::FORBIDDEN, "access_denied", format!("cookie-carried request refused: {why}"));
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).ok_or_else(|| forbidden("it has no Origin header"))?;
    if !client.allowed_origins.iter().any(|allowed| allowed == origin) {
        return Err(forbidden(&format!(
            "origin {:?} is not among client {:?}'s allowed_origins",
            origin.chars().take(128).collect::<String>(),
            client.id
        )));
    }
    if !headers.contains_key(CSRF_HEADER) {
        return Err(forbidden("the X-Tessera-Request header is missing"));
    }
    Ok(())
}

/// Whether `origin` is listed by any client (CORS is decided before the
/// client is known: preflights carry no body).
fn listed(state: &AppState, origin: &str) -> bool {
    state.config().clients.iter().any(|c| c.allowed_origins.iter().any(|o| o == origin))
}

/// What CORS adds to a response, decided from the request before it is
/// served: credentials only for listed origins on the OAuth endpoints, any
/// origin (no credentials) on the public discovery documents and the feed.
pub enum Cors {
    None,
    AnyOrigin,
    Credentialed(HeaderValue),
}

impl Cors {
    /// The decision for `request`, or the whole answer when it is a
    /// preflight (`OPTIONS` with an `Origin`) to an OAuth endpoint.
    pub fn decide(state: &AppState, request: &Request) -> Result<Cors, Box<Response>> {
        let Some(origin) = request.headers().get(header::ORIGIN) else { return Ok(Cors::None) };
        let path = request.uri().path();
        if path.starts_with("/.well-known/") || path.starts_with("/v1/revocations") {
            return Ok(Cors::AnyOrigin);
        }
        if !path.starts_with("/oauth2/") {
            return Ok(Cors::None);
        }
        let allowed = origin.to_str().is_ok_and(|origin| listed(state, origin));
        if request.method() == Method::OPTIONS {
            if !allowed {
                let refused =
                    OAuthError::new(StatusCode::FORBIDDEN, "access_denied", "this origin is not allowed to call tessera from a browser");
                return Err(Box::new(refused.into_response()));
            }
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            // `dpop`: RFC 9449 proofs from single-page apps.
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, authorization, x-tessera-request, dpop"),
            );
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            add_cors(headers, origin.clone());
            return Err(Box::new(response));
        }
        Ok(if allowed { Cors::Credentialed(origin.clone()) } else { Cors::None })
    }

    pub fn apply(self, headers: &mut HeaderMap) {
        match self {
            Cors::None => {}
            Cors::AnyOrigin => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
            Cors::Credentialed(origin) => add_cors(headers, origin),
        }
    }
}

fn add_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    // A page must read the server's DPoP nonce (RFC 9449 §8).
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("dpop-nonce"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// `POST /oauth2/logout`: the browser's logout. Ends the session of the
/// refresh cookie and clears the cookie; passes the CSRF checks first.
pub async fn logout(State(state): State<AppState>, OAuthClient { client, headers, .. }: OAuthClient) -> Result<Response, OAuthError> {
    if !client.refresh_cookie {
        return Err(OAuthError::invalid_request(format!(
            "client {:?} does not use the refresh cookie; revoke with /oauth2/revoke",
            client.id
        )));
    }
    check_csrf(&headers, &client)?;
    if let Some(token) = state.cookie.read(&client.id, &headers) {
        state.authority.revoke_token(&client, &token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().append(header::SET_COOKIE, state.cookie.clear(&client.id));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_has_every_attribute_and_is_relaxed_only_for_local_dev() {
        let strict = CookiePolicy::for_issuer("https://auth.example.com", true);
        let value = strict.set("web", "rt1.x", 60).to_str().unwrap().to_string();
        assert_eq!(value, "__Secure-tessera-refresh-web=rt1.x; Max-Age=60; Path=/oauth2; HttpOnly; Secure; SameSite=Strict");
        assert!(!value.contains("Domain"));
        assert_eq!(CookiePolicy::for_issuer("http://localhost:8080", false), strict);
        let relaxed = CookiePolicy::for_issuer("http://localhost:8080", true);
        assert!(!relaxed.secure && !relaxed.name("web").starts_with("__"));
        assert!(!is_local_http("http://localhost.evil.com"));
    }

    #[test]
    fn each_client_has_its_own_cookie_and_odd_ids_become_valid_names() {
        let policy = CookiePolicy::for_issuer("https://x", false);
        assert_ne!(policy.name("spa"), policy.name("spa2"));
        assert_eq!(policy.name("https://app.example/x"), "__Secure-tessera-refresh-https%3A%2F%2Fapp.example%2Fx");
        assert_ne!(policy.name("a%3A"), policy.name("a:"), "percent itself is encoded, so names stay distinct");
        assert_eq!(
            policy.clear("spa").to_str().unwrap(),
            "__Secure-tessera-refresh-spa=; Max-Age=0; Path=/oauth2; HttpOnly; Secure; SameSite=Strict"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "a=1; __Secure-tessera-refresh-spa2=other; __Secure-tessera-refresh-spa=rt1.tok; tessera-refresh-spa=dev",
            ),
        );
        let policy = CookiePolicy::for_issuer("https://x", false);
        assert_eq!(policy.read("spa", &headers).as_deref(), Some("rt1.tok"));
        assert_eq!(policy.read("spa2", &headers).as_deref(), Some("other"));
        assert_eq!(policy.read("web", &headers), None);
    }

    #[test]
    fn the_token_budget_leaves_room_for_name_and_attributes() {
        let policy = CookiePolicy::for_issuer("https://x", false);
        let mut client = Client::public("spa", std::time::Duration::from_secs(60));
        assert_eq!(policy.token_budget(&client, 1_209_600), None, "no cookie, no budget");
        client.refresh_cookie = true;
        let budget = policy.token_budget(&client, 1_209_600).unwrap();
        assert_eq!(policy.set("spa", &"t".repeat(budget), 1_209_600).len(), MAX_COOKIE_BYTES);
    }
}
