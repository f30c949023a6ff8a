//! tessera side by side with node-oidc-provider 9 (benches/peer/server.mjs,
//! configured as benches/peer/tessera.toml is), on the same workloads: JWKS
//! GET, client_credentials (ES256), introspection of a valid token (the
//! same token again and again, and fresh tokens each seen once: tessera
//! answers a token it has verified before from a cache), and refresh
//! rotation (tessera with its memory and its embedded store; the peer with
//! its in-memory adapter).
//!
//! `benches/peer/run` (checks node and npm, then this), or `cargo bench
//! --bench peer` (runs `npm ci` in benches/peer when node_modules is
//! missing). BENCH_SECONDS (default 5) is the length of each run. Every
//! server runs on core 0 (`taskset`), the load generator on core 1, with
//! 64 keep-alive connections. After a one-second warm-up round (node
//! compiles its hot paths as they run), each workload runs 3 interleaved
//! rounds (tessera, peer, tessera, peer, …) and the table shows the medians.
//! The primary figure is server CPU time per request (user and system time
//! of every thread, from the process's CPU clock), which does not depend on how
//! fast the client is.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::load::{self, Measurement, Workload};
use support::{Server, sha256_hex};

const CONNECTIONS: usize = 64;
const ROUNDS: usize = 3;
const WARM_UP: Duration = Duration::from_secs(1);
const SERVER_CORE: usize = 0;
const CLIENT_CORE: usize = 1;
/// The one client of both servers (its SHA-256 is in benches/peer/tessera.toml).
const CLIENT_ID: &str = "bench";
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const TESSERA_CONFIG: &str = include_str!("peer/tessera.toml");
const SCOPE_FORM: &str = "scope=api%3Aread";
/// Fresh tokens each connection introspects once per run.
const TOKENS_PER_CONNECTION: usize = 250;
/// Time allowed for issuing them, outside the measured window.
const ISSUE_LIMIT: Duration = Duration::from_secs(120);

/// What differs between the two servers: names, paths, and how each gets
/// the tokens a run starts from.
struct Side {
    name: &'static str,
    jwks: &'static str,
    token: &'static str,
    introspect: &'static str,
    /// Added to the client_credentials request of the tokens to introspect.
    introspected_token_params: &'static str,
    refresh_tokens: fn(&Setup, &Target) -> Vec<String>,
}

const TESSERA: Side = Side {
    name: "tessera",
    jwks: "/.well-known/jwks.json",
    token: "/oauth2/token",
    introspect: "/oauth2/introspect",
    introspected_token_params: "",
    refresh_tokens: Setup::tessera_refresh_tokens,
};

/// The peer introspects only opaque tokens, which it issues for this
/// resource server (see the top of server.mjs).
const PEER: Side = Side {
    name: "peer",
    jwks: "/jwks",
    token: "/token",
    introspect: "/token/introspection",
    introspected_token_params: "&resource=https%3A%2F%2Fopaque.bench.test",
    refresh_tokens: Setup::peer_refresh_tokens,
};

/// A server under load.
struct Target {
    addr: SocketAddr,
    pid: u32,
    side: &'static Side,
}

