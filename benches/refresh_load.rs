//! Load bench of the refresh grant: the real release binary on 127.0.0.1,
//! 64 concurrent connections, each rotating its own refresh-token chain,
//! with the in-memory store, the durable embedded store and (when
//! redis-server is installed) a Redis started for the run, in the same run.
//!
//! `cargo bench --bench refresh_load` (BENCH_SECONDS, default 10,
//! sets each phase's length). Reports requests/s, latency percentiles and
//! the server's CPU time per request (the process's CPU clock, user and system).

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;

use std::time::{Duration, Instant};
use support::{Redis, Server, cpu_seconds, sha256_hex};

const CONCURRENCY: usize = 64;
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";

struct Phase {
    store: &'static str,
    requests: usize,
    failures: usize,
    elapsed: Duration,
    cpu: f64,
    latencies: Vec<Duration>,
}

async fn phase(store: &'static str, seconds: u64, redis_port: Option<u16>) -> Phase {
    let url = redis_port.map(|port| format!("url = \"redis://127.0.0.1:{port}\"\n")).unwrap_or_default();
    let config = format!(
        "[store]\nkind = \"{store}\"\n{url}\n[[clients]]\nid = \"backend\"\nsecret_sha256 = \"{}\"\npermissions = [\"sessions\"]\n\n[[clients]]\nid = \"web\"\npublic = true\n",
        sha256_hex(SECRET)
    );
    let server = Server::start(&config, &[]);
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let mut tokens = Vec::new();
    for i in 0..CONCURRENCY {
        let body: Value = client
            .post(format!("{base}/v1/sessions"))
            .basic_auth("backend", Some(SECRET))
            .json(&serde_json::json!({"sub": format!("user-{i}"), "client_id": "web"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(body["refresh_token"].as_str().unwrap().to_string());
    }
    let cpu_before = cpu_seconds(server.pid());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|mut token| {
            let (client, url) = (client.clone(), format!("{base}/oauth2/token"));
            tokio::spawn(async move {
                let (mut ok, mut failed, mut latencies) = (0usize, 0usize, Vec::new());
                // Bounded by time and by count, whichever comes first.
                while Instant::now() < deadline && ok + failed < 1_000_000 {
                    let body = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs([("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token.as_str())])
                        .finish();
                    let sent = Instant::now();
                    let response = client.post(&url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let body: Value = r.json().await.unwrap();
                            token = body["refresh_token"].as_str().unwrap().to_string();
                            latencies.push(sent.elapsed());
                            ok += 1;
                        }
                        _ => failed += 1,
                    }
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let (mut requests, mut failures, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        let (ok, failed, l) = task.await.unwrap();
        requests += ok;
        failures += failed;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    drop(server);
    latencies.sort();
    Phase { store, requests, failures, elapsed, cpu, latencies }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("refresh_load: run with `cargo bench --bench refresh_load`");
        return;
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut phases: Vec<Phase> = ["memory", "embedded"].into_iter().map(|store| runtime.block_on(phase(store, seconds, None))).collect();
    // Redis, persisting nothing, as a shared store's best case.
    if let Some(redis) = Redis::start() {
        phases.push(runtime.block_on(phase("redis", seconds, Some(redis.port))));
    }
    println!("\nrefresh grant, {CONCURRENCY} concurrent connections, {seconds} s per store, 127.0.0.1");
    println!("| store | requests/s | p50 | p99 | server CPU per request | failures |");
    println!("|---|---|---|---|---|---|");
    for p in &phases {
        let pct = |q: f64| p.latencies.get(((p.latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} µs | {} |",
            p.store,
            p.requests as f64 / p.elapsed.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            p.cpu / p.requests.max(1) as f64 * 1e6,
            p.failures
        );
    }
    let rate = |p: &Phase| p.requests as f64 / p.elapsed.as_secs_f64();
    println!("embedded / memory throughput: {:.2}", rate(&phases[1]) / rate(&phases[0]));
    if let Some(redis) = phases.get(2) {
        println!("redis / embedded throughput: {:.2}", rate(redis) / rate(&phases[1]));
    }
}
