//! `GET /v1/revocations/stream`: the revocation list as Server-Sent Events —
//! the backlog after a cursor, one `ready` event, then each entry as it is
//! recorded — at a cost per connection that does not grow with the list.
//!
//! - **No copy of the list.** The backlog is read lazily, a page of
//!   [`PAGE`] entries at a time under the list's read lock, and only when
//!   the previous page has been handed to hyper. hyper asks for the next
//!   event only when its small write buffer has room, so a reader that
//!   does not keep up holds at most a page and hyper's buffer.
//! - **A reader that stops reading is closed.** Its writes stop making
//!   progress; after `feed.slow_consumer_timeout` the connection is closed
//!   ([`crate::app::WriteStallLimit`]), which frees its slot.
//! - **Caps.** At most `feed.max_streams` streams in all and
//!   `feed.max_streams_per_peer` from one peer (an IPv4 address, or an IPv6
//!   /64, which one host usually holds whole); beyond either, 429 with
//!   `Retry-After`. A verifier refused a stream polls the document instead.
//! - **Live entries** come from the list's broadcast channel, subscribed
//!   before the backlog is read so nothing falls in between; one that falls
//!   behind the channel goes back to reading pages from its cursor.
//!
//! `Last-Event-ID` (or `?after=`) resumes after a cursor, a comment every
//! 15 s keeps the connection alive, and the stream ends when the server
//! starts shutting down.

use super::super::AppState;
use super::super::error::Problem;
use super::{authorize, cursor};
use crate::app::listener::Connection;
use crate::config::FeedConfig;
use crate::http::throttle::Peer;
use crate::revocations::RevocationEntry;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

/// Entries read from the list at a time.
pub const PAGE: usize = 256;

/// How long a refused reader is asked to wait before trying again.
const RETRY_AFTER_SECONDS: u64 = 10;

/// The open streams, in all and per peer.
#[derive(Debug, Default)]
pub struct StreamSlots {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

impl StreamSlots {
    /// Count a stream from `peer` in, or say which cap it would exceed.
    fn enter(&self, peer: Option<IpAddr>, feed: &FeedConfig) -> Result<(), &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= feed.max_streams {
            return Err("too many revocation streams are open; retry later or poll GET /v1/revocations");
        }
        if let Some(peer) = peer {
            let from_peer = open.per_peer.entry(peer).or_insert(0);
            if *from_peer >= feed.max_streams_per_peer {
                return Err("this address has too many revocation streams open; close one or poll GET /v1/revocations");
            }
            *from_peer += 1;
        }
        open.total += 1;
        Ok(())
    }

    fn leave(&self, peer: Option<IpAddr>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(peer) = peer
            && let Some(from_peer) = open.per_peer.get_mut(&peer)
        {
            *from_peer -= 1;
            if *from_peer == 0 {
                open.per_peer.remove(&peer);
            }
        }
    }

    /// Open streams, in all.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// The peer a cap counts: an IPv4 address, or the /64 of an IPv6 one.
fn peer_key(peer: SocketAddr) -> IpAddr {
    match peer.ip().to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// A stream's place under the caps, given back when the stream is dropped.
struct Slot {
    state: AppState,
    peer: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.feed_streams.leave(self.peer);
    }
}

/// Where a stream is.
struct Follow {
    slot: Slot,
    /// The last entry sent (or the cursor resumed from).
    cursor: u64,
    /// The page being sent.
    pending: std::vec::IntoIter<RevocationEntry>,
    /// Reading pages from the list rather than the live channel.
    catching_up: bool,
    ready_sent: bool,
    live: broadcast::Receiver<RevocationEntry>,
    shutdown: watch::Receiver<bool>,
}

impl Follow {
    /// The next event, or `None` once the server shuts down.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(entry) = self.pending.next() {
                return Some((Ok(revocation_event(&entry)), self));
            }
            if *self.shutdown.borrow() {
                return None;
            }
            if self.catching_up {
                let page = self.slot.state.authority.revocations_page(self.cursor, PAGE);
                if let Some(last) = page.entries.last() {
                    self.cursor = last.seq;
                    self.pending = page.entries.into_iter();
                    continue;
                }
                self.catching_up = false;
                self.cursor = self.cursor.max(page.cursor);
                if !std::mem::replace(&mut self.ready_sent, true) {
                    let ready = Event::default().event("ready").data(format!("{{\"cursor\":{}}}", page.cursor));
                    return Some((Ok(ready), self));
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.changed() => return None,
                received = self.live.recv() => match received {
                    Ok(entry) if entry.seq <= self.cursor => {}
                    Ok(entry) => {
                        self.cursor = entry.seq;
                        return Some((Ok(revocation_event(&entry)), self));
                    }
                    // Behind the channel: read what was missed from the list.
                    Err(RecvError::Lagged(_)) => self.catching_up = true,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn revocation_event(entry: &RevocationEntry) -> Event {
    Event::default().id(entry.seq.to_string()).event("revocation").data(serde_json::to_string(entry).expect("entry serializes"))
}

pub async fn stream(
    State(state): State<AppState>,
    client_peer: Peer,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    authorize(&state, &headers, client_peer)?;
    state.authority.require_fresh_revocations()?;
    let after = cursor(query.as_deref(), &headers)?;
    let peer = connection.as_ref().map(|Extension(connection)| peer_key(connection.peer));
    state
        .feed_streams
        .enter(peer, &state.config().feed)
        .map_err(|detail| Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", detail).with_retry_after(RETRY_AFTER_SECONDS))?;
    let slot = Slot { state: state.clone(), peer };
    if let Some(Extension(connection)) = &connection {
        connection.stall.arm(state.config().feed.slow_consumer_timeout);
    }
    let follow = Follow {
        // Subscribe before reading the backlog so nothing falls in between.
        live: state.authority.subscribe_revocations(),
        shutdown: state.shutdown_signal(),
        slot,
        cursor: after,
        pending: Vec::new().into_iter(),
        catching_up: true,
        ready_sent: false,
    };
    let events = stream::unfold(follow, Follow::next);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(max_streams: usize, max_streams_per_peer: usize) -> FeedConfig {
        FeedConfig { max_streams, max_streams_per_peer, ..crate::config::Config::defaults().feed }
    }

    #[test]
    fn the_caps_count_in_all_and_per_peer_and_free_on_leave() {
        let slots = StreamSlots::default();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        let caps = feed(3, 2);
        assert!(slots.enter(a, &caps).is_ok());
        assert!(slots.enter(a, &caps).is_ok());
        assert!(slots.enter(a, &caps).unwrap_err().contains("this address"));
        assert!(slots.enter(b, &caps).is_ok());
        assert!(slots.enter(b, &caps).unwrap_err().contains("too many revocation streams are open"));
        slots.leave(a);
        assert!(slots.enter(b, &caps).is_ok());
        assert_eq!(slots.open(), 3);
        for peer in [a, b, b] {
            slots.leave(peer);
        }
        assert_eq!(slots.open(), 0);
        assert!(slots.open.lock().unwrap().per_peer.is_empty(), "no peer is remembered once its streams are gone");
    }

    #[test]
    fn an_ipv6_peer_is_its_64_and_a_mapped_ipv4_peer_its_address() {
        let v6 = |text: &str| peer_key(SocketAddr::new(text.parse().unwrap(), 1));
        assert_eq!(v6("2001:db8:1:2:aaaa::1"), v6("2001:db8:1:2:bbbb::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
