//! Every request's span and request id, and the one line logged when it
//! finishes.
//!
//! The id is the caller's `X-Request-Id` when it is usable (1 to 128
//! visible ASCII characters), else a fresh 128-bit id in base64url. It is
//! returned as `X-Request-Id` on every response — errors, 404s and
//! timeouts included — and is a field of the request span, so every line
//! logged while serving the request carries it (`span.request_id` in JSON
//! lines). The line logged at the end says the status and the latency; for
//! the probes (`/healthz`, `/readyz`, `/metrics`) it is DEBUG, not INFO,
//! so orchestrator probes do not flood the logs. Nothing else of the
//! request (query, headers, body) is logged, so tokens and secrets cannot
//! reach the logs.
//!
//! The span is opened, and the line logged, by [`super::edge`]. With the
//! `otel` feature the span joins the caller's W3C trace
//! (`traceparent`) and is exported (see [`crate::telemetry`]).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header carrying the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's id when usable, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(id) if usable(id.as_bytes()) => id.clone(),
        _ => HeaderValue::from_bytes(&generate()).expect("base64url is a valid header value"),
    }
}

/// 1 to 128 visible ASCII characters: safe in a header and a log line.
fn usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// 128 bits: 64 drawn at random once per process, then a counter. Unique,
/// which is all an id needs (it is no secret, and callers may pick their
/// own), without a system call per request.
fn generate() -> [u8; 22] {
    use base64::Engine;
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
        bytes
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(prefix);
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut id = [0u8; 22];
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(bytes, &mut id).expect("16 bytes are 22 in base64url");
    debug_assert_eq!(written, id.len());
    id
}

/// Whether `path` is one of the probes, whose finishing line is DEBUG.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The one line logged when a request finishes, inside its span.
pub fn log_finished(span: &tracing::Span, probe: bool, status: u16, latency: std::time::Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_ms, "finished processing request");
        } else if probe {
            tracing::debug!(status, latency_ms, "finished processing request");
        } else {
            tracing::info!(status, latency_ms, "finished processing request");
        }
    });
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
        use base64::Engine;
        let id = generate();
        assert!(usable(&id), "{id:?}");
        assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).unwrap().len(), 16);
        assert_ne!(generate(), generate());
    }
}
