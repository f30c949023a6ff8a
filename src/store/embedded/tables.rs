//! The tables and what one write does to them: every write is an [`Op`];
//! [`apply`] runs a batch of them in one redb transaction and yields each
//! one's [`Outcome`], recording every put and remove in the batch's
//! commit-log frame through [`Tables`] (which also replays a frame read
//! back from the log). Consumptions are the exception: they go to the
//! frame and then to [`super::deferred`], and reach redb in chunks
//! ([`file_deferred`]).

use super::deferred::Deferred;
use super::log::{Effect, Frame, Key, Table, Value};
use super::store_error;
use crate::clock::SharedClock;
use crate::revocations::{Revocation, RevocationEntry};
use crate::store::memory::evict_oldest;
use crate::store::{ConsumedRefresh, Consumption, HandoffCode, SessionRecord, StoreError};
use redb::{ReadableTable, TableDefinition};

pub(super) const REVOCATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revocations");
pub(super) const CONSUMED: TableDefinition<&str, &[u8]> = TableDefinition::new("consumed_refresh");
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("handoff_codes");

/// One write, as data.
pub(super) enum Op {
    Consume { jti: String, record: ConsumedRefresh },
    Revoke { revocations: Vec<Revocation> },
    TrackSession { record: SessionRecord, limit: usize },
    Purge { cutoff: i64 },
    PutCode { code_id: String, record: HandoffCode },
    RedeemCode { code_id: String },
}

/// What a write produced, sent to its caller once the batch commits.
pub(super) enum Outcome {
    Consumption(Consumption),
    Revoked(Vec<RevocationEntry>),
    Evicted(Vec<SessionRecord>),
    Purged(usize),
    Stored,
    Redeemed(Option<HandoffCode>),
}

/// The tables of one write transaction, each opened the first time an op
/// of the batch needs it: opening a table and flushing its root at commit
/// cost more than a consumption's own insert, and a batch of refreshes
/// touches one table. Every put and remove goes through [`Tables::put`]
/// and [`Tables::remove`], which record it in the batch's commit-log frame
/// (none while a frame is being replayed).
pub(super) struct Tables<'t, 'f> {
    txn: &'t redb::WriteTransaction,
    frame: Option<&'f mut Frame>,
    /// Whether a put or remove reached redb.
    changed: bool,
    revocations: Option<redb::Table<'t, u64, &'static [u8]>>,
    consumed: Option<redb::Table<'t, &'static str, &'static [u8]>>,
    sessions: Option<redb::Table<'t, &'static str, &'static [u8]>>,
    meta: Option<redb::Table<'t, &'static str, u64>>,
    codes: Option<redb::Table<'t, &'static str, &'static [u8]>>,
}

/// The table in `slot`, opened from `txn` if it is not yet.
fn opened<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'t redb::WriteTransaction,
    slot: &'s mut Option<redb::Table<'t, K, V>>,
    definition: TableDefinition<K, V>,
) -> Result<&'s mut redb::Table<'t, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(definition).map_err(store_error)?);
    }
    Ok(slot.as_mut().expect("opened above"))
}

