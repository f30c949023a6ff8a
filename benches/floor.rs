//! Every endpoint against its floor, in one run.
//!
//! `cargo bench --bench floor` (BENCH_SECONDS per phase, default 3;
//! BENCH_ROUNDS, default 3). The floor of an endpoint is what it cannot
//! avoid: an HTTP round trip on the same server stack (an empty handler
//! behind tessera's own listener, measured here for GET and for a form
//! POST) plus the cryptography the request needs, each operation timed with
//! ring in this run. Each server runs on core 0 (`taskset`), the load
//! generator on core 1, 64 keep-alive connections; the primary figure is
//! server CPU time per request (the process's CPU clock, every thread),
//! which does not depend on how fast the client is. Throughput and p50/p99
//! latency are secondary. Each endpoint's floor is also measured whole: a
//! handler on the same stack that does the endpoint's crypto operations and
//! answers as many bytes (`× whole floor`), which checks that the sum of
//! separately timed parts is not missing what they cost together (caches
//! the crypto evicts, a longer answer); its p99 is printed beside the
//! endpoint's, as what the same stack and machine allow at the tail.
//! A durable refresh cannot avoid its store's write either, so the store
//! rows' floors hold one: for the embedded store a group-committed append
//! and `fdatasync` to a file on the same disk (the least that makes a
//! write durable there), for Redis one `SET NX EX` round trip to the same
//! Redis server, each costed as its whole floor less the same whole floor
//! without the write, in the same round.
//! Rounds are interleaved and the medians printed; each ratio is the
//! median of the rounds' ratios, both figures taken in the same round.
//! Servers run with `TESSERA_LOG=warn` (security events, no line per
//! request), except the `INFO log` phase, which shows what the default
//! request log costs. `TESSERA_BENCH_BASELINE=<binary>` measures another
//! build alongside this one, phase by phase in the same rounds (taking
//! turns going first), and prints their ratio: the way to quote a
//! before-and-after on a noisy machine.
//! `BENCH_PERF=<phase>` records the server core with `perf` during each
//! phase whose name contains it, into `target/perf/` (see README).

#[path = "support/mod.rs"]
mod support;

use axum::Router;
use axum::routing::get;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::load::{self, Measurement, Workload};
use support::{Redis, Server, sha256_hex};

const CONNECTIONS: usize = 64;
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const SERVER_CORE: usize = 0;
const CLIENT_CORE: usize = 1;
/// Bounds on the tokens one phase hands to the next.
const MAX_COLLECTED: usize = 60_000;

