//! The HTTP interface: one axum router, one file per endpoint group.
//!
//! Every answer — success or failure — is in the protocol's own format:
//! RFC 6749 JSON on `/oauth2/*`, RFC 9457 problem+json elsewhere, including
//! unknown paths, wrong methods, oversized bodies and timeouts. Request
//! logs carry the method, path, status and request id, never a body, query
//! or other header, so tokens and secrets cannot reach them
//! ([`request_id`]). What every request passes through — id, span, CORS,
//! size and rate refusals, deadline, metrics — is [`edge`].

pub mod browser;
pub mod demo;
pub mod discovery;
pub mod dpop;
pub mod edge;
pub mod error;
pub mod extract;
pub mod feed;
pub mod health;
pub mod introspect;
pub mod oauth;
pub mod request_id;
pub mod revoke;
pub mod sessions;
pub mod throttle;
pub mod token;
pub mod token_response;

use crate::authority::Authority;
use crate::config::Config;
use crate::keys::Keyring;
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use error::Problem;
use std::sync::Arc;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// The configuration in force: swapped whole when SIGHUP reloads it
    /// (see [`crate::app::reload`]); read it with [`AppState::config`].
    config: arc_swap::ArcSwap<Config>,
    /// The rules: grants, sessions, introspection, revocation, the feed.
    pub authority: Authority,
    /// The JWKS source.
    pub keyring: Arc<Keyring>,
    /// RFC 8414 metadata, rendered once.
    pub metadata: bytes::Bytes,
    pub cookie: browser::CookiePolicy,
    /// Told of every refresh token presented and the session it rotated
    /// (the `--dev` demo's replay button uses it; `None` otherwise).
    pub refresh_observer: Option<Arc<dyn RefreshObserver>>,
    /// Failed client authentications and request rates, per client and peer.
    pub throttle: throttle::Throttle,
    /// How DPoP proofs are judged at the token endpoint.
    pub dpop: crate::dpop::DpopPolicy,
    /// Flips to true when the server starts shutting down, so long-lived
    /// streams end and the drain can finish.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The open revocation streams, for their caps.
    pub feed_streams: feed::StreamSlots,
}

/// Told of each refresh token presented for a rotation, and asked for the
/// last one a session presented: the `--dev` demo's replay button replays
/// it, as a thief with a stolen copy would.
pub trait RefreshObserver: Send + Sync {
    fn presented(&self, sid: &str, token: &str);
    fn last_presented(&self, sid: &str) -> Option<String>;
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, keyring: Arc<Keyring>, authority: Authority, dev: bool) -> Self {
        let issuer = authority.issuer().to_string();
        let metadata = discovery::render_metadata(&issuer);
        let shutdown = tokio::sync::watch::Sender::new(false);
        let cookie = browser::CookiePolicy::for_issuer(&issuer, dev);
        let refresh_observer = dev.then(demo::observer);
        let throttle = throttle::Throttle::new(&config.throttle, config.http.trusted_proxies.clone(), authority.metrics.clone());
        let dpop = crate::dpop::DpopPolicy::new(&config.dpop, config.tokens.leeway, &issuer);
        let feed_streams = feed::StreamSlots::default();
        let config = arc_swap::ArcSwap::from_pointee(config);
        Self(Arc::new(Inner { config, authority, keyring, metadata, cookie, refresh_observer, throttle, dpop, shutdown, feed_streams }))
    }

    pub fn issuer(&self) -> &str {
        self.authority.issuer()
    }

    /// The configuration in force now. A reload swaps it whole, so read it
    /// once per request and use that copy throughout.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Put a reloaded configuration in force for the requests that start
    /// from now on; requests in flight finish on the one they read.
    pub fn replace_config(&self, config: Config) {
        self.config.store(Arc::new(config));
    }

    /// Whether the server runs in `--dev` mode (the demo client is added to
    /// every configuration it loads).
    pub fn is_dev(&self) -> bool {
        self.refresh_observer.is_some()
    }

    /// Tell long-lived responses (the revocation stream) to end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// One route: method, path template, and the handler behind it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub(crate) endpoint: fn() -> MethodRouter<AppState>,
}

