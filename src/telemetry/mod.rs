//! Logging set-up: text or JSON lines on stderr, filtered by `TESSERA_LOG`.
//! Text lines off a terminal are written by [`line`], a cheaper writer of
//! the same layout.
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
//! | `span` | the innermost span the line was logged in, with its fields (`name`, …) |
//! | `spans` | every open span from the request's down: `spans[0]` is `http` with `request_id`, `method`, `path`; a grant adds `grant` with `grant_type` and `client` |
//!
//! Security events carry `security_event` (`refresh_token_reuse`,
//! `handoff_code_reuse`, `client_auth_failed`, `client_auth_throttled`), so
//! a pipeline can route them by that one field.
//!
//! Logging is set up after the configuration is read (its format is a
//! setting); what reading it noticed is logged right after.
//!
//! Traces (cargo feature `otel`): when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the request span
//! (`http`), the grant (`grant`), the store calls (`store`) and the
//! signing (`sign`) are exported over OTLP (HTTP/protobuf, plain http) in
//! batches, as service `tessera` (`OTEL_SERVICE_NAME` overrides it). A
//! request's `traceparent` (W3C Trace Context) makes its span a child of
//! the caller's trace. The spans follow the `TESSERA_LOG` filter: keep it
//! at `info` or lower. The standard `OTEL_BSP_*` variables tune the
//! batching; the batch in hand is sent when tessera stops.

mod line;

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter: `TESSERA_LOG` (`info` when unset), in `EnvFilter` syntax
/// such as `info,tessera::store=debug`.
fn filter() -> EnvFilter {
    EnvFilter::new(std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info".into()))
}

/// Keeps the trace exporter running; flushes it when dropped (at exit).
#[must_use = "traces are flushed when the guard is dropped"]
pub struct Guard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// The log lines leave out the spans no line is ever logged in — `sign`
/// and `store`, which exist only when traces are built in (`otel`) — so a
/// request does not pay for formatting their fields into every log line's
/// context. Without traces those spans are never opened and the log layer
/// goes unfiltered: a per-layer filter costs every span and event a
/// thread-local look-up of its own.
fn log_lines<S, L>(layer: L) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    L: Layer<S> + Send + Sync,
{
    #[cfg(feature = "otel")]
    let layer = layer.with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
        !(metadata.is_span() && matches!(metadata.name(), "sign" | "store"))
    }));
    Box::new(layer)
}

/// Install the process-wide subscriber. Call once, outside any async runtime.
pub fn init(format: LogFormat) -> Guard {
    #[cfg(feature = "otel")]
    let (otel, provider) = match otel::exporter() {
        Some(provider) => (Some(otel::layer(&provider)), Some(provider)),
        None => (None, None),
    };
    #[cfg(not(feature = "otel"))]
    let otel: Option<tracing_subscriber::layer::Identity> = None;
    let registry = tracing_subscriber::registry().with(filter()).with(otel);
    match format {
        LogFormat::Text if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            let layer = tracing_subscriber::fmt::layer().with_ansi(true).with_writer(std::io::stderr);
            registry.with(log_lines(layer)).init();
        }
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(line::PlainFields)
                .event_format(line::PlainLine)
                .with_writer(std::io::stderr);
            registry.with(log_lines(layer)).init();
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr);
            registry.with(log_lines(layer)).init();
        }
    }
    Guard {
        #[cfg(feature = "otel")]
        provider,
    }
}

#[cfg(feature = "otel")]
pub use otel::join_remote_trace;

#[cfg(feature = "otel")]
mod store;

/// The store as the app uses it: with a span per call when traces are
/// built in (`otel`), untouched otherwise.
pub fn traced_store(store: std::sync::Arc<dyn crate::store::Store>) -> std::sync::Arc<dyn crate::store::Store> {
    #[cfg(feature = "otel")]
    return store::traced(store);
    #[cfg(not(feature = "otel"))]
    store
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// The OTLP exporter, when an endpoint is configured.
    pub(super) fn exporter() -> Option<SdkTracerProvider> {
        let configured =
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].iter().any(|name| std::env::var_os(name).is_some());
        if !configured {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("warning: OpenTelemetry traces are off: {error}");
                return None;
            }
        };
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tessera".into());
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(name).build();
        Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
    }

    pub(super) fn layer<S>(provider: &SdkTracerProvider) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("tessera"))
    }

    struct Headers<'a>(&'a axum::http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|name| name.as_str()).collect()
        }
    }

    /// Make `span` a child of the trace a W3C `traceparent` names.
    pub fn join_remote_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
        if headers.contains_key("traceparent") {
            let parent = TraceContextPropagator::new().extract(&Headers(headers));
            let _ = span.set_parent(parent);
        }
    }
}

/// Make `span` a child of the caller's W3C trace (`traceparent`), when
/// tracing is exported (`otel` feature); otherwise nothing.
#[cfg(not(feature = "otel"))]
pub fn join_remote_trace(_span: &tracing::Span, _headers: &axum::http::HeaderMap) {}