fn main() {
    if std::env::var_os("TESSERA_BENCH_FLOOR_SERVER").is_some() {
        return serve_floor();
    }
    // `cargo test --benches` runs bench targets without --bench: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("floor: run with `cargo bench --bench floor`");
        return;
    }
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let phase = Duration::from_secs_f64(seconds);
    // BENCH_ONLY=refresh runs the phases whose name contains it (and those
    // that make tokens for them), for profiling one endpoint at a time.
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|only| name.contains(only));
    load::pin_to_core(CLIENT_CORE);

    // TESSERA_BENCH_BASELINE=<binary>: measure that build too, phase by
    // phase in the same rounds, for a before-and-after on one noisy machine.
    let mut builds = Vec::new();
    if let Ok(baseline) = std::env::var("TESSERA_BENCH_BASELINE") {
        builds.push(("baseline", baseline));
    }
    builds.push(("this build", support::binary()));

    let redis = Redis::start();
    let floor = FloorServer::start(redis.as_ref().map(|r| r.port));
    let suites: Vec<Suite> = builds.iter().map(|(_, binary)| Suite::start(binary, redis.as_ref())).collect();

    let mut results: BTreeMap<(usize, &'static str), Vec<Measurement>> = BTreeMap::new();
    let mut crypto: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut whole: BTreeMap<String, Vec<Measurement>> = BTreeMap::new();
    for round in 1..=rounds {
        eprintln!("round {round} of {rounds}");
        for (name, micros) in crypto_costs() {
            crypto.entry(name).or_default().push(micros);
        }
        let mut record = |build: usize, name: &'static str, m: Measurement| {
            let label = if builds.len() > 1 { format!("{}, ", builds[build].0) } else { String::new() };
            eprintln!("  {label}{name}: {:.1} µs/request, {:.0}/s, {} failures", m.cpu_us(), m.rate(), m.failures);
            results.entry((build, name)).or_default().push(m);
        };
        for (name, request) in [("floor GET", get_request("/")), ("floor POST", form_request("/", "", FLOOR_FORM))] {
            let profile = support::Profile::start(name, SERVER_CORE);
            let measured = load::drive(floor.addr, floor.pid(), vec![(); CONNECTIONS], phase, Fixed(request));
            drop(profile);
            record(0, name, measured);
        }
        // The whole floor of each wanted endpoint: HTTP and its crypto in
        // one handler, answering as many bytes (shared by endpoints that
        // need the same).
        let mut measured_paths = std::collections::BTreeSet::new();
        for (name, http, ops, response_bytes) in ENDPOINTS {
            if !wanted(name) || (needs(ops, "redis") && redis.is_none()) {
                continue;
            }
            // A store row's floor needs its whole floor without the store
            // too: the difference is what the store's write costs.
            for path in [whole_floor_path(ops, *response_bytes), whole_floor_path(&crypto_only(ops), *response_bytes)] {
                if !measured_paths.insert(path.clone()) {
                    continue;
                }
                let request = if *http == "GET" { get_request(&path) } else { form_request(&path, "", FLOOR_FORM) };
                let measured = load::drive(floor.addr, floor.pid(), vec![(); CONNECTIONS], phase, Fixed(request));
                eprintln!(
                    "  whole floor {path}: {:.1} µs/request, {:.0}/s, {} failures",
                    measured.cpu_us(),
                    measured.rate(),
                    measured.failures
                );
                whole.entry(path).or_default().push(measured);
            }
        }
        // With a baseline, the builds take turns going first, so neither
        // gains from its place in the round (a warmer or quieter machine).
        let mut order: Vec<usize> = (0..suites.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for build in order {
            suites[build].measure(phase, &wanted, &mut |name, m| record(build, name, m));
        }
    }

    let crypto_rounds = crypto;
    let crypto: BTreeMap<&str, f64> = crypto_rounds.iter().map(|(name, samples)| (*name, median(samples.clone()))).collect();
    let cpu = |build: usize, name: &str| results.get(&(build, name)).map(|runs| median(runs.iter().map(Measurement::cpu_us).collect()));
    let cpu_rounds =
        |build: usize, name: &str| results.get(&(build, name)).map(|runs| runs.iter().map(Measurement::cpu_us).collect::<Vec<_>>());
    let rate_rounds =
        |build: usize, name: &str| results.get(&(build, name)).map(|runs| runs.iter().map(Measurement::rate).collect::<Vec<_>>());
    let http_get = cpu(0, "floor GET").unwrap();
    let http_post = cpu(0, "floor POST").unwrap();
    println!("\n{CONNECTIONS} connections, server on one core, {seconds} s per phase, median of {rounds} rounds, 127.0.0.1");
    println!(
        "\ncrypto (ring, this run): ES256 sign {:.1} µs, ES256 verify {:.1} µs, HMAC-SHA256 {:.2} µs, SHA-256 {:.2} µs",
        crypto["sign"], crypto["verify"], crypto["hmac"], crypto["sha256"]
    );
    println!("HTTP floor (empty handler, same stack): GET {http_get:.1} µs, form POST {http_post:.1} µs of server CPU per request");
    // An operation's cost a request, round by round: ring's, timed alone,
    // for a crypto operation; for a store's write (which costs what it
    // costs only under load, batched with others), the whole floor with it
    // less the whole floor without it, both in that round.
    let op_rounds = |op: &str, ops: FloorOps, response_bytes: usize| -> Vec<f64> {
        if let Some(rounds) = crypto_rounds.get(op) {
            return rounds.clone();
        }
        let cpu = |path: String| whole[&path].iter().map(Measurement::cpu_us).collect::<Vec<_>>();
        let (with, without) = (cpu(whole_floor_path(ops, response_bytes)), cpu(whole_floor_path(&crypto_only(ops), response_bytes)));
        with.iter().zip(&without).map(|(with, without)| with - without).collect()
    };
    for (op, what) in [("commit", "an append to a log and fdatasync, group-committed"), ("redis", "a Redis SET NX EX round trip")] {
        let path = ENDPOINTS.iter().find(|(_, _, ops, _)| needs(ops, op)).map(|(_, _, ops, bytes)| (ops, bytes));
        if let Some((ops, bytes)) = path.filter(|(ops, bytes)| whole.contains_key(&whole_floor_path(ops, **bytes))) {
            println!("store floor ({what}): {:.1} µs of server CPU per request", median(op_rounds(op, ops, *bytes)));
        }
    }
    for (build, (label, binary)) in builds.iter().enumerate() {
        if builds.len() > 1 {
            println!("\n{label}: {binary}");
        }
        println!(
            "\n| endpoint | floor = HTTP + operations | floor µs | server CPU µs/req | × floor | whole floor µs | × whole floor | req/s | p50 ms | p99 ms | whole floor p99 ms | failures |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (name, http, ops, response_bytes) in ENDPOINTS {
            let Some(runs) = results.get(&(build, *name)) else { continue };
            let base = if *http == "GET" { http_get } else { http_post };
            // Each operation's cost round by round, times how often it is needed.
            let costs: Vec<(Vec<f64>, f64)> =
                ops.iter().map(|(op, count)| (op_rounds(op, ops, *response_bytes), f64::from(*count))).collect();
            let floor: f64 = base + costs.iter().map(|(rounds, count)| median(rounds.clone()) * count).sum::<f64>();
            // The ratios are medians of each round's ratio: a row against
            // the floor measured in its own round, which moves with the
            // machine from round to round.
            let used_rounds = cpu_rounds(build, name).unwrap();
            let floor_rounds: Vec<f64> = cpu_rounds(0, if *http == "GET" { "floor GET" } else { "floor POST" })
                .unwrap()
                .iter()
                .enumerate()
                .map(|(round, http)| http + costs.iter().map(|(rounds, count)| rounds[round] * count).sum::<f64>())
                .collect();
            let composition: Vec<String> =
                ops.iter().map(|(op, count)| if *count == 1 { op.to_string() } else { format!("{count}×{op}") }).collect();
            let used = cpu(build, name).unwrap();
            let whole_runs = whole.get(&whole_floor_path(ops, *response_bytes));
            let whole_floor = whole_runs.map(|runs| median(runs.iter().map(Measurement::cpu_us).collect()));
            let whole_ratio =
                whole_runs.map(|runs| per_round_ratio(&used_rounds, &runs.iter().map(Measurement::cpu_us).collect::<Vec<_>>()));
            let whole_p99 = whole_runs.map(|runs| median(runs.iter().map(|m| m.percentile_ms(0.99)).collect()));
            let middle = |f: &dyn Fn(&Measurement) -> f64| median(runs.iter().map(f).collect());
            println!(
                "| {name} | {http}{} | {floor:.1} | {used:.1} | {:.2} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
                composition.iter().map(|c| format!(" + {c}")).collect::<String>(),
                per_round_ratio(&used_rounds, &floor_rounds),
                whole_floor.map_or("–".into(), |w| format!("{w:.1}")),
                whole_ratio.map_or("–".into(), |r| format!("{r:.2}")),
                middle(&|m| m.rate()),
                middle(&|m| m.percentile_ms(0.5)),
                middle(&|m| m.percentile_ms(0.99)),
                whole_p99.map_or("–".into(), |p| format!("{p:.2}")),
                runs.iter().map(|m| m.failures).sum::<u64>(),
            );
        }
        // Beside each, what the whole floors allow: the same ratio between
        // the floor with the store's write and the floor without it.
        let floor_rates = |op: &str| {
            let (_, _, ops, bytes) = ENDPOINTS.iter().find(|(_, _, ops, _)| needs(ops, op))?;
            let rates = |path: String| whole.get(&path).map(|runs| runs.iter().map(Measurement::rate).collect::<Vec<_>>());
            Some(per_round_ratio(&rates(whole_floor_path(ops, *bytes))?, &rates(whole_floor_path(&crypto_only(ops), *bytes))?))
        };
        let allowed = |op: &str| floor_rates(op).map_or(String::new(), |r| format!(" (the whole floors' own: {r:.2})"));
        if let (Some(durable), Some(memory)) = (rate_rounds(build, "refresh, embedded"), rate_rounds(build, "refresh, memory")) {
            println!(
                "\ndurable (embedded, fsync'd) refresh / memory refresh throughput: {:.2}{}",
                per_round_ratio(&durable, &memory),
                allowed("commit")
            );
        }
        if let (Some(redis), Some(memory)) = (rate_rounds(build, "refresh, redis"), rate_rounds(build, "refresh, memory")) {
            println!("redis refresh / memory refresh throughput: {:.2}{}", per_round_ratio(&redis, &memory), allowed("redis"));
        }
    }
    if builds.len() > 1 {
        println!(
            "\nthis build against the baseline, server CPU per request and p99 (medians of the same rounds; the ratio is the median of each round's)\n"
        );
        println!("| endpoint | baseline µs | this build µs | this / baseline | baseline p99 ms | this build p99 ms |");
        println!("|---|---|---|---|---|---|");
        let p99 = |build: usize, name: &str| {
            results.get(&(build, name)).map_or(f64::NAN, |runs| median(runs.iter().map(|m| m.percentile_ms(0.99)).collect()))
        };
        for (name, _, _, _) in ENDPOINTS {
            if let (Some(before), Some(after)) = (cpu(0, name), cpu(1, name)) {
                let ratio = per_round_ratio(&cpu_rounds(1, name).unwrap(), &cpu_rounds(0, name).unwrap());
                println!("| {name} | {before:.1} | {after:.1} | {ratio:.2} | {:.2} | {:.2} |", p99(0, name), p99(1, name));
            }
        }
    }
    drop(suites);
    drop(redis);
}

