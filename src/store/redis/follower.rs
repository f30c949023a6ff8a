//! The follower: keeps this replica's in-memory revocation list current
//! with what every replica writes, by loading the log and tailing the stream.
//! Every round it also checks the store's epoch: a Redis that lost its data
//! must not pass for current (see [`crate::store::epoch`]).

use super::connection::{Connection, FOLLOW_BLOCK, connect, store_error};
use super::scripts::parse_member;
use super::{RedisStore, StoreError};
use crate::revocations::RevocationList;
use redis::AsyncCommands;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use std::sync::Arc;
use std::time::Duration;

impl RedisStore {
    /// Keep `mirror` current with what every replica writes, reconnecting
    /// with backoff, until the app stops this task.
    pub(super) async fn follow_forever(self: Arc<Self>, mirror: Arc<RevocationList>) {
        let mut failures = 0u32;
        loop {
            match self.follow(&mirror).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(%error, "lost the revocation stream; reconnecting (checks that need fresh revocations answer 503 meanwhile)");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(5)))).await;
        }
    }

    /// Fail (and make the list stale at once) while the store holds another
    /// epoch than this replica accepted, or none: its data was lost, and
    /// checks must not trust a list that may miss what it held until the
    /// app has installed the global not-before and accepted the new epoch.
    async fn check_epoch(&self, connection: &mut Connection, mirror: &RevocationList) -> Result<(), StoreError> {
        let Some(expected) = self.expected_epoch() else { return Ok(()) };
        let found = self.current_epoch(connection).await?;
        if found.as_ref() == Some(&expected) {
            return Ok(());
        }
        mirror.mark_synced(0);
        Err(StoreError(match found {
            None => format!("the store lost its epoch (was {}): its data was lost", expected.id),
            Some(other) => format!("the store's epoch changed from {} to {}: its data was lost or replaced", expected.id, other.id),
        }))
    }

    /// Load everything, then tail the stream until an error.
    async fn follow(&self, mirror: &RevocationList) -> Result<(), StoreError> {
        let mut connection = connect(&self.config, FOLLOW_BLOCK).await?;
        self.check_epoch(&mut connection, mirror).await?;
        let stream = self.keys.revocations("stream");
        // Remember where the stream ends before reading the log, so nothing
        // written in between is missed (re-reading it is harmless).
        let last: StreamRangeReply = connection.xrevrange_count(&stream, "+", "-", 1).await.map_err(store_error)?;
        let mut cursor = last.ids.first().map(|entry| entry.id.clone()).unwrap_or_else(|| "0-0".into());
        let last: Option<u64> = connection.get(self.keys.revocations("seq")).await.map_err(store_error)?;
        let snapshot = self.log_range(&mut connection, 0).await?;
        mirror.load(&snapshot, last.unwrap_or(0));
        mirror.mark_synced(chrono::Utc::now().timestamp_millis());
        let options = StreamReadOptions::default().block(FOLLOW_BLOCK.as_millis() as usize).count(1000);
        loop {
            let reply: Option<StreamReadReply> = connection.xread_options(&[&stream], &[&cursor], &options).await.map_err(store_error)?;
            let mut entries = Vec::new();
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for item in key.ids {
                    if let Some(member) = item.get::<String>("e") {
                        entries.push(parse_member(&member)?);
                    }
                    cursor = item.id;
                }
            }
            if !entries.is_empty() {
                mirror.follow(&entries);
            }
            self.check_epoch(&mut connection, mirror).await?;
            mirror.mark_synced(chrono::Utc::now().timestamp_millis());
        }
    }
}
