//! Access-token issue cost against ring's raw signature, in one run.
//!
//! `cargo bench --bench issue` — for each algorithm, three numbers:
//! `ring_raw_sign` (one signature over a token-sized input, key already
//! parsed), `tessera_issue` (claims → serialized, encoded, signed compact
//! JWT with a fresh jti), and `ring_parse_and_sign` to show what caching the
//! parsed key saves. The ratio tessera_issue / ring_raw_sign is the bar
//! (≤ 1.5×).

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use std::hint::black_box;
use tessera::keys::{SigningAlgorithm, SigningKey};
use tessera::tokens::access::{self, AccessClaims, Audience};

fn claims() -> AccessClaims {
    let mut custom = serde_json::Map::new();
    custom.insert("tenant".into(), "acme".into());
    AccessClaims {
        iss: "https://auth.example.com".into(),
        sub: "user-4711".into(),
        aud: Audience::One("orders-api".into()),
        exp: 1_800_000_600,
        nbf: None,
        iat: 1_800_000_000,
        jti: tessera::tokens::random_id(),
        client_id: "web".into(),
        scope: Some("orders:read orders:write".into()),
        sid: Some(tessera::tokens::random_id()),
        auth_time: Some(1_800_000_000),
        cnf: None,
        custom,
    }
}

fn issue(c: &mut Criterion) {
    let rng = SystemRandom::new();
    // A signing input of the size tessera's tokens have.
    let key = SigningKey::from_pkcs8(SigningAlgorithm::ES256, &SigningKey::generate(SigningAlgorithm::ES256).unwrap()).unwrap();
    let sample = access::mint(&key, &claims());
    let input = sample.rsplit_once('.').unwrap().0.as_bytes().to_vec();

    for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
        let der = SigningKey::generate(alg).unwrap();
        let key = SigningKey::from_pkcs8(alg, &der).unwrap();
        let mut group = c.benchmark_group(alg.as_str());
        match alg {
            SigningAlgorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).unwrap();
                group.bench_function("ring_raw_sign", |b| b.iter(|| pair.sign(&rng, black_box(&input)).unwrap()));
                group.bench_function("ring_parse_and_sign", |b| {
                    b.iter(|| {
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, black_box(&der), &rng)
                            .unwrap()
                            .sign(&rng, &input)
                            .unwrap()
                    })
                });
            }
            _ => {
                let pair = Ed25519KeyPair::from_pkcs8(&der).unwrap();
                group.bench_function("ring_raw_sign", |b| b.iter(|| pair.sign(black_box(&input))));
                group.bench_function("ring_parse_and_sign", |b| {
                    b.iter(|| Ed25519KeyPair::from_pkcs8(black_box(&der)).unwrap().sign(&input))
                });
            }
        }
        group.bench_function("tessera_issue", |b| b.iter(|| access::mint(&key, black_box(&claims()))));
        group.finish();
    }
}

criterion_group!(benches, issue);
criterion_main!(benches);