impl<'t, 'f> Tables<'t, 'f> {
    pub(super) fn new(txn: &'t redb::WriteTransaction, frame: Option<&'f mut Frame>) -> Self {
        Self { txn, frame, changed: false, revocations: None, consumed: None, sessions: None, meta: None, codes: None }
    }
    fn consumed(&mut self) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
        opened(self.txn, &mut self.consumed, CONSUMED)
    }
    fn sessions(&mut self) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
        opened(self.txn, &mut self.sessions, SESSIONS)
    }
    fn meta(&mut self) -> Result<&mut redb::Table<'t, &'static str, u64>, StoreError> {
        opened(self.txn, &mut self.meta, META)
    }
    fn codes(&mut self) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
        opened(self.txn, &mut self.codes, CODES)
    }

    /// The table of `table` whose keys are names and values bytes.
    fn named(&mut self, table: Table) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, StoreError> {
        match table {
            Table::Consumed => self.consumed(),
            Table::Sessions => self.sessions(),
            Table::Codes => self.codes(),
            Table::Revocations | Table::Meta => Err(StoreError(format!("{table:?} is not keyed by name"))),
        }
    }

    /// Put `value` at `key` in `table`, and record it.
    pub(super) fn put(&mut self, table: Table, key: Key<'_>, value: Value<'_>) -> Result<(), StoreError> {
        match (table, key, value) {
            (Table::Revocations, Key::Seq(seq), Value::Bytes(bytes)) => {
                opened(self.txn, &mut self.revocations, REVOCATIONS)?.insert(seq, bytes).map_err(store_error)?;
            }
            (Table::Meta, Key::Name(name), Value::Number(n)) => {
                self.meta()?.insert(name, n).map_err(store_error)?;
            }
            (_, Key::Name(name), Value::Bytes(bytes)) => {
                self.named(table)?.insert(name, bytes).map_err(store_error)?;
            }
            _ => return Err(StoreError(format!("a put into {table:?} of the wrong key or value type"))),
        }
        self.changed = true;
        self.log_only(table, key, value);
        Ok(())
    }

    /// Record a put in the frame without making it in redb (a deferred
    /// consumption).
    fn log_only(&mut self, table: Table, key: Key<'_>, value: Value<'_>) {
        if let Some(frame) = self.frame.as_deref_mut() {
            frame.put(table, key, value);
        }
    }

    /// Remove `key` from `table`, and record it.
    pub(super) fn remove(&mut self, table: Table, key: Key<'_>) -> Result<(), StoreError> {
        match (table, key) {
            (Table::Revocations, Key::Seq(seq)) => {
                opened(self.txn, &mut self.revocations, REVOCATIONS)?.remove(seq).map_err(store_error)?;
            }
            (Table::Meta, Key::Name(name)) => {
                self.meta()?.remove(name).map_err(store_error)?;
            }
            (_, Key::Name(name)) => {
                self.named(table)?.remove(name).map_err(store_error)?;
            }
            _ => return Err(StoreError(format!("a remove from {table:?} of the wrong key type"))),
        }
        self.changed = true;
        if let Some(frame) = self.frame.as_deref_mut() {
            frame.remove(table, key);
        }
        Ok(())
    }

    /// Apply one effect read back from the log.
    pub(super) fn replay(&mut self, effect: Effect<'_>) -> Result<(), StoreError> {
        match effect {
            Effect::Put(table, key, value) => self.put(table, key, value),
            Effect::Remove(table, key) => self.remove(table, key),
        }
    }

    /// Remove every entry that expired before `cutoff`; how many.
    fn purge(&mut self, cutoff: i64) -> Result<usize, StoreError> {
        let expired = |bytes: &[u8]| serde_json::from_slice::<Expiry>(bytes).is_ok_and(|e| e.expires_at < cutoff);
        let mut seqs = Vec::new();
        for item in opened(self.txn, &mut self.revocations, REVOCATIONS)?.iter().map_err(store_error)? {
            let (seq, value) = item.map_err(store_error)?;
            if expired(value.value()) {
                seqs.push(seq.value());
            }
        }
        let mut removed = seqs.len();
        for seq in seqs {
            self.remove(Table::Revocations, Key::Seq(seq))?;
        }
        for table in [Table::Consumed, Table::Sessions, Table::Codes] {
            let mut names = Vec::new();
            for item in self.named(table)?.iter().map_err(store_error)? {
                let (name, value) = item.map_err(store_error)?;
                if expired(value.value()) {
                    names.push(name.value().to_string());
                }
            }
            removed += names.len();
            for name in names {
                self.remove(table, Key::Name(&name))?;
            }
        }
        Ok(removed)
    }
}

/// What a batch did: each op's outcome, the consumptions it made (in the
/// frame, for [`super::deferred`] once the frame is on disk, not in redb),
/// and whether it changed redb itself (when not, its transaction is
/// aborted instead of committed).
pub(super) struct Applied {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) consumed: Vec<(String, Vec<u8>)>,
    pub(super) changed_tables: bool,
    /// Whether the deferred consumptions were put into redb (by a purge,
    /// which must see them): once committed, they leave the map.
    pub(super) filed_deferred: bool,
}

