//! The HTTP interface: one axum router, one file per endpoint group.
//!
//! Every answer — success or failure — is in the protocol's own format:
//! RFC 6749 JSON on `/oauth2/*`, RFC 9457 problem+json elsewhere, including
//! unknown paths, wrong methods, oversized bodies and timeouts. Request
//! logs carry the method, path and status, never a body, query or header,
//! so tokens and secrets cannot reach them.

pub mod browser;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod feed;
pub mod health;
pub mod introspect;
pub mod revoke;
pub mod sessions;
pub mod token;

use crate::config::Config;
use crate::keys::Keyring;
use crate::metrics::Metrics;
use crate::revocations::RevocationList;
use crate::sessions::TokenService;
use crate::store::Store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use error::Problem;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub issuer: String,
    pub keyring: Arc<Keyring>,
    pub tokens: TokenService,
    /// RFC 8414 metadata, rendered once.
    pub metadata: bytes::Bytes,
    /// `serve --dev`: the demo page and its stand-in login backend.
    pub dev: bool,
    pub cookie: browser::CookiePolicy,
    /// Dev only: the refresh token each demo session presented last, for the
    /// demo's "replay" button.
    pub demo: demo::DemoMemory,
    /// Flips to true when the server starts shutting down, so long-lived
    /// streams end and the drain can finish.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// `revocations` must already hold the store's list (see [`crate::server`]).
    pub fn new(
        config: Config,
        issuer: String,
        keyring: Arc<Keyring>,
        store: Arc<dyn Store>,
        revocations: Arc<RevocationList>,
        metrics: Arc<Metrics>,
        dev: bool,
    ) -> Self {
        let mut tokens = TokenService::new(&issuer, config.tokens.clone(), keyring.clone(), store, revocations, metrics);
        if let crate::config::StoreConfig::Redis(redis) = &config.store {
            tokens = tokens.with_max_staleness(redis.mirror_max_staleness);
        }
        let metadata = discovery::render_metadata(&issuer);
        let shutdown = tokio::sync::watch::Sender::new(false);
        let cookie = browser::CookiePolicy::for_issuer(&issuer, dev);
        Self(Arc::new(Inner { config, issuer, keyring, tokens, metadata, dev, cookie, demo: Default::default(), shutdown }))
    }

    /// Tell long-lived responses (the revocation stream) to end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// The routes of tessera; `openapi.yaml` documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("POST", "/v1/sessions"),
    ("DELETE", "/v1/sessions/{sid}"),
    ("POST", "/v1/subjects/{sub}/revoke"),
    ("GET", "/v1/subjects/{sub}/sessions"),
    ("POST", "/oauth2/token"),
    ("POST", "/oauth2/revoke"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/logout"),
    ("GET", "/v1/revocations"),
    ("GET", "/v1/revocations/stream"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/demo"),
    ("POST", "/demo/login"),
    ("POST", "/demo/replay"),
    ("POST", "/demo/logout-everywhere"),
];

pub fn router(state: AppState) -> Router {
    let max_body = state.config.http.max_body_bytes;
    Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/.well-known/oauth-authorization-server", get(discovery::metadata))
        .route("/.well-known/openid-configuration", get(discovery::metadata))
        .route("/v1/sessions", post(sessions::create))
        .route("/v1/sessions/{sid}", delete(sessions::end))
        .route("/v1/subjects/{sub}/revoke", post(sessions::end_all))
        .route("/v1/subjects/{sub}/sessions", get(sessions::list))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(revoke::revoke))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route("/oauth2/logout", post(browser::logout))
        .route("/v1/revocations", get(feed::document))
        .route("/v1/revocations/stream", get(feed::stream))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(demo::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), refuse_oversized))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), browser::cors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| tracing::info_span!("http", method = %request.method(), path = %request.uri().path()))
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// Bound every request's total time (body read included) and answer a
/// timeout in problem+json rather than dropping the connection.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_oauth = request.uri().path().starts_with("/oauth2/");
    match tokio::time::timeout(state.config.http.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if is_oauth => {
            error::OAuthError::new(StatusCode::REQUEST_TIMEOUT, "invalid_request", "the request took too long").into_response()
        }
        Err(_) => Problem::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took too long").into_response(),
    }
}

/// Answer 413 from the headers when `Content-Length` is over the limit,
/// without reading a byte of the body. (Bodies without a length are cut off
/// by `DefaultBodyLimit` as they are read.)
async fn refuse_oversized(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let max = state.config.http.max_body_bytes;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|length| length <= max as u64) {
        return next.run(request).await;
    }
    let detail = format!("the body exceeds {max} bytes");
    let mut response = if request.uri().path().starts_with("/oauth2/") {
        error::OAuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", detail).into_response()
    } else {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", detail).into_response()
    };
    // The unread body makes the connection unusable for another request.
    response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

async fn not_found(request: Request) -> Problem {
    Problem::not_found(request.uri().path())
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path().to_string();
    let allowed: Vec<&str> = ROUTES.iter().filter(|(_, template)| matches_template(template, &path)).map(|(m, _)| *m).collect();
    let mut response = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {path}; allowed: {}", request.method(), allowed.join(", ")),
    )
    .into_response();
    if let Ok(value) = allowed.join(", ").parse() {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Whether `path` fits a route template such as `/v1/sessions/{sid}`.
fn matches_template(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(seg), Some(actual)) if seg.starts_with('{') || seg == actual => {}
            _ => return false,
        }
    }
}

/// Whether the request's Content-Type is `expected` (parameters ignored).
pub(crate) fn has_content_type(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Whether a body read failed because it was too large.
pub(crate) fn is_too_large(rejection: &axum::extract::rejection::BytesRejection) -> bool {
    rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
}