/// The servers of one build: the memory store (also without the request
/// log's silence), the embedded store and, when redis-server is there,
/// the Redis store.
struct Suite {
    memory: Server,
    logging: Server,
    embedded: Server,
    redis: Option<Server>,
}

impl Suite {
    fn start(binary: &str, redis: Option<&Redis>) -> Self {
        let start = |config: &str, env: &[(&str, &str)]| Server::start_binary(binary, config, env, Some(SERVER_CORE));
        Self {
            memory: start(&config("memory", ""), &[]),
            // The same, logging a line per request (the default, `TESSERA_LOG=info`).
            logging: start(&config("memory", ""), &[("TESSERA_LOG", "info")]),
            embedded: start(&config("embedded", ""), &[]),
            redis: redis.map(|r| start(&config("redis", &format!("url = \"redis://127.0.0.1:{}\"\n", r.port)), &[])),
        }
    }

    /// One round of every wanted phase against this build.
    fn measure(&self, phase: Duration, wanted: &dyn Fn(&str) -> bool, record: &mut dyn FnMut(&'static str, Measurement)) {
        // A phase runs when wanted, or when a wanted one needs its tokens.
        macro_rules! phase {
            ($name:expr, $needed_by:expr, $measure:expr) => {
                if wanted($name) || $needed_by.iter().any(|n: &&str| wanted(n)) {
                    let profile = support::Profile::start($name, SERVER_CORE);
                    let measured = $measure;
                    drop(profile);
                    record($name, measured);
                }
            };
        }
        let memory = &self.memory;
        let addr = address(memory);
        phase!("JWKS", [], load::drive(addr, memory.pid(), vec![(); CONNECTIONS], phase, Fixed(get_request("/.well-known/jwks.json"))));
        let access_tokens = Collected::default();
        let client_credentials = Collecting {
            request: form_request("/oauth2/token", &basic("backend"), "grant_type=client_credentials"),
            field: "access_token",
            into: access_tokens.clone(),
        };
        phase!(
            "client_credentials",
            ["introspection, first"],
            load::drive(addr, memory.pid(), vec![(); CONNECTIONS], phase, client_credentials)
        );
        phase!(
            "client_credentials, INFO log",
            [],
            load::drive(
                address(&self.logging),
                self.logging.pid(),
                vec![(); CONNECTIONS],
                phase,
                Fixed(form_request("/oauth2/token", &basic("backend"), "grant_type=client_credentials"))
            )
        );
        let sessions = Sessions { auth: basic("backend"), into: Collected::default() };
        let created = sessions.into.clone();
        phase!(
            "session creation",
            ["revocation"],
            load::drive(addr, memory.pid(), (0..CONNECTIONS).map(|c| (c, 0)).collect(), phase, sessions)
        );
        phase!("refresh, memory", [], refresh_phase(memory, phase));
        if wanted("refresh, embedded") {
            let before = store_batches(&self.embedded);
            let writer_before = writer_cpu_seconds(self.embedded.pid());
            let profile = support::Profile::start("refresh, embedded", SERVER_CORE);
            let measured = refresh_phase(&self.embedded, phase);
            drop(profile);
            record("refresh, embedded", measured);
            let (commits, writes, seconds) = store_batches(&self.embedded);
            let writer = writer_cpu_seconds(self.embedded.pid()) - writer_before;
            let (commits, writes) = (commits - before.0, writes - before.1);
            eprintln!(
                "    embedded store: {commits:.0} commits, {:.1} writes each, {:.2} ms each; writer thread {:.0} µs CPU a commit, {:.1} µs a write",
                writes / commits,
                (seconds - before.2) * 1e3 / commits,
                writer * 1e6 / commits,
                writer * 1e6 / writes,
            );
        }
        if let Some(server) = &self.redis {
            phase!("refresh, redis", [], refresh_phase(server, phase));
        }
        let introspect = |token: &str| form_request("/oauth2/introspect", &basic("backend"), &format!("token={token}"));
        let first: Vec<Vec<Vec<u8>>> =
            access_tokens.deal(usize::MAX).into_iter().map(|tokens| tokens.iter().map(|t| introspect(t)).collect()).collect();
        phase!("introspection, first", [], load::drive(addr, memory.pid(), first, phase, Sequence));
        phase!("introspection, repeated", [], {
            let repeated = access_tokens_for(memory).iter().map(|t| introspect(t)).collect::<Vec<_>>();
            load::drive(addr, memory.pid(), repeated, phase, Repeat)
        });
        let revocations: Vec<Vec<Vec<u8>>> = created
            .deal(usize::MAX)
            .into_iter()
            .map(|tokens| tokens.iter().map(|t| form_request("/oauth2/revoke", "", &format!("client_id=web&token={t}"))).collect())
            .collect();
        phase!("revocation", [], load::drive(addr, memory.pid(), revocations, phase, Sequence));
    }
}

/// The operations a request cannot avoid, each with how many times it
/// needs them: ring's (`sign`, `verify`, `hmac`, `sha256`) and, for a
/// store's refresh, the store's write (`commit`: a group-committed append
/// and `fdatasync`, as the embedded store makes a batch durable; `redis`:
/// one `SET NX EX` round trip).
type FloorOps = &'static [(&'static str, u32)];

