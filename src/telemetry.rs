//! Logging set-up: text or JSON lines on stderr, filtered by `TESSERA_LOG`.
//!
//! JSON lines (`log.format = "json"`) are one object per line with stable
//! names, for log pipelines:
//!
//! | field | what |
//! |---|---|
//! | `timestamp` | RFC 3339, UTC |
//! | `level` | `ERROR` … `TRACE` |
//! | `target` | the module that logged |
//! | `message` | the sentence |
//! | any other top-level field | the event's own fields: `security_event`, `client`, `sid`, `jti`, `status`, `latency_ms`, … |
//! | `span` | the request span: `request_id`, `method`, `path` |
//!
//! Security events carry `security_event` (`refresh_token_reuse`,
//! `handoff_code_reuse`, `client_auth_failed`, `client_auth_throttled`), so
//! a pipeline can route them by that one field.
//!
//! Logging is set up after the configuration is read (its format is a
//! setting); what reading it noticed is logged right after.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter: `TESSERA_LOG` (`info` when unset), in `EnvFilter` syntax
/// such as `info,tessera::store=debug`.
fn filter() -> EnvFilter {
    EnvFilter::new(std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info".into()))
}

/// Install the process-wide subscriber. Call once.
pub fn init(format: LogFormat) {
    let registry = tracing_subscriber::registry().with(filter());
    match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).init();
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr);
            registry.with(layer).init();
        }
    }
}

/// Make `span` a child of the caller's W3C trace (`traceparent`), when
/// tracing is exported (`otel` feature); otherwise nothing.
#[cfg(not(feature = "otel"))]
pub fn join_remote_trace(_span: &tracing::Span, _headers: &axum::http::HeaderMap) {}
