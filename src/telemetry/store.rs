//! A [`Store`] that opens a `store` span around every call, so exported
//! traces show where a request waited on the store. Wrapped around the
//! configured store only when traces are built in (`otel`), so the default
//! build pays nothing for it.

use crate::revocations::{Revocation, RevocationEntry, RevocationList};
use crate::store::{BoxedTask, ConsumedRefresh, Consumption, HandoffCode, SessionRecord, Store, StoreFuture};
use std::sync::Arc;
use tracing::Instrument;

/// `inner`, with a span per call.
pub struct TracedStore {
    inner: Arc<dyn Store>,
}

/// Wrap `store` so each call is a span named `store` with its operation.
pub fn traced(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(TracedStore { inner: store })
}

fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!("store", operation, otel.kind = "client")
}

impl Store for TracedStore {
    fn consume_refresh(&self, sid: &str, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        Box::pin(self.inner.consume_refresh(sid, jti, record).instrument(span("consume_refresh")))
    }

    fn consumed_refresh(&self, sid: &str, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>> {
        Box::pin(self.inner.consumed_refresh(sid, jti).instrument(span("consumed_refresh")))
    }

    fn revoke(&self, revocations: Vec<Revocation>) -> StoreFuture<'_, Vec<RevocationEntry>> {
        Box::pin(self.inner.revoke(revocations).instrument(span("revoke")))
    }

    fn last_sequence(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.inner.last_sequence().instrument(span("last_sequence")))
    }

    fn revocations_since(&self, after: u64) -> StoreFuture<'_, Vec<RevocationEntry>> {
        Box::pin(self.inner.revocations_since(after).instrument(span("revocations_since")))
    }

    fn track_session(&self, record: SessionRecord, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>> {
        Box::pin(self.inner.track_session(record, limit).instrument(span("track_session")))
    }

    fn sessions_of(&self, sub: &str) -> StoreFuture<'_, Vec<SessionRecord>> {
        Box::pin(self.inner.sessions_of(sub).instrument(span("sessions_of")))
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.inner.purge_expired(now).instrument(span("purge_expired")))
    }

    fn put_code(&self, code_id: &str, record: HandoffCode) -> StoreFuture<'_, ()> {
        Box::pin(self.inner.put_code(code_id, record).instrument(span("put_code")))
    }

    fn redeem_code(&self, code_id: &str) -> StoreFuture<'_, Option<HandoffCode>> {
        Box::pin(self.inner.redeem_code(code_id).instrument(span("redeem_code")))
    }

    fn remember_proof(&self, id: &str, issued_at: i64, until: i64) -> StoreFuture<'_, bool> {
        Box::pin(self.inner.remember_proof(id, issued_at, until).instrument(span("remember_proof")))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // Readiness probes ask often; no span for them.
        self.inner.ping()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn max_staleness(&self) -> Option<std::time::Duration> {
        self.inner.max_staleness()
    }

    fn follower(self: Arc<Self>, list: Arc<RevocationList>) -> Option<BoxedTask> {
        self.inner.clone().follower(list)
    }
}