/// Apply a batch in `txn` (not committed here; on an error the caller
/// drops it), recording every put and remove in `frame`. A consumption
/// is looked for among this batch's, then the deferred ones, then in redb.
/// Each consumption recorded here is stamped with the writer's clock just
/// before the commit, so a retry's grace window starts when the token was
/// really consumed, however long the request waited for the writer; it is
/// written then, once, and a later op of the same batch finds it in
/// `consumed_here`.
pub(super) fn apply(
    txn: &redb::WriteTransaction,
    frame: &mut Frame,
    ops: Vec<Op>,
    clock: &SharedClock,
    deferred: &Deferred,
) -> Result<Applied, StoreError> {
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut consumed_here: Vec<(String, ConsumedRefresh)> = Vec::new();
    let mut consumed_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut filed_deferred = false;
    let mut tables = Tables::new(txn, Some(frame));
    for op in ops {
        let outcome = match op {
            Op::Consume { jti, record } => {
                let earlier: Option<ConsumedRefresh> = match consumed_index.get(&jti) {
                    Some(&at) => Some(consumed_here[at].1.clone()),
                    None => match deferred.get(&jti) {
                        Some(found) => Some(serde_json::from_slice(&found).map_err(store_error)?),
                        None => match tables.consumed()?.get(jti.as_str()).map_err(store_error)? {
                            Some(found) => Some(serde_json::from_slice(found.value()).map_err(store_error)?),
                            None => None,
                        },
                    },
                };
                match earlier {
                    Some(earlier) => Outcome::Consumption(Consumption::Already(earlier)),
                    None => {
                        consumed_index.insert(jti.clone(), consumed_here.len());
                        consumed_here.push((jti, record));
                        Outcome::Consumption(Consumption::First)
                    }
                }
            }
            Op::Revoke { revocations: items } => {
                let mut next = tables
                    .meta()?
                    .get("next_seq")
                    .map_err(store_error)?
                    .map(|v| v.value())
                    .ok_or_else(|| StoreError("the sequence counter is missing".into()))?;
                let mut entries = Vec::with_capacity(items.len());
                for Revocation { covers, until } in items {
                    let entry = RevocationEntry { seq: next, covers, expires_at: until };
                    let bytes = serde_json::to_vec(&entry).map_err(store_error)?;
                    tables.put(Table::Revocations, Key::Seq(next), Value::Bytes(&bytes))?;
                    entries.push(entry);
                    next += 1;
                }
                tables.put(Table::Meta, Key::Name("next_seq"), Value::Number(next))?;
                Outcome::Revoked(entries)
            }
            Op::TrackSession { record, limit } => {
                let prefix = format!("{}\u{0}", record.sub);
                let mut list: Vec<SessionRecord> = Vec::new();
                for item in tables.sessions()?.range(prefix.as_str()..).map_err(store_error)? {
                    let (key, value) = item.map_err(store_error)?;
                    if !key.value().starts_with(&prefix) {
                        break;
                    }
                    list.push(serde_json::from_slice(value.value()).map_err(store_error)?);
                }
                list.push(record.clone());
                let evicted = evict_oldest(&mut list, &record.client_id, limit);
                let bytes = serde_json::to_vec(&record).map_err(store_error)?;
                tables.put(Table::Sessions, Key::Name(&format!("{prefix}{}", record.sid)), Value::Bytes(&bytes))?;
                for gone in &evicted {
                    tables.remove(Table::Sessions, Key::Name(&format!("{prefix}{}", gone.sid)))?;
                }
                Outcome::Evicted(evicted)
            }
            Op::Purge { cutoff } => {
                if !filed_deferred {
                    // Already in the log: into redb without a new frame entry.
                    file_deferred(tables.consumed()?, deferred, &[])?;
                    filed_deferred = true;
                }
                Outcome::Purged(tables.purge(cutoff)?)
            }
            Op::PutCode { code_id, record } => {
                let bytes = serde_json::to_vec(&record).map_err(store_error)?;
                tables.put(Table::Codes, Key::Name(&code_id), Value::Bytes(&bytes))?;
                Outcome::Stored
            }
            Op::RedeemCode { code_id } => {
                let before: Option<HandoffCode> = match tables.codes()?.get(code_id.as_str()).map_err(store_error)? {
                    Some(found) => Some(serde_json::from_slice(found.value()).map_err(store_error)?),
                    None => None,
                };
                if let Some(before) = &before {
                    let used = serde_json::to_vec(&HandoffCode { redeemed: true, ..before.clone() }).map_err(store_error)?;
                    tables.put(Table::Codes, Key::Name(&code_id), Value::Bytes(&used))?;
                }
                Outcome::Redeemed(before)
            }
        };
        outcomes.push(outcome);
    }
    let changed_tables = tables.changed || filed_deferred;
    let mut consumed = Vec::with_capacity(consumed_here.len());
    if !consumed_here.is_empty() {
        let stamp = clock.now().timestamp_millis();
        for (jti, record) in &mut consumed_here {
            record.consumed_at_ms = stamp;
            let bytes = record.to_json();
            tables.log_only(Table::Consumed, Key::Name(jti), Value::Bytes(&bytes));
            consumed.push((jti.clone(), bytes));
        }
        // A later op of this batch that saw one of these consumptions
        // sees the stamp too.
        for outcome in &mut outcomes {
            if let Outcome::Consumption(Consumption::Already(earlier)) = outcome
                && consumed_here.iter().any(|(_, r)| r.child_jti == earlier.child_jti)
            {
                earlier.consumed_at_ms = stamp;
            }
        }
    }
    Ok(Applied { outcomes, consumed, changed_tables, filed_deferred })
}

/// Put every deferred consumption, and `fresh` ones not yet deferred, into
/// `table` (the consumptions' table of a write transaction).
pub(super) fn file_deferred(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    deferred: &Deferred,
    fresh: &[(String, Vec<u8>)],
) -> Result<(), StoreError> {
    deferred.for_each(|jti, record| table.insert(jti, record).map(drop).map_err(store_error))?;
    for (jti, record) in fresh {
        table.insert(jti.as_str(), record.as_slice()).map_err(store_error)?;
    }
    Ok(())
}

/// The one field every stored value has.
#[derive(serde::Deserialize)]
pub(super) struct Expiry {
    pub(super) expires_at: i64,
}

pub(super) fn unexpected() -> StoreError {
    StoreError("the writer answered with the wrong kind of outcome".into())
}
