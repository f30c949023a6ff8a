//! The optional per-peer request rate on the OAuth endpoints
//! (`throttle.requests_per_second`, `throttle.burst`): governor's GCRA,
//! one theoretical arrival time per peer.
//!
//! governor's own keyed stores grow with every new key until someone calls
//! `retain_recent`; this one keeps the arrival times in [`Generations`], so
//! the peers remembered are capped like the failure counts, and a peer
//! idle for a burst's length — whose state is then the same as a fresh
//! one's — is forgotten by itself.

use super::generations::Generations;
use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<Generations<IpAddr, u64>>>;

/// Arrival times per peer, capped.
#[derive(Debug)]
struct BoundedStore(Arrivals);

impl StateStore for BoundedStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, decide: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let now = Instant::now();
        let mut arrivals = self.0.lock().expect("rate lock");
        // 0 is governor's "never seen", as in its own stores.
        let hash = arrivals.hash(key);
        let previous = arrivals.get_mut(hash, key, now).map(|tat| Nanos::new(*tat)).filter(|tat| tat.as_u64() != 0);
        let (outcome, next) = decide(previous)?;
        *arrivals.get_or_insert_with(hash, key, now, || 0) = next.as_u64();
        Ok(outcome)
    }
}

/// Requests per second per peer, with a burst.
#[derive(Debug)]
pub struct RequestRate {
    limiter: RateLimiter<IpAddr, BoundedStore, MonotonicClock>,
    #[cfg_attr(not(test), allow(dead_code))]
    arrivals: Arrivals,
}

impl RequestRate {
    /// `None` when `requests_per_second` is 0 (no limit).
    pub fn new(requests_per_second: u32, burst: u32, cap: usize) -> Option<Self> {
        let rate = NonZeroU32::new(requests_per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        // A peer idle this long is back to a full burst: forgetting it changes nothing.
        let refill = Duration::from_secs(1) * burst.get() / rate.get();
        let arrivals = Arc::new(Mutex::new(Generations::new(cap, refill.max(Duration::from_millis(1)), Instant::now())));
        let limiter = RateLimiter::new(Quota::per_second(rate).allow_burst(burst), BoundedStore(arrivals.clone()), MonotonicClock);
        Some(Self { limiter, arrivals })
    }

    /// `Err` with how long to wait when `peer` is over its rate.
    pub fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&peer).map_err(|not_until| not_until.wait_time_from(MonotonicClock.now()))
    }

    #[cfg(test)]
    /// Peers remembered now.
    pub fn tracked(&self) -> usize {
        self.arrivals.lock().expect("rate lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn zero_requests_per_second_is_no_limit() {
        assert!(RequestRate::new(0, 10, 100).is_none());
    }

    #[test]
    fn a_peer_gets_its_burst_then_waits_at_most_one_interval() {
        let rate = RequestRate::new(1, 3, 100).unwrap();
        for attempt in 1..=3 {
            assert!(rate.check(peer(1)).is_ok(), "request {attempt} is within the burst");
        }
        let wait = rate.check(peer(1)).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(rate.check(peer(2)).is_ok(), "another peer is unaffected");
    }

    #[test]
    fn the_peers_remembered_stay_under_the_cap() {
        let rate = RequestRate::new(1, 1, 100).unwrap();
        for n in 0..10_000 {
            assert!(rate.check(peer(n)).is_ok());
            assert!(rate.tracked() <= 100);
        }
    }
}
