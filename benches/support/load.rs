//! A closed-loop HTTP/1.1 load generator for the benches: each connection
//! sends a request, reads the whole response, lets the workload look at it,
//! and sends the next — over raw keep-alive sockets, so the client costs a
//! few syscalls per request and leaves the server's core as the bottleneck.
//!
//! The bench process pins itself to one core ([`pin_to_core`]) and the
//! server to another (`taskset`), and [`drive`] reads the server's CPU time
//! from `/proc/<pid>/stat` before and after, so the primary figure — server
//! CPU per request — does not depend on how fast the client is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one connection sends and how it judges each answer. `S` is the
/// connection's own state (a refresh-token chain, say).
pub trait Workload<S>: Send + Sync + 'static {
    /// Append one complete HTTP/1.1 request to `out`; false when this
    /// connection has nothing left to send (it then stops).
    fn request(&self, state: &mut S, out: &mut Vec<u8>) -> bool;
    /// Whether the response counts as a success; may update `state`.
    fn response(&self, state: &mut S, status: u16, body: &[u8]) -> bool;
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    pub requests: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// The server's utime + stime over the run, in seconds.
    pub server_cpu: f64,
    /// Sorted.
    pub latencies: Vec<Duration>,
}

impl Measurement {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU microseconds per successful request.
    pub fn cpu_us(&self) -> f64 {
        self.server_cpu / self.requests.max(1) as f64 * 1e6
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// Pin the calling thread, and every thread it starts later, to `core`.
pub fn pin_to_core(core: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A GET request.
pub fn get(out: &mut Vec<u8>, path: &str, extra_headers: &str) {
    out.extend_from_slice(format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra_headers}\r\n").as_bytes());
}

/// A POST with a form body.
pub fn post_form(out: &mut Vec<u8>, path: &str, extra_headers: &str, body: &str) {
    post(out, path, "application/x-www-form-urlencoded", extra_headers, body);
}

/// A POST with a body of `content_type`.
pub fn post(out: &mut Vec<u8>, path: &str, content_type: &str, extra_headers: &str, body: &str) {
    out.extend_from_slice(
        format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// `authorization: Basic …` for a client id and secret, with its CRLF.
pub fn basic_auth(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// The string value of `"name":"…"` in a JSON body, without a JSON parser.
pub fn json_string<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let end = text[start..].find('"')? + start;
    Some(&text[start..end])
}

/// Run one connection per element of `states` against `addr` for
/// `duration` (and at most a million requests per connection), on a
/// single-threaded runtime in the calling thread.
pub fn drive<S: Send + 'static, W: Workload<S>>(
    addr: SocketAddr,
    server_pid: u32,
    states: Vec<S>,
    duration: Duration,
    workload: W,
) -> Measurement {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let workload = Arc::new(workload);
        let cpu_before = cpu_seconds(server_pid);
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for state in states {
            tasks.spawn(connection(addr, state, deadline, workload.clone()));
        }
        let mut total = Measurement::default();
        while let Some(result) = tasks.join_next().await {
            let (ok, failed, latencies) = result.unwrap();
            total.requests += ok;
            total.failures += failed;
            total.latencies.extend(latencies);
        }
        total.elapsed = started.elapsed();
        total.server_cpu = cpu_seconds(server_pid) - cpu_before;
        total.latencies.sort();
        total
    })
}

async fn connection<S, W: Workload<S>>(addr: SocketAddr, mut state: S, deadline: Instant, workload: Arc<W>) -> (u64, u64, Vec<Duration>) {
    let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::with_capacity(64 * 1024));
    let mut request = Vec::with_capacity(4096);
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut socket: Option<TcpStream> = None;
    while Instant::now() < deadline && ok + failed < 1_000_000 {
        if socket.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    s.set_nodelay(true).unwrap();
                    socket = Some(s);
                    buffer.clear();
                }
                Err(_) => {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let stream = socket.as_mut().unwrap();
        request.clear();
        if !workload.request(&mut state, &mut request) {
            break;
        }
        let sent = Instant::now();
        let answer = async {
            stream.write_all(&request).await.ok()?;
            read_response(stream, &mut buffer).await
        };
        match answer.await {
            Some(response) => {
                if workload.response(&mut state, response.status, &response.body) {
                    ok += 1;
                    latencies.push(sent.elapsed());
                } else {
                    failed += 1;
                }
                if response.close {
                    socket = None;
                }
            }
            None => {
                failed += 1;
                socket = None;
            }
        }
    }
    (ok, failed, latencies)
}

struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// Read one response; `buffer` keeps bytes past its end (there are none
/// with one request in flight, but a server may send them).
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Response> {
    let head_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end + 4;
        }
        fill(stream, buffer).await?;
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?.to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    let close = header("connection:").is_some_and(|v| v == "close");
    let body = if let Some(length) = header("content-length:") {
        let length: usize = length.parse().ok()?;
        while buffer.len() < head_end + length {
            fill(stream, buffer).await?;
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        body
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        buffer.drain(..head_end);
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(buffer, b"\r\n") {
                    break end;
                }
                fill(stream, buffer).await?;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buffer[..line_end]).ok()?.split(';').next()?.trim(), 16).ok()?;
            while buffer.len() < line_end + 2 + size + 2 {
                fill(stream, buffer).await?;
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            buffer.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        buffer.drain(..head_end);
        Vec::new()
    };
    Some(Response { status, body, close })
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..n]);
    Some(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// utime + stime of `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}