/// Each endpoint, the HTTP floor it is measured against, the crypto
/// operations (with counts) it cannot avoid, and about how long its
/// response body is (for the whole floor: the same bytes must be sent).
const ENDPOINTS: &[(&str, &str, FloorOps, usize)] = &[
    ("JWKS", "GET", &[], 215),
    ("client_credentials", "POST", &[("sha256", 1), ("sign", 1)], 478),
    ("client_credentials, INFO log", "POST", &[("sha256", 1), ("sign", 1)], 478),
    ("session creation", "POST", &[("sha256", 1), ("sign", 1), ("hmac", 2)], 1141),
    ("refresh, memory", "POST", &[("sign", 1), ("hmac", 2)], 1141),
    ("refresh, embedded", "POST", &[("sign", 1), ("hmac", 2), ("commit", 1)], 1141),
    ("refresh, redis", "POST", &[("sign", 1), ("hmac", 2), ("redis", 1)], 1141),
    ("introspection, first", "POST", &[("sha256", 2), ("verify", 1)], 202),
    ("introspection, repeated", "POST", &[("sha256", 2)], 202),
    ("revocation", "POST", &[("hmac", 1)], 0),
];

/// The operations that are a store's write rather than crypto: a durable
/// refresh cannot avoid one, so its floor holds it.
const STORE_OPS: &[&str] = &["commit", "redis"];

