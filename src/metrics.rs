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
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Labels of `tessera_tokens_issued_total{grant=…}`.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    Session,
    RefreshToken,
    ClientCredentials,
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

/// Every series tessera exports.
#[derive(Debug)]
pub struct Metrics {
    issued: [AtomicU64; 3],
    refresh: [AtomicU64; 4],
    revocations: [AtomicU64; 4],
    commit_seconds: Histogram,
    batch_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            issued: Default::default(),
            refresh: Default::default(),
            revocations: Default::default(),
            commit_seconds: Histogram::new(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0]),
            batch_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0]),
        }
    }
}

impl Metrics {
    pub fn issued(&self, grant: Grant) {
        self.issued[grant as usize].fetch_add(1, Relaxed);
    }

    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refresh[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn revoked(&self, kind: RevocationKind, count: u64) {
        self.revocations[kind as usize].fetch_add(count, Relaxed);
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
        for (label, counter) in ["session", "refresh_token", "client_credentials"].iter().zip(&self.issued) {
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
        self.commit_seconds.render(&mut out, "tessera_store_commit_seconds", "Time to commit one store transaction (fsync included).");
        self.batch_size.render(&mut out, "tessera_store_batch_size", "Writes folded into one store commit.");
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
        let text = metrics.render();
        assert!(text.contains("tessera_tokens_issued_total{grant=\"session\"} 1"), "{text}");
        assert!(text.contains("tessera_reuse_detections_total 1"), "{text}");
        assert!(text.contains("tessera_store_commit_seconds_bucket{le=\"0.001\"} 0"), "{text}");
        assert!(text.contains("tessera_store_commit_seconds_bucket{le=\"0.002\"} 1"), "{text}");
        assert!(text.contains("tessera_store_batch_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(text.contains("tessera_store_batch_size_count 1"), "{text}");
    }
}
