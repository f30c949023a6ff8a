//! What DPoP costs, in one run, each figure beside the one it adds to.
//!
//! `cargo bench --bench dpop` (BENCH_SECONDS, default 10, sets each refresh
//! phase's length).
//!
//! 1. The verifier: `verify` of a bearer token against `verify_dpop` of a
//!    bound token with a fresh proof (the proof's signature, `htm`/`htu`,
//!    `iat`, `ath`, the key match and the replay cache), and ring's raw
//!    ES256 verify as the yardstick. Proofs are made before each sample,
//!    one per iteration, so signing them is not measured.
//! 2. The token endpoint's proof path alone, in-process: the stateless
//!    checks (`DpopPolicy::check`) and recording the proof in the memory
//!    store, beside ring's raw verify.
//! 3. The token service: the refresh grant on the release binary (memory
//!    store, 64 connections each rotating its own chain), without and with
//!    DPoP, reporting the server's CPU time per request from /proc. The
//!    target is at most one extra signature verification (~75 µs for ES256
//!    here) per DPoP refresh. Each client's proofs are signed before the
//!    phase starts, so the DPoP phase's client does no more work than the
//!    bearer phase's while the server is measured.

#[path = "support/mod.rs"]
mod support;

use axum::Router;
use axum::routing::get;
use criterion::Criterion;
use serde_json::Value;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use support::{Server, cpu_seconds, sha256_hex};
use tessera::keys::{SigningAlgorithm, SigningKey};
use tessera::tokens::access::{self, AccessClaims, Audience, Confirmation};
use tessera_jose::dpop::{ProofClaims, sign_proof};
use tessera_jose::{Algorithm, KeyPair};
use tessera_verifier::Verifier;

const CONCURRENCY: usize = 64;
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const RESOURCE: &str = "https://api.example.com/orders";
/// Proofs signed ahead for each chain; a chain stops when it runs out.
const PROOFS_PER_CHAIN: usize = 1_500;

