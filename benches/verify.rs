//! Verification cost against ring's raw signature check, in one run.
//!
//! `cargo bench --bench verify` — for ES256 and EdDSA, four numbers:
//! `ring_raw_verify` (ring checks the signature of a token, the public key
//! already decoded from the JWK); `verify_cached` and `verify` on a verifier
//! whose verified-token cache is off, so every call is a first sight
//! (everything a service pays per new token on a warm key cache: split,
//! decode, header and key checks, signature, claims parsed into `Claims`,
//! issuer/audience/time, and the revocation lookup; `verify_cached` is the
//! entry point that never fetches); and `verify_repeated`, the same token
//! again on a verifier with the cache on (SHA-256 of the token, a lookup,
//! issuer/audience/time and the revocation lookup, the claims cloned). The
//! verifiers are the real ones: built from RFC 8414 metadata served by an
//! in-process axum server, with the JWKS and a revocation stream carrying
//! 1,000 entries. The bar is verify / ring_raw_verify ≤ 1.3; the ratios
//! are printed at the end.

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use futures_util::StreamExt;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey, VerificationAlgorithm};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tessera::keys::{SigningAlgorithm, SigningKey};
use tessera::tokens::access::{self, AccessClaims, Audience};
use tessera_verifier::Verifier;

const REVOCATIONS: u64 = 1_000;

/// Nanoseconds per iteration of each criterion sample, by benchmark id.
static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Time `iterations` runs of `routine` for criterion, and keep the figure.
fn timed<R>(id: &str, iterations: u64, mut routine: impl FnMut() -> R) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(routine());
    }
    let elapsed = started.elapsed();
    SAMPLES.lock().unwrap().entry(id.to_string()).or_default().push(elapsed.as_nanos() as f64 / iterations as f64);
    elapsed
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn claims(issuer: &str, now: i64) -> AccessClaims {
    let mut custom = serde_json::Map::new();
    custom.insert("tenant".into(), "acme".into());
    AccessClaims {
        iss: issuer.into(),
        sub: "user-4711".into(),
        aud: Audience::One("orders-api".into()),
        exp: now + 86_400,
        nbf: None,
        iat: now,
        jti: tessera::tokens::random_id(),
        client_id: "web".into(),
        scope: Some("orders:read orders:write".into()),
        sid: Some(tessera::tokens::random_id()),
        auth_time: Some(now),
        cnf: None,
        custom,
    }
}

/// The issuer side: metadata, JWKS and a revocation stream that stays open.
async fn serve_issuer(keys: &[&SigningKey]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let metadata = serde_json::json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string();
    let jwks = format!("{{\"keys\":[{}]}}", keys.iter().map(|k| k.public_jwk_json()).collect::<Vec<_>>().join(","));
    let mut backlog = String::new();
    for seq in 1..=REVOCATIONS {
        let entry = serde_json::json!({"seq": seq, "kind": "session", "sid": tessera::tokens::random_id(), "expires_at": i64::MAX});
        backlog.push_str(&format!("id: {seq}\nevent: revocation\ndata: {entry}\n\n"));
    }
    backlog.push_str(&format!("event: ready\ndata: {{\"cursor\":{REVOCATIONS}}}\n\n"));
    let app = Router::new()
        .route("/.well-known/oauth-authorization-server", get(move || async move { metadata }))
        .route("/jwks", get(move || async move { ([("cache-control", "public, max-age=3600")], jwks) }))
        .route(
            "/v1/revocations/stream",
            get(move || async move {
                let events =
                    futures_util::stream::iter([Ok::<_, std::convert::Infallible>(backlog)]).chain(futures_util::stream::pending());
                ([("content-type", "text/event-stream")], axum::body::Body::from_stream(events)).into_response()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn raw_verifier(key: &SigningKey) -> UnparsedPublicKey<Vec<u8>> {
    let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk_json()).unwrap();
    let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let (algorithm, bytes): (&'static dyn VerificationAlgorithm, Vec<u8>) = match key.alg {
        SigningAlgorithm::ES256 => (&ECDSA_P256_SHA256_FIXED, [vec![4], member("x"), member("y")].concat()),
        SigningAlgorithm::EdDSA => (&ED25519, member("x")),
        other => panic!("{other} is not benchmarked"),
    };
    UnparsedPublicKey::new(algorithm, bytes)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keys: Vec<SigningKey> = [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA]
        .into_iter()
        .map(|alg| SigningKey::from_pkcs8(alg, &SigningKey::generate(alg).unwrap()).unwrap())
        .collect();
    let base = runtime.block_on(serve_issuer(&keys.iter().collect::<Vec<_>>()));
    let builder = Verifier::builder().issuer(&base).audience("orders-api");
    let verifier = runtime.block_on(builder.clone().verified_cache(0).build()).expect("verifier builds");
    let caching = runtime.block_on(builder.build()).expect("verifier builds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;

    let mut criterion = Criterion::default().configure_from_args();
    for key in &keys {
        let token = access::mint(key, &claims(&base, now));
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let raw = raw_verifier(key);
        assert!(raw.verify(input.as_bytes(), &signature).is_ok() && verifier.verify_cached(&token).is_ok());
        assert!(caching.verify_cached(&token).is_ok(), "the caching verifier holds the token from here on");

        let alg = key.alg.as_str();
        let mut group = criterion.benchmark_group(alg);
        group.bench_function("ring_raw_verify", |b| {
            b.iter_custom(|n| timed(&format!("{alg}/ring_raw_verify"), n, || raw.verify(black_box(input.as_bytes()), &signature)))
        });
        group.bench_function("verify_cached", |b| {
            b.iter_custom(|n| timed(&format!("{alg}/verify_cached"), n, || verifier.verify_cached(black_box(&token)).unwrap()))
        });
        // The warm path never awaits, so one poll completes the future.
        group.bench_function("verify", |b| {
            b.iter_custom(|n| {
                timed(&format!("{alg}/verify"), n, || {
                    match pin!(verifier.verify(black_box(&token))).poll(&mut Context::from_waker(Waker::noop())) {
                        Poll::Ready(claims) => claims.unwrap(),
                        Poll::Pending => panic!("verify awaited on a warm cache"),
                    }
                })
            })
        });
        group.bench_function("verify_repeated", |b| {
            b.iter_custom(|n| {
                let misses = caching.verified_cache_stats().misses;
                let elapsed = timed(&format!("{alg}/verify_repeated"), n, || {
                    match pin!(caching.verify(black_box(&token))).poll(&mut Context::from_waker(Waker::noop())) {
                        Poll::Ready(claims) => claims.unwrap(),
                        Poll::Pending => panic!("verify awaited on a held token"),
                    }
                });
                assert_eq!(caching.verified_cache_stats().misses, misses, "verify_repeated checked a signature");
                elapsed
            })
        });
        group.finish();
    }
    criterion.final_summary();

    let samples = SAMPLES.lock().unwrap();
    println!("\nmedian per token (µs) and ratio to ring's raw verify:");
    for alg in ["ES256", "EdDSA"] {
        let figure = |name: &str| samples.get(&format!("{alg}/{name}")).map(|s| median(s) / 1_000.0);
        let Some(raw) = figure("ring_raw_verify") else { continue };
        let mut line = format!("{alg:>6}: ring_raw_verify {raw:7.2}");
        for name in ["verify_cached", "verify", "verify_repeated"] {
            if let Some(micros) = figure(name) {
                line.push_str(&format!("  {name} {micros:7.2} ({:.3}×)", micros / raw));
            }
        }
        println!("{line}");
    }
}
