//! Closing a connection whose peer has stopped reading what it asked for.
//!
//! hyper writes a response only as fast as the peer reads it, and asks a
//! streaming body for more only when its own small buffer has room: a peer
//! that stops reading costs little memory, but holds its connection, and
//! whatever the response holds, for ever. hyper has no write timeout, and
//! the body cannot notice — it is simply no longer polled. So the socket
//! is wrapped: once a handler arms the connection's [`WriteStallLimit`], a
//! write that makes no progress for that long (the kernel refusing every
//! byte because the peer's window is shut) fails with `TimedOut`, and hyper
//! closes the connection and drops the response.
//!
//! Unarmed — the default — a write may wait as long as the peer likes:
//! ordinary responses are short and the listener's other bounds govern
//! them. The revocation stream arms it with `feed.slow_consumer_timeout`;
//! it stays armed for the rest of the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long one connection's writes may make no progress (none until a
/// handler arms it); in every request's extensions.
#[derive(Debug, Clone, Default)]
pub struct WriteStallLimit(Arc<AtomicU64>);

impl WriteStallLimit {
    /// From now on, close the connection when a write makes no progress
    /// for `limit`.
    pub fn arm(&self, limit: Duration) {
        self.0.store(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(Duration::from_millis(millis)),
        }
    }
}

/// A socket whose writes fail once they have stalled past the limit.
pub(super) struct StallGuarded<IO> {
    io: IO,
    limit: WriteStallLimit,
    /// Running while writes make no progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> StallGuarded<IO> {
    pub(super) fn new(io: IO, limit: WriteStallLimit) -> Self {
        Self { io, limit, stalled: None }
    }

    /// Any answer is progress; a refusal starts (or checks) the timer.
    fn observe<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let Some(limit) = self.limit.get() else {
            return Poll::Pending;
        };
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading the response"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StallGuarded<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StallGuarded<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.observe(cx, result)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.observe(cx, result)
    }

    // hyper queues body chunks without copying them only over a vectored
    // writer; say what the socket says.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.observe(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pipe whose reader never reads: writes fill it, then stall.
    #[tokio::test]
    async fn an_armed_write_fails_once_it_stalls_past_the_limit_and_an_unarmed_one_waits() {
        let limit = WriteStallLimit::default();
        let (writer, _reader) = tokio::io::duplex(1024);
        let mut guarded = StallGuarded::new(writer, limit.clone());
        guarded.write_all(&[0; 1024]).await.unwrap();
        let unarmed = tokio::time::timeout(Duration::from_millis(300), guarded.write_all(b"x")).await;
        assert!(unarmed.is_err(), "an unarmed write waits for the peer");
        limit.arm(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let error = tokio::time::timeout(Duration::from_secs(10), guarded.write_all(b"x")).await.expect("cut off").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200), "not before the limit");
    }

    #[tokio::test]
    async fn a_reader_that_keeps_reading_is_never_cut() {
        let limit = WriteStallLimit::default();
        limit.arm(Duration::from_millis(300));
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut guarded = StallGuarded::new(writer, limit);
        let slow_reader = tokio::spawn(async move {
            let mut buf = [0; 256];
            let mut total = 0;
            while total < 2048 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                total += reader.read(&mut buf).await.unwrap();
            }
        });
        guarded.write_all(&[0; 2048]).await.expect("slow but steady progress is progress");
        slow_reader.await.unwrap();
    }
}
