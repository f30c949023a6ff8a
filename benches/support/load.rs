//! A closed-loop HTTP/1.1 load generator for the benches: each connection
//! sends a request, reads the whole response, lets the workload look at it,
//! and sends the next — over raw keep-alive sockets from one spinning
//! thread, so the client costs a few syscalls per request and leaves the
//! server's core as the bottleneck.
//!
//! The bench process pins itself to one core ([`pin_to_core`]) and the
//! server to another (`taskset`), and [`drive`] reads the server's CPU time
//! (its process CPU clock) before and after, so the primary figure — server
//! CPU per request — does not depend on how fast the client is.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What one connection sends and how it judges each answer. `S` is the
/// connection's own state (a refresh-token chain, say).
pub trait Workload<S> {
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
    /// The server's CPU time (user and system, every thread) over the run, in seconds.
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
/// `duration` (and at most a million requests per connection), from the
/// calling thread.
///
/// The thread never sleeps: it spins over non-blocking sockets. A client
/// that waits in `epoll` must be woken by every response, and on loopback
/// the server's `write` pays for that wakeup (an inter-processor interrupt,
/// costly in a VM) — more per request the slower the endpoint, which would
/// load the figure of a slow endpoint with a cost its floor does not pay.
pub fn drive<S, W: Workload<S>>(addr: SocketAddr, server_pid: u32, states: Vec<S>, duration: Duration, workload: W) -> Measurement {
    let mut connections: Vec<Connection<S>> = states.into_iter().map(Connection::new).collect();
    let mut total = Measurement::default();
    let cpu_before = cpu_seconds(server_pid);
    let started = Instant::now();
    let deadline = started + duration;
    let mut open = connections.len();
    while open > 0 {
        open = 0;
        let now = Instant::now();
        let answered = total.requests + total.failures;
        for connection in &mut connections {
            if !connection.finished {
                connection.step(addr, now >= deadline, &workload, &mut total);
                open += usize::from(!connection.finished);
            }
        }
        // A pass that answered nothing lets whatever else shares this core
        // (a Redis server started by the bench) run at once, rather than at
        // the end of the spinning thread's time slice.
        if total.requests + total.failures == answered {
            std::thread::yield_now();
        }
    }
    total.elapsed = started.elapsed();
    total.server_cpu = cpu_seconds(server_pid) - cpu_before;
    total.latencies.sort();
    total
}

struct Connection<S> {
    state: S,
    socket: Option<TcpStream>,
    request: Vec<u8>,
    /// How much of `request` is written; `None` when none is in flight.
    written: Option<usize>,
    sent: Instant,
    buffer: Vec<u8>,
    count: u64,
    finished: bool,
}

impl<S> Connection<S> {
    fn new(state: S) -> Self {
        Connection {
            state,
            socket: None,
            request: Vec::with_capacity(4096),
            written: None,
            sent: Instant::now(),
            buffer: Vec::with_capacity(16 * 1024),
            count: 0,
            finished: false,
        }
    }

    /// Make what progress can be made without waiting.
    fn step<W: Workload<S>>(&mut self, addr: SocketAddr, past_deadline: bool, workload: &W, total: &mut Measurement) {
        if self.written.is_none() {
            if past_deadline || self.count >= 1_000_000 {
                self.finished = true;
                return;
            }
            self.request.clear();
            if !workload.request(&mut self.state, &mut self.request) {
                self.finished = true;
                return;
            }
            self.written = Some(0);
            self.sent = Instant::now();
            self.count += 1;
        }
        if self.socket.is_none() {
            match TcpStream::connect(addr) {
                Ok(socket) => {
                    socket.set_nodelay(true).unwrap();
                    socket.set_nonblocking(true).unwrap();
                    self.socket = Some(socket);
                    self.buffer.clear();
                }
                Err(_) => return self.failed(total),
            }
        }
        let socket = self.socket.as_mut().unwrap();
        let written = self.written.unwrap();
        if written < self.request.len() {
            match socket.write(&self.request[written..]) {
                Ok(n) => self.written = Some(written + n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.failed(total),
            }
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        match socket.read(&mut chunk) {
            Ok(0) => self.failed(total),
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                match parse_response(&mut self.buffer) {
                    Parsed::Incomplete => {}
                    Parsed::Invalid => self.failed(total),
                    Parsed::Complete(response) => {
                        self.written = None;
                        if workload.response(&mut self.state, response.status, &response.body) {
                            total.requests += 1;
                            total.latencies.push(self.sent.elapsed());
                        } else {
                            total.failures += 1;
                        }
                        if response.close {
                            self.socket = None;
                        }
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.failed(total),
        }
    }

    /// The request in flight failed; the connection is dropped.
    fn failed(&mut self, total: &mut Measurement) {
        total.failures += 1;
        self.written = None;
        self.socket = None;
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

enum Parsed {
    Incomplete,
    Invalid,
    Complete(Response),
}

/// One whole response off the front of `buffer`, if it has arrived.
fn parse_response(buffer: &mut Vec<u8>) -> Parsed {
    let Some(head_end) = find(buffer, b"\r\n\r\n").map(|end| end + 4) else { return Parsed::Incomplete };
    let Ok(head) = std::str::from_utf8(&buffer[..head_end]).map(str::to_ascii_lowercase) else { return Parsed::Invalid };
    let Some(status) = head.get(9..12).and_then(|s| s.parse().ok()) else { return Parsed::Invalid };
    let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    let close = header("connection:").is_some_and(|v| v == "close");
    if let Some(length) = header("content-length:") {
        let Ok(length) = length.parse::<usize>() else { return Parsed::Invalid };
        if buffer.len() < head_end + length {
            return Parsed::Incomplete;
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        return Parsed::Complete(Response { status, body, close });
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut at = head_end;
        loop {
            let Some(line_end) = find(&buffer[at..], b"\r\n").map(|end| at + end) else { return Parsed::Incomplete };
            let size =
                std::str::from_utf8(&buffer[at..line_end]).ok().and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok());
            let Some(size) = size else { return Parsed::Invalid };
            if buffer.len() < line_end + 2 + size + 2 {
                return Parsed::Incomplete;
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            at = line_end + 2 + size + 2;
            if size == 0 {
                buffer.drain(..at);
                return Parsed::Complete(Response { status, body, close });
            }
        }
    }
    buffer.drain(..head_end);
    Parsed::Complete(Response { status, body: Vec::new(), close })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The CPU time of `pid` (all its threads, user and system), in seconds:
/// its process CPU clock, counted in nanoseconds. (`/proc/<pid>/stat`
/// counts 10 ms ticks, which is coarse for a phase that runs out of tokens
/// in under a second; it is the fallback.)
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: both calls only write through the pointers given, to locals.
    let read = unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0 && libc::clock_gettime(clock, &mut now) == 0 };
    if read {
        return now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9;
    }
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
