//! Token issuance under connection abuse, against its own unloaded
//! throughput in the same run: the release binary on 127.0.0.1, 32
//! keep-alive clients issuing `client_credentials` tokens, first alone,
//! then while an attacker holds 5,000 idle sockets and 300 slowloris
//! sockets open (reconnecting whenever the server closes one, as an
//! attacker would). Reports requests/s, p50/p99 and the server's CPU time
//! per request; the ratio loaded / unloaded is the bar (≥ 0.8).
//!
//! `cargo bench --bench abuse_load` (BENCH_SECONDS, default 10, sets each
//! phase's length; every loop stops by itself).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Server, cpu_seconds, rss_mib, sha256_hex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WORKERS: usize = 32;
const IDLE_SOCKETS: usize = 5_000;
const SLOWLORIS_SOCKETS: usize = 300;
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";

struct Phase {
    name: &'static str,
    requests: usize,
    failures: usize,
    elapsed: Duration,
    cpu: f64,
    latencies: Vec<Duration>,
    rss_mib: f64,
}

async fn issue(server: &Server, name: &'static str, seconds: u64) -> Phase {
    let client = reqwest::Client::builder().pool_max_idle_per_host(WORKERS).build().unwrap();
    let url = format!("{}/oauth2/token", server.base);
    let cpu_before = cpu_seconds(server.pid());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut latencies) = (0usize, 0usize, Vec::new());
                while Instant::now() < deadline && ok + failed < 1_000_000 {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .basic_auth("service", Some(SECRET))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("grant_type=client_credentials")
                        .send()
                        .await;
                    let answered = match response {
                        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if answered {
                        latencies.push(sent.elapsed());
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let (mut requests, mut failures, mut latencies) = (0, 0, Vec::new());
    for worker in workers {
        let (ok, failed, l) = worker.await.unwrap();
        requests += ok;
        failures += failed;
        latencies.extend(l);
    }
    latencies.sort();
    let elapsed = started.elapsed();
    Phase { name, requests, failures, elapsed, cpu: cpu_seconds(server.pid()) - cpu_before, latencies, rss_mib: rss_mib(server.pid()) }
}

/// Keep `count` sockets open until `stop`: idle ones send nothing, slowloris
/// ones a partial request head, a byte every few seconds. A socket the server
/// closes is replaced. Returns how many connections were made in all.
fn attack(addr: String, count: usize, slowloris: bool, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let opened = Arc::new(AtomicUsize::new(0));
        let holders: Vec<_> = (0..count)
            .map(|_| {
                let (addr, stop, opened) = (addr.clone(), stop.clone(), opened.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = TcpStream::connect(&addr).await else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        if slowloris && stream.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                            continue;
                        }
                        // Hold it until the server closes it (then reconnect) or the bench ends.
                        let mut buffer = [0u8; 64];
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
                                Ok(Ok(0) | Err(_)) => break,
                                Ok(Ok(_)) => {}
                                Err(_) if slowloris => {
                                    if stream.write_all(b"x").await.is_err() {
                                        break;
                                    }
                                }
                                Err(_) => {}
                            }
                        }
                    }
                })
            })
            .collect();
        for holder in holders {
            let _ = holder.await;
        }
        opened.load(Ordering::Relaxed)
    })
}

fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("abuse_load: run with `cargo bench --bench abuse_load`");
        return;
    }
    raise_open_file_limit();
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let config = format!("[[clients]]\nid = \"service\"\nsecret_sha256 = \"{}\"\naudiences = [\"orders-api\"]\n", sha256_hex(SECRET));
    let server = Server::start(&config, &[("TESSERA_STORE_KIND", "memory")]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let idle_rss = rss_mib(server.pid());
    let unloaded = runtime.block_on(issue(&server, "unloaded", seconds));
    let addr = server.base.trim_start_matches("http://").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (loaded, idle_opened, slow_opened) = runtime.block_on(async {
        let idle = attack(addr.clone(), IDLE_SOCKETS, false, stop.clone());
        let slow = attack(addr.clone(), SLOWLORIS_SOCKETS, true, stop.clone());
        // Let the attacker fill the connection table first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let loaded = issue(&server, "5000 idle + 300 slowloris sockets", seconds).await;
        stop.store(true, Ordering::Relaxed);
        (loaded, idle.await.unwrap(), slow.await.unwrap())
    });
    println!("\nclient_credentials, {WORKERS} keep-alive clients, {seconds} s per phase, 127.0.0.1, memory store");
    println!("| phase | requests/s | p50 | p99 | server CPU per request | failures | server RSS |");
    println!("|---|---|---|---|---|---|---|");
    for p in [&unloaded, &loaded] {
        let pct = |q: f64| p.latencies.get(((p.latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} µs | {} | {:.1} MiB |",
            p.name,
            p.requests as f64 / p.elapsed.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            p.cpu / p.requests.max(1) as f64 * 1e6,
            p.failures,
            p.rss_mib
        );
    }
    let rate = |p: &Phase| p.requests as f64 / p.elapsed.as_secs_f64();
    println!("idle RSS before the phases: {idle_rss:.1} MiB");
    println!("attacker connections made: {idle_opened} idle, {slow_opened} slowloris (reconnecting after each close)");
    println!("loaded / unloaded throughput: {:.2}", rate(&loaded) / rate(&unloaded));
}