fn needs(ops: FloorOps, op: &str) -> bool {
    ops.iter().any(|(o, _)| *o == op)
}

/// `ops` without the store's write.
fn crypto_only(ops: FloorOps) -> Vec<(&'static str, u32)> {
    ops.iter().copied().filter(|(op, _)| !STORE_OPS.contains(op)).collect()
}

/// The path of the whole floor of an endpoint: the floor server's handler
/// that does exactly these operations and answers this many bytes.
fn whole_floor_path(ops: &[(&str, u32)], response_bytes: usize) -> String {
    let ops: Vec<String> = ops.iter().flat_map(|(op, count)| std::iter::repeat_n(op.to_string(), *count as usize)).collect();
    format!("/whole/{}/{response_bytes}", if ops.is_empty() { "none".to_string() } else { ops.join("+") })
}

/// A form body about as long as a refresh request's.
const FLOOR_FORM: &str = "grant_type=refresh_token&client_id=web&refresh_token=rt1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn config(store: &str, extra: &str) -> String {
    format!(
        "[store]\nkind = \"{store}\"\n{extra}\n[[clients]]\nid = \"backend\"\nsecret_sha256 = \"{}\"\npermissions = [\"sessions\", \"introspect\"]\n\n[[clients]]\nid = \"web\"\npublic = true\nrevocation_quota = 1000000\n",
        sha256_hex(SECRET)
    )
}

fn basic(id: &str) -> String {
    load::basic_auth(id, SECRET)
}

