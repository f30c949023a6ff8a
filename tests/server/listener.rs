//! The listener under abuse, against the real binary on 127.0.0.1: half-sent
//! requests are closed at the header-read timeout, idle keep-alive
//! connections at the idle timeout, a full connection table makes room by
//! closing idle connections (so health checks and token issuance still
//! answer), busy ones shed with 503, SIGTERM drains within its deadline, and
//! the operator endpoints live on the management listener only.

use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Let this test process hold a few thousand sockets.
fn raise_own_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn client_credentials_status(server: &TestServer) -> u16 {
    server.token(Some((SERVICE_ID, SERVICE_SECRET)), &[("grant_type", "client_credentials")]).await.status().as_u16()
}

#[tokio::test]
async fn half_sent_requests_are_closed_at_the_header_read_timeout() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_HTTP_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut sockets = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        sockets.push(stream);
    }
    let started = Instant::now();
    let mut still_open = 0;
    for stream in &mut sockets {
        if !closed_within(stream, Duration::from_secs(6).saturating_sub(started.elapsed())).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "half-sent requests must be closed within the 1 s header-read timeout (+ slack)");
    assert_eq!(client_credentials_status(&server).await, 200, "and the service keeps answering");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_HTTP_KEEP_ALIVE_TIMEOUT", "500ms")]).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"), "the request is answered and the connection kept alive");
    let idle = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await, "an idle keep-alive connection must be closed");
    assert!(idle.elapsed() >= Duration::from_millis(400), "not before the idle timeout: {:?}", idle.elapsed());
}

#[tokio::test]
async fn a_full_connection_table_makes_room_by_closing_idle_connections() {
    raise_own_open_file_limit();
    let env = [("TESSERA_HTTP_MAX_CONNECTIONS", "100"), ("TESSERA_HTTP_HEADER_READ_TIMEOUT", "60s")];
    let server = TestServer::start_with(&default_config(), &env).await;
    // Thousands of idle and half-sent sockets, far beyond the cap of 100.
    let mut sockets = Vec::new();
    for i in 0..2_000 {
        match TcpStream::connect(server.addr()).await {
            Ok(mut stream) => {
                if i % 2 == 0 {
                    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost:").await;
                }
                sockets.push(stream);
            }
            Err(error) => panic!("connect {i}: {error}"),
        }
    }
    // Every new connection evicted the idlest one, so the service still
    // answers on fresh connections: liveness and a real token request.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let health = tokio::time::timeout(Duration::from_secs(5), client.get(server.url("/healthz")).send()).await;
    assert!(health.is_ok_and(|r| r.is_ok_and(|r| r.status() == 200)), "/healthz must answer with the table full of idle sockets");
    assert_eq!(client_credentials_status(&server).await, 200, "token issuance must answer with the table full of idle sockets");
    let health = reqwest::get(server.management_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the management listener is not affected at all");
    // The server holds no more than its cap (+ the few being closed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut closed = 0;
    for stream in &mut sockets {
        if closed_within(stream, Duration::from_millis(1)).await {
            closed += 1;
        }
    }
    assert!(closed >= 1_800, "idle sockets beyond the cap are closed by the server, {closed} of 2000 were");
}

#[tokio::test]
async fn beyond_the_cap_with_every_connection_busy_a_new_one_is_shed_with_503() {
    let env = [("TESSERA_HTTP_MAX_CONNECTIONS", "2"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "60s"), ("TESSERA_TOKENS_REUSE_GRACE", "2m")];
    let server = TestServer::start_with(&default_config(), &env).await;
    // Two requests in flight: headers complete, bodies stalled.
    let credentials = basic(BACKEND_ID, BACKEND_SECRET);
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /v1/sessions HTTP/1.1\r\nhost: x\r\nauthorization: {credentials}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut shed = TcpStream::connect(server.addr()).await.unwrap();
    let _ = shed.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), shed.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1") && text.contains("application/problem+json"), "{text}");
    drop(busy);
}

#[tokio::test]
async fn sigterm_with_a_half_sent_request_exits_within_the_drain_deadline() {
    let env = [
        ("TESSERA_HTTP_DRAIN_TIMEOUT", "1s"),
        ("TESSERA_HTTP_REQUEST_TIMEOUT", "60s"),
        ("TESSERA_HTTP_HEADER_READ_TIMEOUT", "60s"),
        ("TESSERA_TOKENS_REUSE_GRACE", "2m"),
    ];
    let server = TestServer::start_with(&default_config(), &env).await;
    let credentials = basic(BACKEND_ID, BACKEND_SECRET);
    // One request stuck in its body, one stuck in its headers.
    let mut in_body = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nhost: x\r\nauthorization: {credentials}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    in_body.write_all(head.as_bytes()).await.unwrap();
    let mut in_headers = TcpStream::connect(server.addr()).await.unwrap();
    in_headers.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, took) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "a drained shutdown exits 0, got {status}");
    assert!(took < Duration::from_secs(4), "SIGTERM must finish within the 1 s drain deadline (+ slack), took {took:?}");
}

#[tokio::test]
async fn operator_endpoints_are_served_on_the_management_listener_only() {
    let server = TestServer::start().await;
    let public = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404, "the public listener does not serve /metrics");
    assert_eq!(reqwest::get(server.url("/readyz")).await.unwrap().status(), 404, "nor /readyz");
    assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200, "liveness stays public");
    let ready = reqwest::get(server.management_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(client_credentials_status(&server).await, 200);
    let metrics = server.metrics().await;
    assert!(metrics.contains("tessera_tokens_issued_total{grant=\"client_credentials\"} 1"), "{metrics}");
    assert!(metrics.contains("tessera_http_requests_total{method=\"POST\",route=\"/oauth2/token\",status=\"2xx\"} 1"), "{metrics}");
    assert!(metrics.contains("tessera_build_info{version="), "{metrics}");
    assert!(metrics.contains("tessera_revocation_list_entries 0"), "{metrics}");
}

/// mimalloc asks for transparent huge pages, and each first touch of one
/// has the kernel zero 2 MiB: a tenth of the server's CPU while the
/// revocation list grew (README, Performance). The process turns them off.
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let server = TestServer::start().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let Some(line) = status.lines().find(|line| line.starts_with("THP_enabled:")) else {
        panic!("this kernel reports no THP_enabled in /proc/<pid>/status:\n{status}");
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
