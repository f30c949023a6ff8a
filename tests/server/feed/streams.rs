//! The revocation stream under abuse: readers that never read cost little
//! memory and are closed once they stall, and no peer may hold more than
//! its share of streams.

use super::prefilled;
use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A stream request over raw TCP, from a chosen local address, with an
/// optional small receive buffer; read only when told to.
pub struct RawStream {
    socket: TcpStream,
    pub status: u16,
    pub head: String,
    /// What arrived beyond the head so far.
    pub body: Vec<u8>,
}

impl RawStream {
    pub async fn open(server: &TestServer, from: &str, receive_buffer: Option<u32>, authorization: Option<&str>) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut socket = socket.connect(server.addr().parse().unwrap()).await.unwrap();
        let authorization = authorization.map(|value| format!("authorization: {value}\r\n")).unwrap_or_default();
        let request = format!("GET /v1/revocations/stream HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n{authorization}\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk)).await.expect("a head within 10 s").unwrap();
            assert!(n > 0, "closed before the head: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
        };
        let head = String::from_utf8_lossy(&received[..end]).to_string();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        Self { socket, status, head, body: received[end + 4..].to_vec() }
    }

    /// Read until `needle` has arrived; false if the deadline passes first.
    /// What was read is dropped but for a tail that may hold part of it.
    pub async fn read_until(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut seen = std::mem::take(&mut self.body);
        loop {
            if seen.windows(needle.len()).any(|window| window == needle.as_bytes()) {
                return true;
            }
            seen.drain(..seen.len().saturating_sub(needle.len()));
            let mut chunk = [0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline.into(), self.socket.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                _ => return false,
            }
        }
    }

    /// Read and drop everything until the server closes the connection:
    /// `Some(whether a ready event came)`, or `None` if it is still open at
    /// the deadline.
    pub async fn drain_until_closed(mut self, within: Duration) -> Option<bool> {
        let needle = b"event: ready";
        let deadline = Instant::now() + within;
        let mut seen = std::mem::take(&mut self.body);
        let mut ready = false;
        loop {
            ready |= seen.windows(needle.len()).any(|window| window == needle);
            seen.drain(..seen.len().saturating_sub(needle.len()));
            let mut chunk = [0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline.into(), self.socket.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(ready),
                Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn forty_stalled_streams_over_fifty_thousand_entries_add_little_memory() {
    let dir = prefilled(50_000).await;
    let config = config_with_feed("public = true\nmax_streams_per_peer = 64\nslow_consumer_timeout = \"10m\"");
    let server = TestServer::start_in(dir, &config, &[]).await;
    // One whole reading first, so what every stream shares is in place.
    let mut warm = RawStream::open(&server, "127.0.0.1", None, None).await;
    assert!(warm.read_until("event: ready", Duration::from_secs(60)).await, "the backlog ends with ready");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(server.pid());

    let mut stalled = Vec::new();
    for _ in 0..40 {
        let stream = RawStream::open(&server, "127.0.0.1", Some(4096), None).await;
        assert_eq!(stream.status, 200, "{}", stream.head);
        stalled.push(stream);
    }
    // Let the server push into every socket until each is full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss(server.pid());
    let growth = after.saturating_sub(before);
    eprintln!("RSS {} MiB before, {} MiB with 40 stalled streams (+{} KiB)", before >> 20, after >> 20, growth >> 10);
    assert!(growth < 64 << 20, "40 stalled streams over 50 000 entries grew the server by {} MiB", growth >> 20);
    // And the service still serves.
    let session = server.web_session("while-stalled").await;
    assert!(session["access_token"].is_string());
    drop(stalled);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_disconnected_and_frees_its_slot() {
    let dir = prefilled(50_000).await;
    let config = config_with_feed("public = true\nmax_streams_per_peer = 2\nslow_consumer_timeout = \"1s\"");
    let server = TestServer::start_in(dir, &config, &[]).await;
    let stalled = RawStream::open(&server, "127.0.0.1", Some(4096), None).await;
    assert_eq!(stalled.status, 200);
    let mut reading = RawStream::open(&server, "127.0.0.1", None, None).await;
    // Both slots of this address are taken.
    assert_eq!(RawStream::open(&server, "127.0.0.1", None, None).await.status, 429);
    assert!(reading.read_until("event: ready", Duration::from_secs(60)).await);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let closed = stalled.drain_until_closed(Duration::from_secs(30)).await;
    assert_eq!(closed, Some(false), "the stalled reader was cut off before its backlog ended");

    // The reader that kept up was not: a new entry reaches it.
    let session = server.web_session("after-the-cut").await;
    let sid = session["session_id"].as_str().unwrap();
    assert_eq!(server.logout(sid).await, 204);
    assert!(reading.read_until(sid, Duration::from_secs(5)).await, "the live reader still gets entries");
    // And the stalled reader's slot is free again.
    assert_eq!(RawStream::open(&server, "127.0.0.1", None, None).await.status, 200);
}

#[tokio::test]
async fn a_peer_over_its_stream_cap_gets_429_while_others_go_on() {
    let config = config_with_feed("public = true\nmax_streams = 3\nmax_streams_per_peer = 2");
    let server = TestServer::start_with(&config, &[]).await;
    let mut first = RawStream::open(&server, "127.0.0.1", None, None).await;
    let second = RawStream::open(&server, "127.0.0.1", None, None).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert!(first.read_until("event: ready", Duration::from_secs(10)).await);

    let refused = RawStream::open(&server, "127.0.0.1", None, None).await;
    assert_eq!(refused.status, 429, "{}", refused.head);
    let head = refused.head.to_ascii_lowercase();
    assert!(head.contains("retry-after: "), "{head}");
    assert!(head.contains("content-type: application/problem+json"), "{head}");
    assert!(String::from_utf8_lossy(&refused.body).contains("too_many_streams"));

    // Another peer is not held to this one's cap — only to the total.
    let other = RawStream::open(&server, "127.0.0.2", None, None).await;
    assert_eq!(other.status, 200, "{}", other.head);
    assert_eq!(RawStream::open(&server, "127.0.0.3", None, None).await.status, 429, "the total cap of 3");
    assert!(server.metrics().await.contains("\ntessera_feed_streams 3\n"), "the open streams are on /metrics");

    // The streams that were let in go on.
    let session = server.web_session("capped").await;
    let sid = session["session_id"].as_str().unwrap();
    assert_eq!(server.logout(sid).await, 204);
    assert!(first.read_until(sid, Duration::from_secs(5)).await);

    // A closed stream gives its slot back.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = RawStream::open(&server, "127.0.0.1", None, None).await;
        if again.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot of a closed stream was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
