//! Browser support: the refresh token in an HttpOnly cookie, the CSRF checks
//! that cookie-carried requests must pass, and CORS for listed origins.
//!
//! The cookie is host-only (no `Domain`), `__Secure-` prefixed (not
//! `__Host-`, which would force `Path=/`), `HttpOnly; Secure;
//! SameSite=Strict; Path=/oauth2`: script never sees it and the browser
//! sends it only to the token, revocation and logout endpoints. A request
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
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The request header a cookie-carried request must have.
pub const CSRF_HEADER: &str = "x-tessera-request";

/// How the refresh cookie is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    pub name: &'static str,
    pub secure: bool,
}

impl CookiePolicy {
    /// The standard cookie; relaxed (no `Secure`, no prefix) only in dev mode
    /// on an http://localhost issuer, where browsers would refuse it.
    pub fn for_issuer(issuer: &str, dev: bool) -> Self {
        if dev && is_local_http(issuer) {
            Self { name: "tessera-refresh", secure: false }
        } else {
            Self { name: "__Secure-tessera-refresh", secure: true }
        }
    }

    pub fn set(&self, token: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{}={token}; Max-Age={max_age}; Path=/oauth2; HttpOnly{secure}; SameSite=Strict", self.name))
            .expect("tokens are header-safe")
    }

    pub fn clear(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{}=; Max-Age=0; Path=/oauth2; HttpOnly{secure}; SameSite=Strict", self.name)).expect("ASCII")
    }

    /// The refresh token from the request's cookies, if any.
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
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

/// CORS for the OAuth endpoints (credentials only for listed origins) and
/// for the public discovery documents (any origin, no credentials).
pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    let public = path.starts_with("/.well-known/") || path.starts_with("/v1/revocations");
    let Some(origin) = origin else { return next.run(request).await };
    if public {
        let mut response = next.run(request).await;
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        return response;
    }
    if !path.starts_with("/oauth2/") {
        return next.run(request).await;
    }
    let allowed = listed(&state, &origin);
    if request.method() == Method::OPTIONS {
        if !allowed {
            return OAuthError::new(StatusCode::FORBIDDEN, "access_denied", "this origin is not allowed to call tessera from a browser")
                .into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, authorization, x-tessera-request"));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        add_cors(headers, &origin);
        return response;
    }
    let mut response = next.run(request).await;
    if allowed {
        add_cors(response.headers_mut(), &origin);
    }
    response
}

fn add_cors(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
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
    if let Some(token) = state.cookie.read(&headers) {
        state.authority.revoke_token(&client, &token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().append(header::SET_COOKIE, state.cookie.clear());
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_has_every_attribute_and_is_relaxed_only_for_local_dev() {
        let strict = CookiePolicy::for_issuer("https://auth.example.com", true);
        let value = strict.set("rt1.x", 60).to_str().unwrap().to_string();
        assert_eq!(value, "__Secure-tessera-refresh=rt1.x; Max-Age=60; Path=/oauth2; HttpOnly; Secure; SameSite=Strict");
        assert!(!value.contains("Domain"));
        assert_eq!(CookiePolicy::for_issuer("http://localhost:8080", false), strict);
        let relaxed = CookiePolicy::for_issuer("http://localhost:8080", true);
        assert!(!relaxed.secure && !relaxed.name.starts_with("__"));
        assert!(!is_local_http("http://localhost.evil.com"));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; __Secure-tessera-refresh=rt1.tok; tessera-refresh=other"));
        assert_eq!(CookiePolicy::for_issuer("https://x", false).read(&headers).as_deref(), Some("rt1.tok"));
    }
}