fn address(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

fn get_request(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    load::get(&mut out, path, "");
    out
}

fn form_request(path: &str, headers: &str, body: &str) -> Vec<u8> {
    let mut out = Vec::new();
    load::post_form(&mut out, path, headers, body);
    out
}

/// The median of `a[round] / b[round]` over the rounds: a ratio of two
/// figures from the same round, so that the machine's drift between rounds
/// (the same build reads 7.0 µs in one round and 8.2 in the next) cancels
/// instead of landing on whichever side a median of each falls.
fn per_round_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The same request again and again; any 200 is a success.
struct Fixed(Vec<u8>);

impl Workload<()> for Fixed {
    fn request(&self, _: &mut (), out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(&self.0);
        true
    }
    fn response(&self, _: &mut (), status: u16, _: &[u8]) -> bool {
        status == 200
    }
}

/// Each connection repeats its own request.
struct Repeat;

impl Workload<Vec<u8>> for Repeat {
    fn request(&self, request: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(request);
        true
    }
    fn response(&self, _: &mut Vec<u8>, status: u16, body: &[u8]) -> bool {
        status == 200 && !body.starts_with(b"{\"active\":false")
    }
}

/// Each connection sends its own requests once each, then stops. A
/// revocation answers 200 with an empty body, an introspection `active`.
struct Sequence;

impl Workload<Vec<Vec<u8>>> for Sequence {
    fn request(&self, requests: &mut Vec<Vec<u8>>, out: &mut Vec<u8>) -> bool {
        requests.pop().map(|request| out.extend_from_slice(&request)).is_some()
    }
    fn response(&self, _: &mut Vec<Vec<u8>>, status: u16, body: &[u8]) -> bool {
        status == 200 && !body.starts_with(b"{\"active\":false")
    }
}

/// Tokens one phase produces for a later one, bounded.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<String>>>);

impl Collected {
    fn push(&self, token: &str) {
        let mut tokens = self.0.lock().unwrap();
        if tokens.len() < MAX_COLLECTED {
            tokens.push(token.to_string());
        }
    }

    /// Deal the tokens out to the connections, at most `each` apiece.
    fn deal(&self, each: usize) -> Vec<Vec<String>> {
        let tokens = std::mem::take(&mut *self.0.lock().unwrap());
        let mut hands = vec![Vec::new(); CONNECTIONS];
        for (i, token) in tokens.into_iter().enumerate() {
            if hands[i % CONNECTIONS].len() < each {
                hands[i % CONNECTIONS].push(token);
            }
        }
        hands
    }
}

/// A fixed request whose answers carry a token worth keeping.
struct Collecting {
    request: Vec<u8>,
    field: &'static str,
    into: Collected,
}

impl Workload<()> for Collecting {
    fn request(&self, _: &mut (), out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(&self.request);
        true
    }
    fn response(&self, _: &mut (), status: u16, body: &[u8]) -> bool {
        match (status, load::json_string(body, self.field)) {
            (200, Some(token)) => {
                self.into.push(token);
                true
            }
            _ => false,
        }
    }
}

/// `POST /v1/sessions`, a new subject each time; keeps the refresh tokens.
struct Sessions {
    auth: String,
    into: Collected,
}

impl Workload<(usize, u64)> for Sessions {
    fn request(&self, (connection, n): &mut (usize, u64), out: &mut Vec<u8>) -> bool {
        *n += 1;
        let body = format!("{{\"sub\":\"user-{connection}-{n}-{}\",\"client_id\":\"web\"}}", std::process::id());
        load::post(out, "/v1/sessions", "application/json", &self.auth, &body);
        true
    }
    fn response(&self, _: &mut (usize, u64), status: u16, body: &[u8]) -> bool {
        match (status, load::json_string(body, "refresh_token")) {
            (200 | 201, Some(token)) => {
                self.into.push(token);
                true
            }
            _ => false,
        }
    }
}

/// Each connection rotates its own refresh-token chain.
struct Refresh;

impl Workload<String> for Refresh {
    fn request(&self, token: &mut String, out: &mut Vec<u8>) -> bool {
        load::post_form(out, "/oauth2/token", "", &format!("grant_type=refresh_token&client_id=web&refresh_token={token}"));
        true
    }
    fn response(&self, token: &mut String, status: u16, body: &[u8]) -> bool {
        match (status, load::json_string(body, "refresh_token")) {
            (200, Some(next)) => {
                *token = next.to_string();
                true
            }
            _ => false,
        }
    }
}

fn refresh_phase(server: &Server, phase: Duration) -> Measurement {
    let chains = new_sessions(server);
    load::drive(address(server), server.pid(), chains, phase, Refresh)
}

/// The store's commits so far, the writes they held and the seconds they
/// took, from the server's /metrics.
fn store_batches(server: &Server) -> (f64, f64, f64) {
    let addr: SocketAddr = server.management.trim_start_matches("http://").parse().unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let value = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0);
    (value("tessera_store_batch_size_count"), value("tessera_store_batch_size_sum"), value("tessera_store_commit_seconds_sum"))
}

/// CPU seconds the embedded store's writer thread has used.
fn writer_cpu_seconds(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(Result::ok)
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.trim() == "tessera-store-w"))
        .map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
            let ticks: f64 =
                fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            ticks / 100.0
        })
        .sum()
}

/// One new session per connection, for the refresh chains.
fn new_sessions(server: &Server) -> Vec<String> {
    let sessions = Sessions { auth: basic("backend"), into: Collected::default() };
    let created = sessions.into.clone();
    let states: Vec<(usize, u64)> = (0..CONNECTIONS).map(|c| (c + 1_000_000, 0)).collect();
    let setup = Once(sessions);
    load::drive(address(server), server.pid(), states.into_iter().map(|s| (s, false)).collect(), Duration::from_secs(10), setup);
    let chains: Vec<String> = created.deal(1).into_iter().flatten().collect();
    assert_eq!(chains.len(), CONNECTIONS, "one session per connection");
    chains
}

