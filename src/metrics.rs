//! Prometheus metrics: a handful of counters and two histograms, kept as
//! atomics and rendered in the text exposition format on `/metrics`.
//!
//! tessera exports few series, so a small fixed registry here replaces a
//! metrics facade and exporter crate: the hot path is one relaxed atomic add.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Cumulative histogram with fixed upper bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in micro-units (µs for seconds, ×1e6 for sizes) to stay integral.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if value <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_series(out, name, "");
    }

    /// The series of one labelled histogram (`labels` without braces).
    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = |text: &str| if text.is_empty() { String::new() } else { format!("{{{text}}}") };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// Labels of `tessera_tokens_issued_total{grant=…}`: each issuance counted
/// once, by what issued it (a grace-window replay issues nothing new).
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    /// `POST /v1/sessions` answered with tokens.
    Session,
    RefreshToken,
    ClientCredentials,
    /// A browser exchanged its one-time code for the session's first pair.
    AuthorizationCode,
}

const GRANT_LABELS: [&str; 4] = ["session", "refresh_token", "client_credentials", "authorization_code"];

/// Latency buckets of HTTP requests, in seconds.
const HTTP_SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Requests of one route: counts by status class and latency.
#[derive(Debug)]
struct RouteMetrics {
    method: &'static str,
    path: &'static str,
    /// 1xx … 5xx.
    by_class: [AtomicU64; 5],
    seconds: Histogram,
}

/// Labels of `tessera_refresh_total{outcome=…}`.
#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Rotated,
    GraceReplay,
    ReuseDetected,
    Rejected,
}

/// Labels of `tessera_revocations_total{kind=…}`.
#[derive(Debug, Clone, Copy)]
pub enum RevocationKind {
    Token,
    Session,
    Subject,
    Key,
}

/// Labels of `tessera_client_auth_failures_total{reason=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A configured client with a wrong secret.
    BadSecret,
    /// An id no client is configured with.
    UnknownClient,
    /// No credentials, or no secret where one is needed.
    Missing,
    /// Credentials that could not be read (bad Basic, two methods, …).
    Malformed,
    /// Refused unchecked: the client id or the peer failed too often.
    Throttled,
}

const AUTH_FAILURE_LABELS: [&str; 5] = ["bad_secret", "unknown_client", "missing", "malformed", "throttled"];

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        AUTH_FAILURE_LABELS[self as usize]
    }
}

