//! The DPoP proofs a single-process store has seen (RFC 9449 §11.1): each
//! proof id until its proof has aged out, at most [`CAPACITY`] of them.
//!
//! The memory and embedded stores keep these in memory rather than on
//! disk. A redb file serves one process (redb locks it), so process memory
//! is exactly as shared as the store; an id needs keeping for a minute or
//! so; and an fsync per proof would add a disk commit to every DPoP token
//! request. What memory loses is a restart: so a ledger made for a durable
//! store remembers when it was opened and refuses any proof made before
//! that — it cannot tell such a proof from a replay. A client whose proof
//! straddled the restart gets `invalid_dpop_proof` once and makes a new
//! proof.
//!
//! When the ledger is full of live ids it refuses to remember more (the
//! store answers unavailable, the request 503) rather than forget a live
//! one, which would let its proof be replayed.

use super::StoreError;
use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

/// The most proof ids held at once: at a minute each, a sustained 16,000
/// DPoP requests a second; about 100 bytes each.
pub const CAPACITY: usize = 1_000_000;

/// Proof ids seen, each until its proof has aged out.
#[derive(Debug)]
pub struct ProofLedger {
    /// For a durable store: proofs made before this instant are refused.
    opened_at: Option<i64>,
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl ProofLedger {
    /// A ledger for a store that forgets everything on restart anyway.
    pub fn volatile() -> Self {
        Self { opened_at: None, capacity: CAPACITY, seen: Mutex::default() }
    }

    /// A ledger for a durable store opened at `now` (Unix seconds).
    pub fn for_durable_store(now: i64) -> Self {
        Self { opened_at: Some(now), ..Self::volatile() }
    }

    /// Record `id` until `until`: `Ok(true)` the first time, `Ok(false)`
    /// for a replay or a proof made before the store opened.
    pub fn remember(&self, id: &str, issued_at: i64, until: i64, now: i64) -> Result<bool, StoreError> {
        if self.opened_at.is_some_and(|opened| issued_at < opened) {
            return Ok(false);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(first) = seen.by_expiry.first().filter(|(expiry, _)| *expiry < now).cloned() {
            seen.by_expiry.remove(&first);
            seen.ids.remove(&first.1);
        }
        if seen.ids.contains(id) {
            return Ok(false);
        }
        if seen.ids.len() >= self.capacity {
            return Err(StoreError("too many DPoP proofs in flight to remember another; try again shortly".into()));
        }
        seen.ids.insert(id.to_string());
        seen.by_expiry.insert((until, id.to_string()));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn an_id_is_remembered_until_its_proof_aged_out() {
        let ledger = ProofLedger::volatile();
        assert!(ledger.remember("a", NOW, NOW + 60, NOW).unwrap());
        assert!(!ledger.remember("a", NOW, NOW + 60, NOW + 60).unwrap());
        assert!(ledger.remember("a", NOW + 61, NOW + 121, NOW + 61).unwrap(), "forgotten once its proof could no longer pass");
        assert!(ledger.remember("made before any restart", NOW - 30, NOW + 30, NOW).unwrap());
    }

    #[test]
    fn a_durable_stores_ledger_refuses_proofs_made_before_it_opened() {
        let ledger = ProofLedger::for_durable_store(NOW);
        assert!(!ledger.remember("old", NOW - 1, NOW + 59, NOW).unwrap());
        assert!(ledger.remember("new", NOW, NOW + 60, NOW).unwrap());
    }

    #[test]
    fn a_full_ledger_refuses_rather_than_forgets() {
        let ledger = ProofLedger { capacity: 2, ..ProofLedger::volatile() };
        assert!(ledger.remember("a", NOW, NOW + 10, NOW).unwrap());
        assert!(ledger.remember("b", NOW, NOW + 60, NOW).unwrap());
        assert!(ledger.remember("c", NOW, NOW + 60, NOW).is_err());
        assert!(!ledger.remember("b", NOW, NOW + 60, NOW).unwrap(), "a replay is still a replay when full");
        assert!(ledger.remember("c", NOW, NOW + 60, NOW + 11).unwrap(), "room once a proof aged out");
    }
}