/// Nanoseconds per iteration of each criterion sample, by benchmark id.
static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iterations: u64, elapsed: Duration) -> Duration {
    SAMPLES.lock().unwrap().entry(id.to_string()).or_default().push(elapsed.as_nanos() as f64 / iterations as f64);
    elapsed
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn es256_pair() -> KeyPair {
    KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap()
}

fn claims(issuer: &str, jkt: Option<String>) -> AccessClaims {
    let now = unix_now();
    AccessClaims {
        iss: issuer.into(),
        sub: "user-4711".into(),
        aud: Audience::One("orders-api".into()),
        exp: now + 86_400,
        nbf: None,
        iat: now,
        jti: tessera::tokens::random_id(),
        client_id: "web".into(),
        scope: Some("orders:read".into()),
        sid: Some(tessera::tokens::random_id()),
        auth_time: Some(now),
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        custom: serde_json::Map::new(),
    }
}

/// Metadata and JWKS of one signing key; no revocation feed.
async fn serve_issuer(key: &SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let metadata = serde_json::json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string();
    let jwks = format!("{{\"keys\":[{}]}}", key.public_jwk_json());
    let app = Router::new()
        .route("/.well-known/oauth-authorization-server", get(move || async move { metadata }))
        .route("/jwks", get(move || async move { ([("cache-control", "public, max-age=3600")], jwks) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Complete a future that must not await (the verifier's warm path).
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("awaited on a warm cache"),
    }
}

fn verifier_figures(runtime: &tokio::runtime::Runtime) {
    let signing = SigningKey::from_pkcs8(SigningAlgorithm::ES256, &SigningKey::generate(SigningAlgorithm::ES256).unwrap()).unwrap();
    let base = runtime.block_on(serve_issuer(&signing));
    let verifier = runtime
        .block_on(Verifier::builder().issuer(&base).audience("orders-api").revocation_feed(false).dpop_replay_capacity(20_000_000).build())
        .expect("verifier builds");
    let client_key = es256_pair();
    let bearer = access::mint(&signing, &claims(&base, None));
    let bound = access::mint(&signing, &claims(&base, Some(client_key.thumbprint())));
    let proof = |jti: u64| sign_proof(&client_key, &ProofClaims::new("GET", RESOURCE, &jti.to_string(), unix_now()).access_token(&bound));
    assert!(ready(verifier.verify(&bearer)).is_ok());
    assert!(ready(verifier.verify_dpop(&bound, &proof(0), "GET", RESOURCE)).is_ok());
    let (input, signature) = bearer.rsplit_once('.').unwrap();
    let signature = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature).unwrap();

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("verifier");
    group.bench_function("ring_raw_verify", |b| {
        b.iter_custom(|n| {
            let started = Instant::now();
            for _ in 0..n {
                black_box(signing.verify(black_box(input.as_bytes()), &signature));
            }
            record("ring_raw_verify", n, started.elapsed())
        })
    });
    group.bench_function("verify_bearer", |b| {
        b.iter_custom(|n| {
            let started = Instant::now();
            for _ in 0..n {
                black_box(ready(verifier.verify(black_box(&bearer))).unwrap());
            }
            record("verify_bearer", n, started.elapsed())
        })
    });
    let mut next_jti = 1u64;
    group.bench_function("verify_dpop", |b| {
        b.iter_custom(|n| {
            let proofs: Vec<String> = (0..n).map(|i| proof(next_jti + i)).collect();
            next_jti += n;
            let started = Instant::now();
            for proof in &proofs {
                black_box(ready(verifier.verify_dpop(black_box(&bound), proof, "GET", RESOURCE)).unwrap());
            }
            record("verify_dpop", n, started.elapsed())
        })
    });
    group.finish();

    // The token endpoint's proof path, without HTTP or a grant around it.
    let dir = tempfile::tempdir().unwrap();
    let clock: tessera::clock::SharedClock = std::sync::Arc::new(tessera::clock::SystemClock);
    let directory = tessera::keys::KeyDirectory::new(dir.path().join("keys"));
    directory.generate_mac(clock.now(), clock.now()).unwrap();
    let lifetimes = tessera::keys::TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(86_400) };
    let keyring = tessera::keys::Keyring::open(directory, lifetimes, clock.clone()).unwrap();
    let issuer = "https://auth.example.com";
    let config =
        tessera::config::DpopConfig { max_age: Duration::from_secs(60), require_nonce: false, nonce_period: Duration::from_secs(300) };
    let policy = tessera::dpop::DpopPolicy::new(&config, Duration::from_secs(30), issuer);
    let store = tessera::store::memory::MemoryStore::new();
    let token_endpoint = format!("{issuer}/oauth2/token");
    let mut group = criterion.benchmark_group("token_endpoint");
    let mut next_jti = 0u64;
    group.bench_function("proof_check_and_record", |b| {
        b.iter_custom(|n| {
            let proofs: Vec<String> = (0..n)
                .map(|i| sign_proof(&client_key, &ProofClaims::new("POST", &token_endpoint, &(next_jti + i).to_string(), unix_now())))
                .collect();
            next_jti += n;
            let view = keyring.view();
            let started = Instant::now();
            for proof in &proofs {
                let checked = policy.check(black_box(proof), &view, clock.now()).unwrap();
                ready(tessera::dpop::remember(&store, &checked)).unwrap();
            }
            record("token_endpoint_proof", n, started.elapsed())
        })
    });
    group.finish();
    criterion.final_summary();
}

struct Phase {
    name: &'static str,
    requests: usize,
    failures: usize,
    elapsed: Duration,
    cpu: f64,
}

/// 64 chains of refreshes for `seconds`, each request with a fresh proof when `dpop`.
async fn refresh_phase(name: &'static str, dpop: bool, seconds: u64) -> Phase {
    let config = format!(
        "[store]\nkind = \"memory\"\n\n[[clients]]\nid = \"backend\"\nsecret_sha256 = \"{}\"\npermissions = [\"sessions\"]\n\n[[clients]]\nid = \"web\"\npublic = true\n",
        sha256_hex(SECRET)
    );
    let server = Server::start(&config, &[]);
    let base = server.base.clone();
    let token_url = format!("{base}/oauth2/token");
    let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
    let mut chains = Vec::new();
    for i in 0..CONCURRENCY {
        let key = es256_pair();
        let mut body = serde_json::json!({"sub": format!("user-{i}"), "client_id": "web"});
        if dpop {
            body["dpop_jkt"] = key.thumbprint().into();
        }
        let session: Value = client
            .post(format!("{base}/v1/sessions"))
            .basic_auth("backend", Some(SECRET))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Signed now, used within the phase: well inside dpop.max_age.
        let proofs: Vec<String> = if dpop {
            (0..PROOFS_PER_CHAIN)
                .map(|n| sign_proof(&key, &ProofClaims::new("POST", &token_url, &format!("{i}-{n}"), unix_now())))
                .collect()
        } else {
            Vec::new()
        };
        chains.push((session["refresh_token"].as_str().unwrap().to_string(), proofs));
    }
    let cpu_before = cpu_seconds(server.pid());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = chains
        .into_iter()
        .map(|(mut token, proofs)| {
            let (client, url) = (client.clone(), token_url.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0usize, 0usize);
                let mut proofs = proofs.into_iter();
                while Instant::now() < deadline && ok + failed < 1_000_000 {
                    let form = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs([("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token.as_str())])
                        .finish();
                    let mut request = client.post(&url).header("content-type", "application/x-www-form-urlencoded").body(form);
                    if dpop {
                        let Some(proof) = proofs.next() else { break };
                        request = request.header("dpop", proof);
                    }
                    match request.send().await {
                        Ok(response) if response.status() == 200 => {
                            let body: Value = response.json().await.unwrap();
                            token = body["refresh_token"].as_str().unwrap().to_string();
                            ok += 1;
                        }
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut requests, mut failures) = (0, 0);
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        requests += ok;
        failures += failed;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    Phase { name, requests, failures, elapsed, cpu }
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("dpop: run with `cargo bench --bench dpop`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    verifier_figures(&runtime);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let phases = [runtime.block_on(refresh_phase("bearer", false, seconds)), runtime.block_on(refresh_phase("dpop", true, seconds))];

    let samples = SAMPLES.lock().unwrap();
    let figure = |name: &str| samples.get(name).map(|s| median(s) / 1_000.0).unwrap_or(f64::NAN);
    let (raw, bearer, dpop) = (figure("ring_raw_verify"), figure("verify_bearer"), figure("verify_dpop"));
    println!("\nverifier, median per token (µs):");
    println!("| ring raw ES256 verify | verify (bearer) | verify_dpop (token + proof) | DPoP adds | in raw verifies |");
    println!("|---|---|---|---|---|");
    println!("| {raw:.1} | {bearer:.1} | {dpop:.1} | {:.1} | {:.2} |", dpop - bearer, (dpop - bearer) / raw);
    let endpoint = figure("token_endpoint_proof");
    println!(
        "\ntoken endpoint proof path (check + record in the memory store): {endpoint:.1} µs = {:.2} raw ES256 verifies",
        endpoint / raw
    );

    println!("\nrefresh grant, {CONCURRENCY} connections, memory store, {seconds} s each, 127.0.0.1:");
    println!("| refresh | requests/s | server CPU per request | failures |");
    println!("|---|---|---|---|");
    let per_request = |p: &Phase| p.cpu / p.requests.max(1) as f64 * 1e6;
    for p in &phases {
        println!("| {} | {:.0} | {:.1} µs | {} |", p.name, p.requests as f64 / p.elapsed.as_secs_f64(), per_request(p), p.failures);
    }
    let extra = per_request(&phases[1]) - per_request(&phases[0]);
    println!("DPoP adds {extra:.1} µs of server CPU per refresh = {:.2} raw ES256 verifies ({raw:.1} µs each)", extra / raw);
}
