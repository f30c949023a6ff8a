//! Key rotation as verifiers live through it: a server rotating every few
//! seconds, several `tessera_verifier` instances verifying fresh tokens
//! continuously through at least three rotations with zero failures; then
//! `keys revoke`, after which tokens under that key fail within a second.

use crate::helpers::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tessera_verifier::Verifier;

#[tokio::test]
async fn verifiers_live_through_three_rotations_and_a_key_revocation() {
    let env = [("TESSERA_KEYS_ROTATE_EVERY", "3s"), ("TESSERA_KEYS_JWKS_MAX_AGE", "1s"), ("TESSERA_TOKENS_ACCESS_TTL", "30s")];
    let server = TestServer::start_with(&default_config(), &env).await;
    let mut verifiers = Vec::new();
    for _ in 0..3 {
        let verifier =
            Verifier::builder().issuer(server.base.clone()).audience("backend-api").revocation_feed(true).build().await.expect("verifier");
        verifiers.push(verifier);
    }

    // Fresh tokens, verified by every instance, until four keys have signed.
    let mut kids = BTreeSet::new();
    let (mut verified, mut failures) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while kids.len() < 4 {
        assert!(Instant::now() < deadline, "fewer than three rotations in 30 s: {kids:?}");
        let token = server.access_token(json!({"sub": "rotating"})).await;
        kids.insert(kid_of(&token));
        for verifier in &verifiers {
            match verifier.verify(&token).await {
                Ok(_) => verified += 1,
                Err(error) => failures.push(error.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{verified} verifications across {} keys, {} failures", kids.len(), failures.len());
    assert!(failures.is_empty(), "verifications failed during rotation: {failures:?}");

    // Emergency: revoke the key that signs now.
    let doomed = server.access_token(json!({"sub": "rotating"})).await;
    for verifier in &verifiers {
        verifier.verify(&doomed).await.expect("valid before the revocation");
    }
    let output = server.cli(&["keys", "revoke", &kid_of(&doomed)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let revoked_at = Instant::now();
    for verifier in &verifiers {
        while verifier.verify(&doomed).await.is_ok() {
            assert!(revoked_at.elapsed() < Duration::from_secs(1), "a token under a revoked key still verified after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("revoked key refused by every verifier after {:?}", revoked_at.elapsed());
}