impl Target {
    fn tessera(server: &Server) -> Self {
        let addr = server.base.trim_start_matches("http://").parse().expect("tessera's address");
        Self { addr, pid: server.pid(), side: &TESSERA }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `node server.mjs` on core 0, killed when dropped.
struct Peer {
    child: Child,
    addr: SocketAddr,
}

impl Peer {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new("taskset")
            .args(["-c", &SERVER_CORE.to_string(), "node", "server.mjs"])
            .current_dir(dir)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("taskset and node");
        let [base] = support::announced(&mut child, ["peer listening on http://"], Duration::from_secs(30));
        let addr = base.parse().expect("the peer's address");
        Self { child, addr }
    }

    fn target(&self) -> Target {
        Target { addr: self.addr, pid: self.child.id(), side: &PEER }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Install the peer's locked dependencies when they are not there yet.
fn ensure_node_modules(dir: &Path) {
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return;
    }
    eprintln!("installing the peer's dependencies (npm ci in {})", dir.display());
    let status =
        Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir).status().expect("npm (install Node.js with npm)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

fn peer_versions(dir: &Path) -> (String, String) {
    let node =
        Command::new("node").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let package = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json")).unwrap_or_default();
    let provider = serde_json::from_str::<serde_json::Value>(&package)
        .ok()
        .and_then(|p| p["version"].as_str().map(str::to_string))
        .unwrap_or_default();
    (node, provider)
}

// The workloads. Each answer is checked, so a misconfigured server shows
// up as failures rather than as fast errors.

struct Jwks(&'static str);

impl Workload<()> for Jwks {
    fn request(&self, _: &mut (), out: &mut Vec<u8>) -> bool {
        load::get(out, self.0, "");
        true
    }
    fn response(&self, _: &mut (), status: u16, body: &[u8]) -> bool {
        status == 200 && body.starts_with(b"{\"keys\":[")
    }
}

struct ClientCredentials {
    path: &'static str,
    auth: String,
}

impl Workload<()> for ClientCredentials {
    fn request(&self, _: &mut (), out: &mut Vec<u8>) -> bool {
        load::post_form(out, self.path, &self.auth, &format!("grant_type=client_credentials&{SCOPE_FORM}"));
        true
    }
    fn response(&self, _: &mut (), status: u16, body: &[u8]) -> bool {
        status == 200 && load::json_string(body, "access_token").is_some()
    }
}

struct Introspect {
    path: &'static str,
    auth: String,
    form: String,
}

impl Workload<()> for Introspect {
    fn request(&self, _: &mut (), out: &mut Vec<u8>) -> bool {
        load::post_form(out, self.path, &self.auth, &self.form);
        true
    }
    fn response(&self, _: &mut (), status: u16, body: &[u8]) -> bool {
        status == 200 && body.windows(13).any(|w| w == b"\"active\":true")
    }
}

/// Each connection introspects its own fresh tokens once each, then stops.
struct IntrospectEach {
    path: &'static str,
    auth: String,
}

impl Workload<Vec<String>> for IntrospectEach {
    fn request(&self, tokens: &mut Vec<String>, out: &mut Vec<u8>) -> bool {
        let Some(token) = tokens.pop() else { return false };
        let form = form_urlencoded::Serializer::new(String::new()).append_pair("token", &token).finish();
        load::post_form(out, self.path, &self.auth, &form);
        true
    }
    fn response(&self, _: &mut Vec<String>, status: u16, body: &[u8]) -> bool {
        status == 200 && body.windows(13).any(|w| w == b"\"active\":true")
    }
}

/// Set-up, not measured: each connection asks for its share of
/// client_credentials tokens, collected into `into`.
struct Issue {
    path: &'static str,
    auth: String,
    form: String,
    into: Arc<Mutex<Vec<String>>>,
}

impl Workload<usize> for Issue {
    fn request(&self, remaining: &mut usize, out: &mut Vec<u8>) -> bool {
        if *remaining == 0 {
            return false;
        }
        *remaining -= 1;
        load::post_form(out, self.path, &self.auth, &self.form);
        true
    }
    fn response(&self, _: &mut usize, status: u16, body: &[u8]) -> bool {
        match load::json_string(body, "access_token") {
            Some(token) if status == 200 => {
                self.into.lock().unwrap().push(token.to_string());
                true
            }
            _ => false,
        }
    }
}

/// Each connection rotates its own chain: the state is its current token.
/// A failed rotation loses the chain (its token is spent or refused), so
/// the first failure of a run is shown: every later one on that connection
/// follows from it.
struct Refresh {
    path: &'static str,
    auth: String,
    failure_shown: AtomicBool,
}

impl Workload<String> for Refresh {
    fn request(&self, token: &mut String, out: &mut Vec<u8>) -> bool {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("grant_type", "refresh_token"), ("refresh_token", token)])
            .finish();
        load::post_form(out, self.path, &self.auth, &form);
        true
    }
    fn response(&self, token: &mut String, status: u16, body: &[u8]) -> bool {
        match load::json_string(body, "refresh_token") {
            Some(next) if status == 200 => {
                *token = next.to_string();
                true
            }
            _ => {
                if !self.failure_shown.swap(true, Ordering::Relaxed) {
                    // An error answer: it names the error, never a token.
                    eprintln!("  first failed rotation: {status} {}", String::from_utf8_lossy(&body[..body.len().min(200)]));
                }
                false
            }
        }
    }
}

// Set-up before each run, outside the measured window.

/// A small HTTP client for the set-up requests.
struct Setup {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Setup {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // No idle connections: a server may close one between two set-ups.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        Self { runtime, client }
    }

    fn json(&self, request: reqwest::RequestBuilder) -> serde_json::Value {
        self.runtime.block_on(async {
            let response = request.send().await.expect("set-up request");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("set-up answer is JSON");
            assert!(status.is_success(), "set-up request answered {status}: {body}");
            body
        })
    }

    /// A valid access token to introspect: tessera's JWT, the peer's opaque token.
    fn introspection_form(&self, target: &Target) -> String {
        let url = format!("{}{}", target.base(), target.side.token);
        let request = self
            .client
            .post(url)
            .basic_auth(CLIENT_ID, Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(introspected_token_request(target));
        let token = self.json(request)["access_token"].as_str().expect("access_token").to_string();
        form_urlencoded::Serializer::new(String::new()).append_pair("token", &token).finish()
    }

    /// [`TOKENS_PER_CONNECTION`] new tokens to introspect for each
    /// connection, issued over the load generator's connections.
    fn fresh_access_tokens(target: &Target, auth: &str) -> Vec<Vec<String>> {
        let into = Arc::new(Mutex::new(Vec::new()));
        let issue = Issue { path: target.side.token, auth: auth.to_string(), form: introspected_token_request(target), into: into.clone() };
        let issued = load::drive(target.addr, target.pid, vec![TOKENS_PER_CONNECTION; CONNECTIONS], ISSUE_LIMIT, issue);
        assert_eq!(issued.failures, 0, "issuing the tokens to introspect failed");
        let tokens = std::mem::take(&mut *into.lock().unwrap());
        tokens.chunks(TOKENS_PER_CONNECTION).map(<[String]>::to_vec).collect()
    }

    /// One new session per connection, created through `POST /v1/sessions`.
    fn tessera_refresh_tokens(&self, target: &Target) -> Vec<String> {
        (0..CONNECTIONS)
            .map(|i| {
                let request = self
                    .client
                    .post(format!("{}/v1/sessions", target.base()))
                    .basic_auth(CLIENT_ID, Some(SECRET))
                    .json(&serde_json::json!({"sub": format!("user-{i}")}));
                self.json(request)["refresh_token"].as_str().expect("refresh_token").to_string()
            })
            .collect()
    }

    /// One new grant per connection, minted by the peer's set-up route.
    fn peer_refresh_tokens(&self, target: &Target) -> Vec<String> {
        let request = self.client.post(format!("{}/bench/refresh-tokens?n={CONNECTIONS}", target.base()));
        let tokens: Vec<String> = serde_json::from_value(self.json(request)).expect("a list of refresh tokens");
        assert_eq!(tokens.len(), CONNECTIONS);
        tokens
    }
}

fn introspected_token_request(target: &Target) -> String {
    format!("grant_type=client_credentials&{SCOPE_FORM}{}", target.side.introspected_token_params)
}

/// The medians of a workload's rounds on both sides.
struct Row {
    workload: &'static str,
    tessera: Vec<Measurement>,
    peer: Vec<Measurement>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(workload: &str, side: &str, m: Measurement) -> Measurement {
    eprintln!("  {workload}, {side}: {:.0} req/s, {:.1} µs CPU/req, {} failures", m.rate(), m.cpu_us(), m.failures);
    m
}

/// One run on tessera, then one on the peer.
fn side_by_side(row: &mut Row, [tessera, peer]: [&Target; 2], measure: impl Fn(&Target) -> Measurement) {
    row.tessera.push(report(row.workload, tessera.side.name, measure(tessera)));
    row.peer.push(report(row.workload, peer.side.name, measure(peer)));
}

/// The servers under load and what the runs share.
struct Bench {
    tessera: Target,
    tessera_embedded: Target,
    peer: Target,
    setup: Setup,
    auth: String,
}

impl Bench {
    /// Every workload once on each side, each run `run` long.
    fn round(&self, rows: &mut [Row], run: Duration) {
        let pair = [&self.tessera, &self.peer];
        side_by_side(&mut rows[0], pair, |target| load::drive(target.addr, target.pid, vec![(); CONNECTIONS], run, Jwks(target.side.jwks)));
        side_by_side(&mut rows[1], pair, |target| {
            let workload = ClientCredentials { path: target.side.token, auth: self.auth.clone() };
            load::drive(target.addr, target.pid, vec![(); CONNECTIONS], run, workload)
        });
        side_by_side(&mut rows[2], pair, |target| {
            let workload =
                Introspect { path: target.side.introspect, auth: self.auth.clone(), form: self.setup.introspection_form(target) };
            load::drive(target.addr, target.pid, vec![(); CONNECTIONS], run, workload)
        });
        // Ends early when the tokens run out; CPU per request stays exact.
        side_by_side(&mut rows[3], pair, |target| {
            let tokens = Setup::fresh_access_tokens(target, &self.auth);
            load::drive(target.addr, target.pid, tokens, run, IntrospectEach { path: target.side.introspect, auth: self.auth.clone() })
        });
        // Fresh chains for every run, so no run inherits another's history.
        let refresh = |target: &Target| {
            let tokens = (target.side.refresh_tokens)(&self.setup, target);
            load::drive(
                target.addr,
                target.pid,
                tokens,
                run,
                Refresh { path: target.side.token, auth: self.auth.clone(), failure_shown: AtomicBool::new(false) },
            )
        };
        side_by_side(&mut rows[4], pair, refresh);
        // The peer has no durable store: its in-memory run of this round
        // stands against tessera's embedded one.
        let embedded = report(rows[5].workload, "tessera", refresh(&self.tessera_embedded));
        rows[5].tessera.push(embedded);
        let peer = rows[4].peer.last().unwrap().clone();
        rows[5].peer.push(peer);
    }
}

fn empty_rows() -> Vec<Row> {
    [
        "JWKS GET",
        "client_credentials (ES256)",
        "introspection, same token again",
        "introspection, each token once",
        "refresh rotation (memory)",
        "refresh rotation (tessera embedded)",
    ]
    .into_iter()
    .map(|workload| Row { workload, tessera: Vec::new(), peer: Vec::new() })
    .collect()
}

fn main() {
    // `cargo test --benches` runs bench targets without --bench: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("peer: run with `benches/peer/run` or `cargo bench --bench peer`");
        return;
    }
    assert!(TESSERA_CONFIG.contains(&sha256_hex(SECRET)), "benches/peer/tessera.toml names another secret");
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let run = Duration::from_secs_f64(seconds);
    let peer_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
    ensure_node_modules(&peer_dir);
    load::pin_to_core(CLIENT_CORE);

    let memory = Server::start_on(TESSERA_CONFIG, &[], Some(SERVER_CORE));
    let embedded = Server::start_on(TESSERA_CONFIG, &[("TESSERA_STORE_KIND", "embedded")], Some(SERVER_CORE));
    let peer = Peer::start(&peer_dir);
    let bench = Bench {
        tessera: Target::tessera(&memory),
        tessera_embedded: Target::tessera(&embedded),
        peer: peer.target(),
        setup: Setup::new(),
        auth: load::basic_auth(CLIENT_ID, SECRET),
    };

    // Node compiles its hot paths as they run: one short unrecorded round first.
    eprintln!("warm-up");
    bench.round(&mut empty_rows(), WARM_UP.min(run));
    let mut rows = empty_rows();
    for round in 1..=ROUNDS {
        eprintln!("round {round} of {ROUNDS}");
        bench.round(&mut rows, run);
    }

    let (node, provider) = peer_versions(&peer_dir);
    println!(
        "\ntessera vs node-oidc-provider {provider} (node {node}): {CONNECTIONS} connections, {ROUNDS} interleaved rounds of {seconds} s, each server on core {SERVER_CORE}, medians"
    );
    println!("| workload | tessera req/s | CPU µs/req | peer req/s | CPU µs/req | peer/tessera CPU per request |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let rate = |ms: &[Measurement]| median(ms.iter().map(Measurement::rate).collect());
        let cpu = |ms: &[Measurement]| median(ms.iter().map(Measurement::cpu_us).collect());
        let (tessera_cpu, peer_cpu) = (cpu(&row.tessera), cpu(&row.peer));
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1}× |",
            row.workload,
            rate(&row.tessera),
            tessera_cpu,
            rate(&row.peer),
            peer_cpu,
            peer_cpu / tessera_cpu
        );
    }
    println!(
        "tessera introspects its ES256 JWTs (a token seen before: from its verified-token cache); the peer, opaque tokens (it refuses to introspect JWTs). The peer's refresh runs on its in-memory adapter in both refresh rows."
    );
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            [("tessera", &row.tessera), ("peer", &row.peer)]
                .map(|(side, ms)| (row.workload, side, ms.iter().map(|m| m.failures).sum::<u64>()))
        })
        .filter(|(_, _, failed)| *failed > 0)
        .map(|(workload, side, failed)| format!("{workload}, {side}: {failed}"))
        .collect();
    if !failures.is_empty() {
        println!("failed requests (not counted above): {}", failures.join("; "));
    }
}