/// The routes of tessera — the router is built from this table and
/// `openapi.yaml` is tested against it, so the two cannot drift. The
/// `--dev` demo adds [`demo::ROUTES`].
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/.well-known/jwks.json", endpoint: || get(discovery::jwks) },
    Route { method: "GET", path: "/.well-known/oauth-authorization-server", endpoint: || get(discovery::metadata) },
    Route { method: "GET", path: "/.well-known/openid-configuration", endpoint: || get(discovery::metadata) },
    Route { method: "POST", path: "/v1/sessions", endpoint: || post(sessions::create) },
    Route { method: "DELETE", path: "/v1/sessions/{sid}", endpoint: || delete(sessions::end) },
    Route { method: "POST", path: "/v1/subjects/{sub}/revoke", endpoint: || post(sessions::end_all) },
    Route { method: "GET", path: "/v1/subjects/{sub}/sessions", endpoint: || get(sessions::list) },
    Route { method: "POST", path: "/oauth2/token", endpoint: || post(token::token) },
    Route { method: "POST", path: "/oauth2/revoke", endpoint: || post(revoke::revoke) },
    Route { method: "POST", path: "/oauth2/introspect", endpoint: || post(introspect::introspect) },
    Route { method: "POST", path: "/oauth2/logout", endpoint: || post(browser::logout) },
    Route { method: "GET", path: "/v1/revocations", endpoint: || get(feed::document) },
    Route { method: "GET", path: "/v1/revocations/stream", endpoint: || get(feed::stream) },
    Route { method: "GET", path: "/healthz", endpoint: || get(health::healthz) },
];

/// The operator's routes, served only on the management listener
/// (`management.listen`), never on the public one.
pub const MANAGEMENT_ROUTES: &[Route] = &[
    Route { method: "GET", path: "/healthz", endpoint: || get(health::healthz) },
    Route { method: "GET", path: "/readyz", endpoint: || get(health::readyz) },
    Route { method: "GET", path: "/metrics", endpoint: || get(health::metrics) },
];

/// Every route of either listener as `(method, path)`, for the metrics.
pub fn route_labels() -> Vec<(&'static str, &'static str)> {
    ROUTES.iter().chain(MANAGEMENT_ROUTES).chain(demo::ROUTES).map(|route| (route.method, route.path)).collect()
}

/// The public listener's routes: the table, plus the demo's in dev mode.
fn public_routes(state: &AppState) -> Vec<&'static Route> {
    let demo: &'static [Route] = if state.refresh_observer.is_some() { demo::ROUTES } else { &[] };
    ROUTES.iter().chain(demo).collect()
}

/// The public service: tokens, sessions, discovery, the feed, liveness.
pub fn service(state: AppState) -> edge::Edge {
    let routes = public_routes(&state);
    build(state, routes)
}

/// The management service: liveness, readiness, metrics.
pub fn management_service(state: AppState) -> edge::Edge {
    build(state, MANAGEMENT_ROUTES.iter().collect())
}

/// [`service`] as an axum `Router` (for in-process tests and embedding).
pub fn router(state: AppState) -> Router {
    Router::new().fallback_service(service(state))
}

/// [`management_service`] as an axum `Router`.
pub fn management_router(state: AppState) -> Router {
    Router::new().fallback_service(management_service(state))
}

fn build(state: AppState, routes: Vec<&'static Route>) -> edge::Edge {
    let mut router = Router::new();
    for route in &routes {
        router = router.route(route.path, (route.endpoint)());
    }
    let allowed = routes.clone();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(move |request: Request| method_not_allowed(allowed.clone(), request))
        .with_state(state.clone());
    edge::Edge::new(state, router, routes)
}

async fn not_found(request: Request) -> Problem {
    Problem::not_found(request.uri().path())
}

async fn method_not_allowed(routes: Vec<&'static Route>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let allowed: Vec<&str> = routes.iter().filter(|route| matches_template(route.path, &path)).map(|route| route.method).collect();
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
