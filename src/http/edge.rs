//! What every request passes through before and after its handler, in one
//! service around the router: its id and span, CORS (and preflights), the
//! body-size refusal from the headers, the per-peer rate limit on the
//! OAuth endpoints, the deadline, the per-route metrics and the line logged
//! at the end.
//!
//! One hand-written service rather than a stack of `from_fn` layers: axum
//! applies a router's layers to every route and clones a route's whole
//! layered service at each layer of each request, which cost more CPU than
//! the rest of a JWKS request. Here a request costs one boxed future.

use super::browser::Cors;
use super::error::{OAuthError, Problem};
use super::request_id::{self, REQUEST_ID};
use super::{AppState, Route};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Service, ServiceExt};
use tracing::Instrument;

/// The router, wrapped.
#[derive(Clone)]
pub struct Edge {
    state: AppState,
    router: Router,
    /// The routes served, for the metrics' route label.
    routes: Arc<[&'static Route]>,
}

impl Edge {
    pub fn new(state: AppState, router: Router, routes: Vec<&'static Route>) -> Self {
        Self { state, router, routes: routes.into() }
    }

    /// The template of the route serving `method path`, if one does.
    fn route(&self, method: &str, path: &str) -> Option<&'static str> {
        let exact = self.routes.iter().find(|route| route.method == method && route.path == path);
        exact
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|route| route.method == method && route.path.contains('{') && super::matches_template(route.path, path))
            })
            .map(|route| route.path)
    }

    async fn handle(self, request: Request) -> Response {
        let started = Instant::now();
        let id = request_id::request_id(request.headers());
        // What the metrics and the last log line need, read before the
        // request moves into the router (no copy of its URI).
        let method = request.method().clone();
        let path = request.uri().path();
        let route = self.route(method.as_str(), path);
        let probe = request_id::is_probe(path);
        let is_oauth = path.starts_with("/oauth2/");
        #[cfg(feature = "otel")]
        let span =
            tracing::info_span!("http", method = %method, path = %path, request_id = id.to_str().unwrap_or_default(), otel.kind = "server");
        #[cfg(not(feature = "otel"))]
        let span = tracing::info_span!("http", method = %method, path = %path, request_id = id.to_str().unwrap_or_default());
        crate::telemetry::join_remote_trace(&span, request.headers());
        let (cors, mut response) = match Cors::decide(&self.state, &request) {
            Err(preflight) => (Cors::None, *preflight),
            // Boxed: the router's future is large, and it would otherwise be
            // moved (copied) several times on its way into this one's state.
            Ok(cors) => (cors, Box::pin(self.serve(request, is_oauth)).instrument(span.clone()).await),
        };
        cors.apply(response.headers_mut());
        response.headers_mut().insert(REQUEST_ID, id);
        let status = response.status().as_u16();
        let took = started.elapsed();
        if let Some(route) = route {
            self.state.authority.observe_http(method.as_str(), route, status, took);
        }
        request_id::log_finished(&span, probe, status, took);
        response
    }

    /// Refuse what the headers already condemn, then run the router within
    /// the deadline.
    async fn serve(&self, request: Request, is_oauth: bool) -> Response {
        let config = self.state.config();
        let max = config.http.max_body_bytes;
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > max as u64) {
            // Answered from the headers, without reading a byte of the body;
            // the unread body makes the connection unusable for another request.
            let detail = format!("the body exceeds {max} bytes");
            let mut response = if is_oauth {
                OAuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", detail).into_response()
            } else {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", detail).into_response()
            };
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        if let Some(refused) = super::throttle::over_rate(&self.state, &request) {
            return refused;
        }
        let served = self.router.clone().oneshot(request);
        match tokio::time::timeout(config.http.request_timeout, served).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) if is_oauth => {
                OAuthError::new(StatusCode::REQUEST_TIMEOUT, "invalid_request", "the request took too long").into_response()
            }
            Err(_) => Problem::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request took too long").into_response(),
        }
    }
}

impl Service<Request> for Edge {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let edge = self.clone();
        Box::pin(async move { Ok(edge.handle(request).await) })
    }
}
