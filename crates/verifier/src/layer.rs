//! Bearer tokens at a service's edge: a tower [`Layer`] that lets a request
//! through only with a valid access token carrying the required scopes, and
//! an axum extractor that hands the handler the verified [`Claims`].
//!
//! ```no_run
//! # async fn example(verifier: tessera_verifier::Verifier) {
//! use axum::{Router, routing::get};
//! use tessera_verifier::{RequireBearer, VerifiedToken};
//! async fn orders(VerifiedToken(claims): VerifiedToken) -> String { claims.sub }
//! let app: Router = Router::new().route("/orders", get(orders)).layer(RequireBearer::new(verifier).scopes(&["orders:read"]));
//! # }
//! ```
//!
//! Refusals follow RFC 6750 §3: a request with no token at all gets 401 and
//! a bare `WWW-Authenticate: Bearer realm="…"` (it may not know it needs
//! one); a malformed `Authorization: Bearer` header 400 `invalid_request`; a
//! token that fails verification 401 `invalid_token` with the failed check
//! as `error_description`; a valid token without the scopes 403
//! `insufficient_scope` with the `scope` needed. Bodies are RFC 9457
//! problem+json, like the rest of tessera. Tokens in query strings or form
//! bodies (RFC 6750 §2.2–2.3) are not accepted: they end up in logs.

use super::{Claims, Verifier, VerifyError};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Requires a valid bearer token (and scopes) on every request; puts its
/// [`Claims`] in the request extensions.
#[derive(Debug, Clone)]
pub struct RequireBearer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    realm: Arc<str>,
}

/// Why a request was refused.
enum Refusal {
    NoToken,
    MalformedHeader(&'static str),
    InvalidToken(VerifyError),
    InsufficientScope,
}

impl RequireBearer {
    /// Any valid token passes; the realm is the verifier's first audience.
    pub fn new(verifier: Verifier) -> Self {
        let realm = Arc::from(verifier.audiences()[0].as_str());
        Self { verifier, scopes: Arc::from([]), realm }
    }

    /// Every one of these scopes must be granted.
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The `realm` of the challenges.
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Arc::from(realm);
        self
    }

    async fn authorize(&self, headers: &HeaderMap) -> Result<Claims, Refusal> {
        let token = bearer_token(headers)?;
        let claims = self.verifier.verify(token).await.map_err(Refusal::InvalidToken)?;
        if self.scopes.iter().all(|scope| claims.has_scope(scope)) { Ok(claims) } else { Err(Refusal::InsufficientScope) }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let realm = format!("realm=\"{}\"", quotable(&self.realm));
        let (status, challenge, detail) = match refusal {
            Refusal::NoToken => {
                (StatusCode::UNAUTHORIZED, realm, "this resource needs an access token: Authorization: Bearer <token>".to_string())
            }
            Refusal::MalformedHeader(detail) => {
                (StatusCode::BAD_REQUEST, format!("{realm}, error=\"invalid_request\", error_description=\"{detail}\""), detail.into())
            }
            Refusal::InvalidToken(error) => {
                let detail = format!("the access token was refused: {error}");
                (StatusCode::UNAUTHORIZED, format!("{realm}, error=\"invalid_token\", error_description=\"{}\"", quotable(&detail)), detail)
            }
            Refusal::InsufficientScope => {
                let scope = quotable(&self.scopes.join(" "));
                let detail = format!("the access token lacks a scope this resource needs: {scope}");
                (StatusCode::FORBIDDEN, format!("{realm}, error=\"insufficient_scope\", scope=\"{scope}\""), detail)
            }
        };
        let challenge = HeaderValue::from_str(&format!("Bearer {challenge}")).expect("quotable() leaves visible ASCII only");
        let mut response = problem(status, &detail);
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

impl<S> Layer<S> for RequireBearer {
    type Service = RequireBearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearerService { inner, guard: self.clone() }
    }
}

/// The service [`RequireBearer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct RequireBearerService<S> {
    inner: S,
    guard: RequireBearer,
}

impl<S, B> Service<Request<B>> for RequireBearerService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Call the instance that was polled ready; keep a fresh clone.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.authorize(request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    ready.call(request).await.map(IntoResponse::into_response)
                }
                Err(refusal) => Ok(guard.refuse(refusal)),
            }
        })
    }
}

/// The token from `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(Refusal::NoToken) };
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader("more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| Refusal::MalformedHeader("the Authorization header is not visible ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is no bearer token at all (RFC 6750 §3.1).
        return Err(Refusal::NoToken);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(Refusal::MalformedHeader("Authorization: Bearer needs exactly one token"));
    }
    Ok(token)
}

/// Text safe inside an RFC 6750 quoted value: visible ASCII and space,
/// without `"` and `\`, at most 200 characters.
fn quotable(text: &str) -> String {
    text.chars().take(200).map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '\'' }).collect()
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// The verified token of a request behind [`RequireBearer`].
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub Claims);

/// [`VerifiedToken`] on a route without [`RequireBearer`]: a wiring mistake,
/// answered 500 (and never as an authenticated request).
#[derive(Debug, Clone, Copy)]
pub struct MissingLayer;

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        problem(StatusCode::INTERNAL_SERVER_ERROR, "this route reads a verified token but is not behind the RequireBearer layer")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, MissingLayer> {
        parts.extensions.get::<Claims>().cloned().map(VerifiedToken).ok_or(MissingLayer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn bearer_token_tells_no_token_from_a_malformed_header() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.def.ghi"])).ok(), Some("abc.def.ghi"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])).ok(), Some("abc"));
        assert!(matches!(bearer_token(&headers(&[])), Err(Refusal::NoToken)));
        assert!(matches!(bearer_token(&headers(&["Basic dXNlcjpwYXNz"])), Err(Refusal::NoToken)));
        assert!(matches!(bearer_token(&headers(&["Bearer"])), Err(Refusal::MalformedHeader(_))));
        assert!(matches!(bearer_token(&headers(&["Bearer a b"])), Err(Refusal::MalformedHeader(_))));
        assert!(matches!(bearer_token(&headers(&["Bearer a", "Bearer b"])), Err(Refusal::MalformedHeader(_))));
    }

    #[test]
    fn quotable_text_cannot_break_out_of_the_quotes() {
        assert_eq!(quotable("kid \"x\\\" é\tend"), "kid 'x'' ''end");
        assert_eq!(quotable(&"a".repeat(300)).len(), 200);
    }
}
