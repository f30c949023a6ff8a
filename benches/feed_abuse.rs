//! Memory of the release binary under stalled revocation streams: 40
//! streams that never read (4 KiB receive buffers, as a hostile client
//! would set them) over a revocation list of 200 000 entries, against the
//! same server's idle RSS, in the same run, on 127.0.0.1.
//!
//! `cargo bench --bench feed_abuse` (FEED_ENTRIES and FEED_STREAMS change
//! the list's size and the number of streams). The list is written into
//! the store file before the server starts, as the integration tests do.
//! The whole run is bounded: it gives up after two minutes. Reports RSS
//! (VmRSS from /proc) idle with the list loaded, after one reader read the
//! whole list, with the stalled streams open, and once they are closed,
//! and the time one reader took to read the whole list.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::revocations::{Covers, Revocation};
use tessera::store::Store;
use tessera::store::embedded::EmbeddedStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").trim().parse().unwrap();
    kib / 1024.0
}

/// Write `entries` session revocations into a new store under `dir`.
async fn prefill(dir: &std::path::Path, entries: usize) {
    let store = EmbeddedStore::open(
        &dir.join("data/tessera.redb"),
        Arc::new(tessera::metrics::Metrics::new(&[])),
        Arc::new(tessera::clock::SystemClock),
    )
    .unwrap();
    let until = chrono::Utc::now().timestamp() + 86_400;
    let mut written = 0;
    while written < entries {
        let batch: Vec<Revocation> = (written..(written + 10_000).min(entries))
            .map(|i| Revocation::new(Covers::Session { sid: format!("bench-{i:08}-Jx3b0c9QWmYp1r") }, until))
            .collect();
        written += store.revoke(batch).await.unwrap().len();
    }
    drop(store);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The server, killed when dropped (also when the run gives up).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> (Server, String) {
    let config = "[feed]\npublic = true\nmax_streams_per_peer = 1024\nslow_consumer_timeout = \"10m\"\n";
    std::fs::write(dir.join("tessera.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .current_dir(dir)
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .env("TESSERA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let child = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("tessera listening on ") {
                let _ = tx.send(addr.trim().trim_start_matches("http://").to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("tessera started");
    (child, addr)
}

/// Open a stream and read its head; read no further.
async fn open_stream(addr: &str, receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream.write_all(b"GET /v1/revocations/stream HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n\r\n").await.unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    stream
}

/// Read a stream until its ready event; returns the bytes read.
async fn read_to_ready(mut stream: TcpStream) -> usize {
    let (mut total, mut tail) = (0, Vec::new());
    loop {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream ended before ready");
        total += n;
        tail.extend_from_slice(&chunk[..n]);
        if tail.windows(12).any(|w| w == b"event: ready") {
            return total;
        }
        tail.drain(..tail.len().saturating_sub(12));
    }
}

async fn run(entries: usize, streams: usize) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    prefill(dir.path(), entries).await;
    println!("wrote {entries} revocations into the store in {:.1} s", started.elapsed().as_secs_f64());
    let (server, addr) = start(dir.path());
    let pid = server.0.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(pid);

    let read_started = Instant::now();
    let bytes = read_to_ready(open_stream(&addr, None).await).await;
    let read_took = read_started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_one_reader = rss_mib(pid);

    let mut stalled = Vec::new();
    for _ in 0..streams {
        stalled.push(open_stream(&addr, Some(4096)).await);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let with_stalled = rss_mib(pid);
    drop(stalled);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = rss_mib(pid);
    drop(server);

    println!("one reader read the whole list ({:.1} MiB of events) in {:.2} s", bytes as f64 / 1048576.0, read_took.as_secs_f64());
    println!("RSS idle, {entries} entries loaded:        {idle:7.1} MiB");
    println!("RSS after one full reader:               {after_one_reader:7.1} MiB");
    println!("RSS with {streams} stalled streams:            {with_stalled:7.1} MiB  ({:+.1} MiB over idle)", with_stalled - idle);
    println!("RSS after they closed:                   {after_close:7.1} MiB");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (entries, streams) = (setting("FEED_ENTRIES", 200_000), setting("FEED_STREAMS", 40));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let finished = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(120), run(entries, streams)).await });
    if finished.is_err() {
        eprintln!("gave up after two minutes");
        std::process::exit(1);
    }
}
