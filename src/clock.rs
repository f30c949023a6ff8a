//! Time, passed in rather than read from the wall.
//!
//! Every decision that depends on the time — which key signs, whether a token
//! has expired, when a session ends — takes its "now" from a [`Clock`]. The
//! server uses [`SystemClock`]; tests use [`ManualClock`] and move time by
//! hand, so lifecycle rules are tested exactly, without sleeping.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex};

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// The current instant as seconds since the Unix epoch (JWT NumericDate).
    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// A shared, dynamically chosen clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(instant: DateTime<Utc>) -> Self {
        Self(Mutex::new(instant))
    }

    /// A clock at the given Unix second.
    pub fn at_unix(seconds: i64) -> Self {
        Self::at(Utc.timestamp_opt(seconds, 0).single().expect("valid timestamp"))
    }

    pub fn set(&self, instant: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = instant;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).expect("duration in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix(1_000);
        assert_eq!(clock.unix(), 1_000);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.unix(), 1_090);
    }
}