/// One access token per connection, each introspected again and again.
fn access_tokens_for(server: &Server) -> Vec<String> {
    let collected = Collected::default();
    let minting = Once(Collecting {
        request: form_request("/oauth2/token", &basic("backend"), "grant_type=client_credentials"),
        field: "access_token",
        into: collected.clone(),
    });
    load::drive(address(server), server.pid(), vec![((), false); CONNECTIONS], Duration::from_secs(10), minting);
    collected.deal(1).into_iter().flatten().collect()
}

/// A workload run once per connection.
struct Once<W>(W);

impl<S, W: Workload<S>> Workload<(S, bool)> for Once<W> {
    fn request(&self, (state, sent): &mut (S, bool), out: &mut Vec<u8>) -> bool {
        !std::mem::replace(sent, true) && self.0.request(state, out)
    }
    fn response(&self, (state, _): &mut (S, bool), status: u16, body: &[u8]) -> bool {
        self.0.response(state, status, body)
    }
}

/// Microseconds per operation of each primitive, with ring, in this process.
fn crypto_costs() -> Vec<(&'static str, f64)> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // A signing input the size of an access token's header and claims.
    let message = vec![b'e'; 400];
    let signature = key.sign(&rng, &message).unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref().to_vec());
    let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]);
    let refresh_input = vec![b'r'; 350];
    let secret = SECRET.as_bytes();
    vec![
        ("sign", per_op(2_000, || key.sign(&rng, &message).unwrap())),
        ("verify", per_op(1_000, || public.verify(&message, signature.as_ref()).is_ok())),
        ("hmac", per_op(50_000, || ring::hmac::sign(&mac_key, &refresh_input))),
        ("sha256", per_op(50_000, || ring::digest::digest(&ring::digest::SHA256, secret))),
    ]
}

fn per_op<R>(iterations: u32, mut op: impl FnMut() -> R) -> f64 {
    let samples: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                black_box(op());
            }
            started.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .collect();
    median(samples)
}

/// This bench binary again, serving an empty handler behind tessera's own
/// listener — the HTTP part of every floor.
struct FloorServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl FloorServer {
    /// Start it; with `redis`, the port of the Redis server its `redis`
    /// operation writes to.
    fn start(redis: Option<u16>) -> Self {
        let mut child = Command::new("taskset")
            .args(["-c", &SERVER_CORE.to_string()])
            .arg(std::env::current_exe().unwrap())
            .env("TESSERA_BENCH_FLOOR_SERVER", "1")
            .env("TESSERA_BENCH_FLOOR_REDIS", redis.map_or(String::new(), |port| port.to_string()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("floor listening on ").expect("floor server started").parse().unwrap();
        Self { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_floor() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("floor listening on {}", listener.local_addr().unwrap());
        // A small JSON answer, the form read whole, as a handler would.
        // `/whole/<ops>/<bytes>` (one route per endpoint's whole floor,
        // its operations and size captured, so no path is parsed): the
        // same, doing the crypto operations named (`sign+hmac+hmac`) and
        // answering that many bytes.
        let crypto = Arc::new(FloorCrypto::new());
        let redis_port = std::env::var("TESSERA_BENCH_FLOOR_REDIS").ok().filter(|port| !port.is_empty());
        let store = Arc::new(FloorStore::start(redis_port).await);
        let mut router = Router::new().route(
            "/",
            get(|| async { axum::Json(serde_json::json!({"ok": true})) })
                .post(|body: bytes::Bytes| async move { axum::Json(serde_json::json!({"fields": form_urlencoded::parse(&body).count()})) }),
        );
        // A store row's whole floor is also served without its write: the
        // difference is what the write costs.
        let mut routed = std::collections::BTreeSet::new();
        for (_, _, endpoint_ops, bytes) in ENDPOINTS {
            for ops in [endpoint_ops.to_vec(), crypto_only(endpoint_ops)] {
                let path = whole_floor_path(&ops, *bytes);
                if !routed.insert(path.clone()) {
                    continue;
                }
                let ops: Arc<[(&str, u32)]> = ops.into();
                let (get_crypto, get_ops) = (crypto.clone(), ops.clone());
                let (crypto, store, bytes) = (crypto.clone(), store.clone(), *bytes);
                router = router.route(
                    &path,
                    get(move || async move { get_crypto.answer(&get_ops, bytes, 0) }).post(move |body: bytes::Bytes| async move {
                        let answer = crypto.answer(&ops, bytes, form_urlencoded::parse(&body).count());
                        store.write(&ops).await;
                        answer
                    }),
                );
            }
        }
        let limits = tessera::app::listener::Limits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(1),
        };
        tessera::app::listener::serve(listener, router, limits, std::future::pending()).await;
    });
}

/// The whole floors' store writes: what a durable refresh cannot avoid.
struct FloorStore {
    /// The commit log's writer thread, which answers each write once the
    /// batch it joined is durable.
    log: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    redis: Option<redis::aio::MultiplexedConnection>,
    next_key: std::sync::atomic::AtomicU64,
}

/// About what the embedded store appends to its log for one refresh (its
/// 4 MiB log holds about 15 000).
const LOG_RECORD_BYTES: usize = 280;
const LOG_BYTES: u64 = 4 << 20;

impl FloorStore {
    async fn start(redis_port: Option<String>) -> Self {
        let (log, writes) = std::sync::mpsc::channel();
        std::thread::spawn(move || commit_log(writes));
        let redis = match redis_port {
            Some(port) => {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
                Some(client.get_multiplexed_async_connection().await.unwrap())
            }
            None => None,
        };
        Self { log, redis, next_key: Default::default() }
    }

