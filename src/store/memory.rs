//! An in-memory [`Store`]: the reference behaviour, for unit tests and for
//! measuring what durability costs. Nothing survives a restart.

use super::proofs::ProofLedger;
use super::{ConsumedRefresh, Consumption, HandoffCode, SessionRecord, Store, StoreFuture};
use crate::clock::{SharedClock, SystemClock};
use crate::revocations::{Revocation, RevocationEntry};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    revocations: BTreeMap<u64, RevocationEntry>,
    consumed: HashMap<String, ConsumedRefresh>,
    sessions: HashMap<String, Vec<SessionRecord>>,
    codes: HashMap<String, HandoffCode>,
}

/// A store that lives and dies with the process.
pub struct MemoryStore {
    state: Mutex<State>,
    /// Stamps consumptions (a test's manual clock, the app's clock).
    clock: SharedClock,
    /// DPoP proofs seen (see [`super::proofs`]).
    proofs: ProofLedger,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_clock(std::sync::Arc::new(SystemClock))
    }

    /// A store that stamps consumptions with `clock`.
    pub fn with_clock(clock: SharedClock) -> Self {
        Self { state: Mutex::default(), clock, proofs: ProofLedger::volatile() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Store for MemoryStore {
    fn consume_refresh(&self, _sid: &str, jti: &str, mut record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        let result = self.with(|state| match state.consumed.get(jti) {
            Some(existing) => Consumption::Already(existing.clone()),
            None => {
                record.consumed_at_ms = self.clock.now().timestamp_millis();
                state.consumed.insert(jti.to_string(), record);
                Consumption::First
            }
        });
        Box::pin(async move { Ok(result) })
    }

    fn consumed_refresh(&self, _sid: &str, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>> {
        let result = self.with(|state| state.consumed.get(jti).cloned());
        Box::pin(async move { Ok(result) })
    }

    fn revoke(&self, revocations: Vec<Revocation>) -> StoreFuture<'_, Vec<RevocationEntry>> {
        let entries = self.with(|state| {
            revocations
                .into_iter()
                .map(|Revocation { covers, until }| {
                    state.next_seq += 1;
                    let entry = RevocationEntry { seq: state.next_seq, covers, expires_at: until };
                    state.revocations.insert(entry.seq, entry.clone());
                    entry
                })
                .collect()
        });
        Box::pin(async move { Ok(entries) })
    }

    fn last_sequence(&self) -> StoreFuture<'_, u64> {
        let last = self.with(|state| state.next_seq);
        Box::pin(async move { Ok(last) })
    }

    fn revocations_since(&self, after: u64) -> StoreFuture<'_, Vec<RevocationEntry>> {
        let entries = self.with(|state| state.revocations.range(after + 1..).map(|(_, e)| e.clone()).collect());
        Box::pin(async move { Ok(entries) })
    }

    fn track_session(&self, record: SessionRecord, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>> {
        let evicted = self.with(|state| {
            let sessions = state.sessions.entry(record.sub.clone()).or_default();
            sessions.push(record.clone());
            evict_oldest(sessions, &record.client_id, limit)
        });
        Box::pin(async move { Ok(evicted) })
    }

    fn sessions_of(&self, sub: &str) -> StoreFuture<'_, Vec<SessionRecord>> {
        let sessions = self.with(|state| state.sessions.get(sub).cloned().unwrap_or_default());
        Box::pin(async move { Ok(sessions) })
    }

    fn purge_expired(&self, cutoff: i64) -> StoreFuture<'_, usize> {
        let now = cutoff;
        let removed = self.with(|state| {
            let before = state.revocations.len() + state.consumed.len() + state.sessions.values().map(Vec::len).sum::<usize>();
            state.revocations.retain(|_, e| e.expires_at >= now);
            state.consumed.retain(|_, c| c.expires_at >= now);
            state.sessions.values_mut().for_each(|list| list.retain(|s| s.expires_at >= now));
            state.sessions.retain(|_, list| !list.is_empty());
            state.codes.retain(|_, c| c.expires_at >= now);
            let after = state.revocations.len() + state.consumed.len() + state.sessions.values().map(Vec::len).sum::<usize>();
            before - after
        });
        Box::pin(async move { Ok(removed) })
    }

    fn put_code(&self, code_id: &str, record: HandoffCode) -> StoreFuture<'_, ()> {
        self.with(|state| state.codes.insert(code_id.to_string(), record));
        Box::pin(async { Ok(()) })
    }

    fn redeem_code(&self, code_id: &str) -> StoreFuture<'_, Option<HandoffCode>> {
        let before = self.with(|state| {
            state.codes.get_mut(code_id).map(|record| {
                let before = record.clone();
                record.redeemed = true;
                before
            })
        });
        Box::pin(async move { Ok(before) })
    }

    fn remember_proof(&self, id: &str, issued_at: i64, until: i64) -> StoreFuture<'_, bool> {
        let first = self.proofs.remember(id, issued_at, until, self.clock.now().timestamp());
        Box::pin(async move { first })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "memory (not durable: for tests and benchmarks)".into()
    }
}

/// Keep at most `limit` sessions of `client_id` in `sessions`, whose last
/// element is the session being added: that one always stays, and of the
/// others the oldest by creation stamp go first (then by second, then by
/// sid, for records without a stamp). Returns the evicted ones.
pub(crate) fn evict_oldest(sessions: &mut Vec<SessionRecord>, client_id: &str, limit: usize) -> Vec<SessionRecord> {
    let Some(added) = sessions.last().map(|s| s.sid.clone()) else { return Vec::new() };
    let mut others: Vec<&SessionRecord> = sessions.iter().filter(|s| s.client_id == client_id && s.sid != added).collect();
    let keep = limit.saturating_sub(1);
    if others.len() <= keep {
        return Vec::new();
    }
    others.sort_by(|a, b| (a.created_stamp, a.created_at, &a.sid).cmp(&(b.created_stamp, b.created_at, &b.sid)));
    let evicted: Vec<SessionRecord> = others[..others.len() - keep].iter().map(|s| (*s).clone()).collect();
    sessions.retain(|s| !evicted.iter().any(|e| e.sid == s.sid));
    evicted
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        contract::consumption_happens_once(&MemoryStore::new()).await;
        contract::revocations_get_increasing_sequence_numbers(&MemoryStore::new()).await;
        contract::expired_entries_are_purged(&MemoryStore::new()).await;
        contract::session_index_keeps_the_newest_within_the_limit(&MemoryStore::new()).await;
        contract::session_index_never_evicts_the_session_being_added(&MemoryStore::new()).await;
        contract::a_code_is_redeemed_once(&MemoryStore::new()).await;
        contract::a_dpop_proof_is_remembered_once(&MemoryStore::new()).await;
    }
}
