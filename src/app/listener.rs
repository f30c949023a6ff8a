//! Serving HTTP/1 connections with bounds an anonymous peer cannot stretch.
//!
//! `axum::serve` has no timer, so hyper's header-read timeout never fires,
//! idle keep-alive connections live forever and nothing caps how many are
//! open: a few hundred half-sent requests or a thousand idle sockets stop
//! the service. This loop serves each connection with hyper directly:
//!
//! - **header-read timeout** (hyper's, with a tokio timer): a request's
//!   headers must arrive within it, counted from the accept or from the end
//!   of the previous response, so a slowloris socket is closed;
//! - **keep-alive idle timeout**: a connection with no request in flight is
//!   closed once it has been idle that long;
//! - **connection cap**: at the cap, the connection idle the longest is
//!   closed to make room; only when every connection has a request in
//!   flight is the new one shed with a canned `503` and `Retry-After`;
//! - **accept errors** (out of file descriptors) are logged, at most once a
//!   second, and the loop backs off instead of spinning;
//! - **drain**: on shutdown the listener stops accepting, idle connections
//!   close, requests in flight get until the drain deadline, and whatever
//!   is left is cut off, so SIGTERM always ends.
//!
//! Every request carries its [`Connection`]: the peer's address, and the
//! connection's [`WriteStallLimit`] for handlers of long responses to arm
//! (one extension, not one each: every request pays for inserting them).

use super::write_stall::{StallGuarded, WriteStallLimit};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

/// What a request knows of the connection it came on; in every request's
/// extensions (none when the router is called in-process).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Armed by a handler whose response may outlast a peer that stops reading.
    pub stall: WriteStallLimit,
}

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
}

/// What the listener knows about one open connection.
struct Tracked {
    accepted: Instant,
    /// Requests whose response body has not finished.
    in_flight: AtomicUsize,
    /// Milliseconds since `accepted` when the last response finished (0:
    /// none yet; the header-read timeout governs until the first request).
    idle_since_ms: AtomicU64,
    close: Notify,
}

impl Tracked {
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(now.saturating_duration_since(self.accepted + since))
    }
}

/// The open connections, for the cap and the idle sweep.
#[derive(Default)]
struct Registry {
    connections: Mutex<HashMap<u64, Arc<Tracked>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Tracked>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            close: Notify::new(),
        });
        self.lock().insert(id, tracked.clone());
        (id, tracked)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracked>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close the connection idle the longest, and stop counting it at once
    /// (its task ends at its next poll); false if none is idle.
    fn evict_idlest(&self) -> bool {
        let now = Instant::now();
        let mut connections = self.lock();
        let idlest = connections.iter().filter_map(|(id, c)| c.idle_for(now).map(|idle| (idle, *id))).max_by_key(|(idle, _)| *idle);
        match idlest.and_then(|(_, id)| connections.remove(&id)) {
            Some(connection) => {
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Close every connection idle longer than `limit` since its last response.
    fn sweep(&self, limit: Duration) {
        let now = Instant::now();
        for connection in self.lock().values() {
            let served = connection.idle_since_ms.load(Ordering::Acquire) > 0;
            if served && connection.idle_for(now).is_some_and(|idle| idle >= limit) {
                connection.close.notify_one();
            }
        }
    }

    fn close_idle(&self) {
        let now = Instant::now();
        for connection in self.lock().values() {
            if connection.idle_for(now).is_some() {
                connection.close.notify_one();
            }
        }
    }
}

/// Serve `router` (an axum `Router`, or the edge service around one) on
/// `listener` within `limits` until `shutdown` resolves, then drain.
pub async fn serve<S>(listener: TcpListener, router: S, limits: Limits, shutdown: impl Future<Output = ()> + Send)
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let registry = Arc::new(Registry::default());
    let (draining_tx, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let sweeper = tokio::spawn(sweep_idle(registry.clone(), limits.keep_alive_timeout));
    let mut accept_errors = RateLimitedLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_errors.warn(&error);
                    // Out of descriptors: let connections close before trying again.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if registry.len() >= limits.max_connections && !registry.evict_idlest() {
            connections.spawn(shed(stream));
            continue;
        }
        let (id, tracked) = registry.add();
        let connection = serve_connection(stream, peer, router.clone(), limits, tracked, draining.clone());
        let registry = registry.clone();
        connections.spawn(async move {
            connection.await;
            registry.remove(id);
        });
    }
    sweeper.abort();
    draining_tx.send_replace(true);
    registry.close_idle();
    let drained = tokio::time::timeout(limits.drain_timeout, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), deadline = ?limits.drain_timeout, "drain deadline reached; closing the connections still open");
        connections.shutdown().await;
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    router: S,
    limits: Limits,
    tracked: Arc<Tracked>,
    mut draining: watch::Receiver<bool>,
) where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let _ = stream.set_nodelay(true);
    let counter = tracked.clone();
    let stall = WriteStallLimit::default();
    let socket = StallGuarded::new(stream, stall.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(Connection { peer, stall: stall.clone() });
        let guard = InFlight::enter(counter.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await.unwrap_or_else(|never| match never {});
            Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(TrackedBody { inner: body, _guard: guard })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(socket), service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = tracked.close.notified() => {}
        _ = draining.wait_for(|draining| *draining) => {}
    }
    // Told to close (idle, evicted or draining). With nothing in flight the
    // socket is simply dropped: hyper's graceful shutdown would wait for a
    // half-sent request's headers. Otherwise what is in flight finishes.
    if tracked.in_flight.load(Ordering::Acquire) == 0 {
        return;
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// A connection beyond the cap while every open one is busy.
async fn shed(mut stream: TcpStream) {
    const BODY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"too many connections; retry shortly","code":"overloaded"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
}

async fn sweep_idle(registry: Arc<Registry>, keep_alive_timeout: Duration) {
    let period = (keep_alive_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        registry.sweep(keep_alive_timeout);
    }
}

/// Counts a request as in flight until its response body is done.
struct InFlight(Arc<Tracked>);

impl InFlight {
    fn enter(tracked: Arc<Tracked>) -> Self {
        tracked.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(tracked)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let since = self.0.accepted.elapsed().as_millis().max(1) as u64;
        self.0.idle_since_ms.store(since, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight while it streams.
struct TrackedBody {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Logs a repeating error at most once a second, with how often it recurred.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, repeated = self.suppressed, "accepting a connection failed (out of file descriptors?); backing off");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Raise the soft open-file limit to the hard one, and return the soft
/// limit now in force (connections must stay below it).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}
