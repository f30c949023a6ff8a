//! Access tokens at a service's edge: a tower [`Layer`] that lets a request
//! through only with a valid access token carrying the required scopes —
//! a bearer token, or, once [`RequireBearer::dpop`] names the service's
//! origin, a DPoP-bound token with its proof — and an axum extractor that
//! hands the handler the verified [`Claims`].
//!
//! ```no_run
//! # async fn example(verifier: tessera_verifier::Verifier) {
//! use axum::{Router, routing::get};
//! use tessera_verifier::{RequireBearer, VerifiedToken};
//! async fn orders(VerifiedToken(claims): VerifiedToken) -> String { claims.sub }
//! let guard = RequireBearer::new(verifier).scopes(&["orders:read"]).dpop("https://api.example.com");
//! let app: Router = Router::new().route("/orders", get(orders)).layer(guard);
//! # }
//! ```
//!
//! Refusals follow RFC 6750 §3 and RFC 9449 §7.1 (the `challenge` module
//! writes them): a request with no token at all gets 401 and a bare
//! challenge per accepted scheme (it may not know it needs one); a
//! malformed header 400 `invalid_request`; a token that fails verification
//! 401 `invalid_token` with the failed check as `error_description`; a
//! refused proof 401 `invalid_dpop_proof`; a missing nonce 401
//! `use_dpop_nonce`; a valid token without the scopes 403
//! `insufficient_scope` with the `scope` needed. Bodies are RFC 9457
//! problem+json, like the rest of tessera. Tokens in query strings or form
//! bodies (RFC 6750 §2.2–2.3) are not accepted: they end up in logs.
//!
//! A DPoP proof names the URI the client called (`htu`), and a service
//! behind a proxy cannot know that from the request alone — nor trust the
//! `Host` header for it, or a proof made for another service could be
//! replayed here. So DPoP is accepted only once the service's public
//! origin is configured; a bound token presented as Bearer is refused
//! either way (RFC 9449 §7.2).

use super::challenge::{Challenges, Presented, Refusal, Scheme, presented, problem};
use super::{Claims, Verifier};
use axum::extract::{FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Requires a valid access token (and scopes) on every request; puts its
/// [`Claims`] in the request extensions.
#[derive(Debug, Clone)]
pub struct RequireBearer {
    verifier: Verifier,
    scopes: Arc<[String]>,
    realm: Arc<str>,
    dpop: Option<Dpop>,
}

/// DPoP at this layer: the origin requests are addressed to, and whether
/// bearer tokens are refused.
#[derive(Debug, Clone)]
struct Dpop {
    origin: Arc<str>,
    only: bool,
}

impl RequireBearer {
    /// Any valid bearer token passes; the realm is the verifier's first audience.
    pub fn new(verifier: Verifier) -> Self {
        let realm = Arc::from(verifier.audiences()[0].as_str());
        Self { verifier, scopes: Arc::from([]), realm, dpop: None }
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

    /// Also accept DPoP-bound tokens (`Authorization: DPoP` with a `DPoP`
    /// proof, RFC 9449 §7). `origin` is this service's public origin as
    /// clients address it, e.g. `https://api.example.com`: a proof must
    /// name `origin` + the request's path as its `htu`.
    pub fn dpop(mut self, origin: &str) -> Self {
        self.dpop = Some(Dpop { origin: Arc::from(origin.trim_end_matches('/')), only: false });
        self
    }

    /// Accept DPoP-bound tokens only (see [`dpop`](Self::dpop)): a bearer
    /// token is refused even when valid, so a token copied off a client is
    /// useless here without that client's key.
    pub fn dpop_only(mut self, origin: &str) -> Self {
        self.dpop = Some(Dpop { origin: Arc::from(origin.trim_end_matches('/')), only: true });
        self
    }

    async fn authorize(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(Claims, Scheme), Refusal> {
        let (claims, scheme) = match presented(headers, self.dpop.is_some())? {
            Presented::Bearer(_) if self.dpop.as_ref().is_some_and(|dpop| dpop.only) => return Err(Refusal::BearerNotAccepted),
            Presented::Bearer(token) => {
                (self.verifier.verify(token).await.map_err(|e| Refusal::from((Scheme::Bearer, e)))?, Scheme::Bearer)
            }
            Presented::Dpop { token, proof } => {
                let origin = self.dpop.as_ref().map(|dpop| &*dpop.origin).unwrap_or_default();
                let htu = format!("{origin}{}", uri.path());
                let claims = self.verifier.verify_dpop(token, proof, method.as_str(), &htu).await;
                (claims.map_err(|e| Refusal::from((Scheme::Dpop, e)))?, Scheme::Dpop)
            }
        };
        if self.scopes.iter().all(|scope| claims.has_scope(scope)) { Ok((claims, scheme)) } else { Err(Refusal::InsufficientScope(scheme)) }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let dpop_algs =
            self.dpop.as_ref().map(|_| self.verifier.dpop_algorithms().iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "));
        let bearer = !self.dpop.as_ref().is_some_and(|dpop| dpop.only);
        Challenges { realm: &self.realm, dpop_algs, bearer, scopes: &self.scopes }.refuse(refusal)
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
            // The URI the client called, before any nesting stripped a prefix.
            let uri = request.extensions().get::<OriginalUri>().map_or_else(|| request.uri().clone(), |original| original.0.clone());
            match guard.authorize(request.method(), &uri, request.headers()).await {
                Ok((claims, scheme)) => {
                    request.extensions_mut().insert(claims);
                    let mut response = ready.call(request).await.map(IntoResponse::into_response)?;
                    // RFC 9449 §8.2: a fresh nonce rides on every answer, so a
                    // client is rarely refused for a stale one.
                    if let (Scheme::Dpop, Some(nonce)) = (scheme, guard.verifier.dpop_nonce())
                        && let Ok(nonce) = HeaderValue::from_str(&nonce)
                    {
                        response.headers_mut().insert("dpop-nonce", nonce);
                    }
                    Ok(response)
                }
                Err(refusal) => Ok(guard.refuse(refusal)),
            }
        })
    }
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
