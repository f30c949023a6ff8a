//! Every request's span and request id, and the one line logged when it
//! finishes.
//!
//! The id is the caller's `X-Request-Id` when it is usable (1 to 128
//! visible ASCII characters), else 128 random bits in base64url. It is
//! returned as `X-Request-Id` on every response — errors, 404s and
//! timeouts included — and is a field of the request span, so every line
//! logged while serving the request carries it (`span.request_id` in JSON
//! lines). The line logged at the end says the status and the latency; for
//! the probes (`/healthz`, `/readyz`, `/metrics`) it is DEBUG, not INFO,
//! so orchestrator probes do not flood the logs. Nothing else of the
//! request (query, headers, body) is logged, so tokens and secrets cannot
//! reach the logs.
//!
//! With the `otel` feature the span joins the caller's W3C trace
//! (`traceparent`) and is exported (see [`crate::telemetry`]).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller's id when usable, else a fresh one.
fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(REQUEST_ID)
        .filter(|value| usable(value.as_bytes()))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&generate()).expect("base64url is a valid header value"))
}

/// 1 to 128 visible ASCII characters: safe in a header and a log line.
fn usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Open the request span, serve inside it, log the outcome, return the id.
pub async fn trace(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let path = request.uri().path().to_string();
    let request_id = id.to_str().unwrap_or_default();
    #[cfg(feature = "otel")]
    let span = tracing::info_span!("http", method = %request.method(), path = %path, request_id, otel.kind = "server");
    #[cfg(not(feature = "otel"))]
    let span = tracing::info_span!("http", method = %request.method(), path = %path, request_id);
    crate::telemetry::join_remote_trace(&span, request.headers());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_ms, "finished processing request");
        } else if is_probe(&path) {
            tracing::debug!(status, latency_ms, "finished processing request");
        } else {
            tracing::info!(status, latency_ms, "finished processing request");
        }
    });
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_taken() {
        assert!(usable(b"abc-123_XYZ.~"));
        assert!(!usable(b""));
        assert!(!usable(b"has space"));
        assert!(!usable("caf\u{e9}".as_bytes()));
        assert!(!usable(&[b'a'; 129]));
        assert!(usable(&[b'a'; 128]));
        assert_eq!(generate().len(), 22);
        assert_ne!(generate(), generate());
    }
}