/// Every series tessera exports.
#[derive(Debug)]
pub struct Metrics {
    issued: [AtomicU64; 4],
    refresh: [AtomicU64; 4],
    revocations: [AtomicU64; 4],
    client_auth_failures: [AtomicU64; 5],
    /// Introspections of access tokens answered from the verified-token
    /// cache, and those that had to verify the signature.
    introspection_cache: [AtomicU64; 2],
    commit_seconds: Histogram,
    batch_size: Histogram,
    routes: Vec<RouteMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Metrics {
    /// Metrics for a service whose routes are `(method, path template)`.
    pub fn new(routes: &[(&'static str, &'static str)]) -> Self {
        Self {
            routes: routes
                .iter()
                .map(|&(method, path)| RouteMetrics { method, path, by_class: Default::default(), seconds: Histogram::new(HTTP_SECONDS) })
                .collect(),
            issued: Default::default(),
            refresh: Default::default(),
            revocations: Default::default(),
            client_auth_failures: Default::default(),
            introspection_cache: Default::default(),
            commit_seconds: Histogram::new(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0]),
            batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0]),
        }
    }

    /// One answered request of route `(method, path)`.
    pub fn http_request(&self, method: &str, path: &str, status: u16, took: Duration) {
        if let Some(route) = self.routes.iter().find(|r| r.path == path && r.method == method) {
            let class = usize::from(status / 100).clamp(1, 5) - 1;
            route.by_class[class].fetch_add(1, Relaxed);
            route.seconds.observe(took.as_secs_f64());
        }
    }

    pub fn issued(&self, grant: Grant) {
        self.issued[grant as usize].fetch_add(1, Relaxed);
    }

    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refresh[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn revoked(&self, kind: RevocationKind, count: u64) {
        self.revocations[kind as usize].fetch_add(count, Relaxed);
    }

    pub fn client_auth_failure(&self, reason: AuthFailure) {
        self.client_auth_failures[reason as usize].fetch_add(1, Relaxed);
    }

    /// An access-token introspection, answered from the cache (`hit`) or not.
    pub fn introspection_cache(&self, hit: bool) {
        self.introspection_cache[usize::from(!hit)].fetch_add(1, Relaxed);
    }

    pub fn store_commit(&self, took: Duration, batch: usize) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.batch_size.observe(batch as f64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ =
            writeln!(out, "# HELP tessera_tokens_issued_total Access tokens issued, by grant.\n# TYPE tessera_tokens_issued_total counter");
        for (label, counter) in GRANT_LABELS.iter().zip(&self.issued) {
            let _ = writeln!(out, "tessera_tokens_issued_total{{grant=\"{label}\"}} {}", counter.load(Relaxed));
        }
        let _ =
            writeln!(out, "# HELP tessera_refresh_total Refresh-token presentations, by outcome.\n# TYPE tessera_refresh_total counter");
        for (label, counter) in ["rotated", "grace_replay", "reuse_detected", "rejected"].iter().zip(&self.refresh) {
            let _ = writeln!(out, "tessera_refresh_total{{outcome=\"{label}\"}} {}", counter.load(Relaxed));
        }
        let reuse = self.refresh[RefreshOutcome::ReuseDetected as usize].load(Relaxed);
        let _ = writeln!(
            out,
            "# HELP tessera_reuse_detections_total Refresh tokens replayed after the grace window (sessions revoked).\n# TYPE tessera_reuse_detections_total counter\ntessera_reuse_detections_total {reuse}"
        );
        let _ = writeln!(
            out,
            "# HELP tessera_revocations_total Revocation entries written, by kind.\n# TYPE tessera_revocations_total counter"
        );
        for (label, counter) in ["token", "session", "subject", "key"].iter().zip(&self.revocations) {
            let _ = writeln!(out, "tessera_revocations_total{{kind=\"{label}\"}} {}", counter.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP tessera_client_auth_failures_total Failed client authentications, by reason.\n# TYPE tessera_client_auth_failures_total counter"
        );
        for (label, counter) in AUTH_FAILURE_LABELS.iter().zip(&self.client_auth_failures) {
            let _ = writeln!(out, "tessera_client_auth_failures_total{{reason=\"{label}\"}} {}", counter.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP tessera_introspection_cache_total Access-token introspections, by whether the verified-token cache answered.\n# TYPE tessera_introspection_cache_total counter"
        );
        for (label, counter) in ["hit", "miss"].iter().zip(&self.introspection_cache) {
            let _ = writeln!(out, "tessera_introspection_cache_total{{result=\"{label}\"}} {}", counter.load(Relaxed));
        }
        self.commit_seconds.render(&mut out, "tessera_store_commit_seconds", "Time to commit one store transaction (fsync included).");
        self.batch_size.render(&mut out, "tessera_store_batch_size", "Writes folded into one store commit.");
        let _ = writeln!(
            out,
            "# HELP tessera_http_requests_total HTTP requests answered, by route and status class.\n# TYPE tessera_http_requests_total counter"
        );
        for route in &self.routes {
            for (class, counter) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().zip(&route.by_class) {
                let count = counter.load(Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "tessera_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{class}\"}} {count}",
                        route.method, route.path
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP tessera_http_request_seconds Time to answer an HTTP request (headers), by route.\n# TYPE tessera_http_request_seconds histogram"
        );
        for route in &self.routes {
            route.seconds.render_series(
                &mut out,
                "tessera_http_request_seconds",
                &format!("method=\"{}\",route=\"{}\"", route.method, route.path),
            );
        }
        let _ = writeln!(
            out,
            "# HELP tessera_build_info The running build.\n# TYPE tessera_build_info gauge\ntessera_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            env!("BUILD_GIT_REVISION")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.issued(Grant::Session);
        metrics.refresh(RefreshOutcome::ReuseDetected);
        metrics.store_commit(Duration::from_micros(1500), 3);
        metrics.client_auth_failure(AuthFailure::BadSecret);
        let text = metrics.render();
        assert!(text.contains("tessera_client_auth_failures_total{reason=\"bad_secret\"} 1"), "{text}");
        assert!(text.contains("tessera_client_auth_failures_total{reason=\"throttled\"} 0"), "{text}");
        assert!(text.contains("tessera_tokens_issued_total{grant=\"session\"} 1"), "{text}");
        assert!(text.contains("tessera_reuse_detections_total 1"), "{text}");
        assert!(text.contains("tessera_store_commit_seconds_bucket{le=\"0.001\"} 0"), "{text}");
        assert!(text.contains("tessera_store_commit_seconds_bucket{le=\"0.002\"} 1"), "{text}");
        assert!(text.contains("tessera_store_batch_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(text.contains("tessera_store_batch_size_count 1"), "{text}");
        assert!(text.contains("tessera_build_info{version=\""), "{text}");
    }

    #[test]
    fn http_requests_are_counted_per_route_and_status_class() {
        let metrics = Metrics::new(&[("POST", "/oauth2/token"), ("GET", "/healthz")]);
        metrics.http_request("POST", "/oauth2/token", 200, Duration::from_millis(2));
        metrics.http_request("POST", "/oauth2/token", 401, Duration::from_millis(1));
        metrics.http_request("POST", "/oauth2/token", 400, Duration::from_millis(1));
        metrics.http_request("GET", "/nowhere", 404, Duration::from_millis(1));
        let text = metrics.render();
        assert!(text.contains("tessera_http_requests_total{method=\"POST\",route=\"/oauth2/token\",status=\"2xx\"} 1"), "{text}");
        assert!(text.contains("tessera_http_requests_total{method=\"POST\",route=\"/oauth2/token\",status=\"4xx\"} 2"), "{text}");
        assert!(text.contains("tessera_http_request_seconds_count{method=\"POST\",route=\"/oauth2/token\"} 3"), "{text}");
        assert!(text.contains("tessera_http_request_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.001\"} 0"), "{text}");
    }
}