    /// Do the store operations among `ops`.
    async fn write(&self, ops: &[(&str, u32)]) {
        for (op, count) in ops {
            for _ in 0..*count {
                match *op {
                    "commit" => {
                        let (done, durable) = tokio::sync::oneshot::channel();
                        self.log.send(done).unwrap();
                        durable.await.unwrap();
                    }
                    "redis" => {
                        let key = format!("floor:{}", self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                        let mut connection = self.redis.clone().expect("the floor server knows Redis's port");
                        let _: redis::Value = redis::cmd("SET")
                            .arg(key)
                            .arg(&[b'c'; 64][..])
                            .arg("NX")
                            .arg("EX")
                            .arg(60)
                            .query_async(&mut connection)
                            .await
                            .unwrap();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Group commit at its simplest: take every write waiting, append one
/// record each to a file filled with zeros beforehand (so an append never
/// grows it, as the embedded store's log), `fdatasync`, answer them all.
fn commit_log(writes: std::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<()>>) {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new().create_new(true).write(true).open(dir.path().join("log")).unwrap();
    file.write_all_at(&vec![0; LOG_BYTES as usize], 0).unwrap();
    file.sync_all().unwrap();
    let (mut end, mut batch, mut frame) = (0u64, Vec::new(), Vec::new());
    while let Ok(first) = writes.recv() {
        batch.push(first);
        batch.extend(writes.try_iter());
        frame.clear();
        frame.resize(16 + batch.len() * LOG_RECORD_BYTES, b'c');
        if end + frame.len() as u64 > LOG_BYTES {
            end = 0;
        }
        file.write_all_at(&frame, end).unwrap();
        file.sync_data().unwrap();
        end += frame.len() as u64;
        for done in batch.drain(..) {
            let _ = done.send(());
        }
    }
}

/// What the whole floors do: ring's operations on inputs the size of the
/// endpoints' (as [`crypto_costs`] times them).
struct FloorCrypto {
    rng: ring::rand::SystemRandom,
    key: EcdsaKeyPair,
    public: UnparsedPublicKey<Vec<u8>>,
    signature: Vec<u8>,
    mac_key: ring::hmac::Key,
}

impl FloorCrypto {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let signature = key.sign(&rng, &[b'e'; 400]).unwrap().as_ref().to_vec();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref().to_vec());
        Self { rng, key, public, signature, mac_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]) }
    }

    /// Do `ops` and answer a JSON body of `bytes` bytes (at least the few
    /// a JSON object takes).
    fn answer(&self, ops: &[(&str, u32)], bytes: usize, fields: usize) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut done = 0;
        for (op, count) in ops {
            for _ in 0..*count {
                match *op {
                    "sign" => done += self.key.sign(&self.rng, black_box(&[b'e'; 400])).unwrap().as_ref().len(),
                    "verify" => done += usize::from(self.public.verify(black_box(&[b'e'; 400]), &self.signature).is_ok()),
                    "hmac" => done += ring::hmac::sign(&self.mac_key, black_box(&[b'r'; 350])).as_ref().len(),
                    "sha256" => done += ring::digest::digest(&ring::digest::SHA256, black_box(SECRET.as_bytes())).as_ref().len(),
                    // The store's writes follow the answer's making (FloorStore).
                    _ => {}
                }
            }
        }
        if bytes == 0 {
            return axum::http::StatusCode::OK.into_response();
        }
        let mut body = format!("{{\"fields\":{fields},\"done\":{done},\"pad\":\"");
        let padding = bytes.saturating_sub(body.len() + 2);
        body.extend(std::iter::repeat_n('x', padding));
        body.push_str("\"}");
        ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
