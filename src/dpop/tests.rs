//! The token endpoint's proof checks, the binding rule, nonces and replay,
//! with a manual clock and a real key directory.

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::keys::{KeyDirectory, Keyring, TokenLifetimes};
use crate::store::memory::MemoryStore;
use std::sync::Arc;
use tessera_jose::KeyPair;
use tessera_jose::dpop::{ProofClaims, sign_proof};

const ISSUER: &str = "https://auth.example.com";
const TOKEN_URI: &str = "https://auth.example.com/oauth2/token";

struct Setup {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    keyring: Keyring,
    key: KeyPair,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
    let directory = KeyDirectory::new(dir.path());
    directory.generate_mac(clock.now(), clock.now()).unwrap();
    let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(86_400) };
    let keyring = Keyring::open(directory, lifetimes, clock.clone()).unwrap();
    let key = KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap();
    Setup { _dir: dir, clock, keyring, key }
}

fn policy(require_nonce: bool) -> DpopPolicy {
    let config = DpopConfig { max_age: Duration::from_secs(60), require_nonce, nonce_period: Duration::from_secs(300) };
    DpopPolicy::new(&config, Duration::from_secs(5), ISSUER)
}

impl Setup {
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn proof(&self, htm: &str, htu: &str, jti: &str, iat: i64) -> String {
        sign_proof(&self.key, &ProofClaims::new(htm, htu, jti, iat))
    }

    fn check(&self, policy: &DpopPolicy, proof: &str) -> Result<VerifiedProof, DpopError> {
        policy.check(proof, &self.keyring.view(), self.clock.now())
    }
}

#[test]
fn a_proof_for_the_token_endpoint_passes_and_names_its_key() {
    let setup = setup();
    let checked = setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j1", setup.now())).unwrap();
    assert_eq!(checked.jkt, setup.key.thumbprint());
    assert!(is_thumbprint(&checked.jkt));
    assert_eq!(checked.until, setup.now() + 60);
    let same_uri_spelled_otherwise = setup.proof("POST", "HTTPS://auth.example.com:443/oauth2/token?x", "j2", setup.now());
    assert!(setup.check(&policy(false), &same_uri_spelled_otherwise).is_ok());
}

#[test]
fn wrong_method_uri_or_time_is_invalid() {
    let setup = setup();
    let now = setup.now();
    for (htm, htu, iat) in [
        ("GET", TOKEN_URI, now),
        ("POST", "https://auth.example.com/oauth2/revoke", now),
        ("POST", "https://elsewhere.example/oauth2/token", now),
        ("POST", TOKEN_URI, now - 61),
        ("POST", TOKEN_URI, now + 6),
    ] {
        let error = setup.check(&policy(false), &setup.proof(htm, htu, "j", iat)).unwrap_err();
        assert!(matches!(error, DpopError::Invalid(_)), "{htm} {htu} {iat}: {error:?}");
    }
    assert!(setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j", now - 60)).is_ok());
    assert!(setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j", now + 5)).is_ok());
}

#[test]
fn with_nonces_required_a_proof_needs_the_current_one() {
    let setup = setup();
    let policy = policy(true);
    let now = setup.now();
    let Err(DpopError::UseNonce(nonce)) = setup.check(&policy, &setup.proof("POST", TOKEN_URI, "j1", now)) else {
        panic!("a nonce is required")
    };
    assert_eq!(policy.fresh_nonce(&setup.keyring.view(), setup.clock.now()).as_deref(), Some(nonce.as_str()));
    let with_nonce = sign_proof(&setup.key, &ProofClaims::new("POST", TOKEN_URI, "j2", now).nonce(&nonce));
    assert!(setup.check(&policy, &with_nonce).is_ok());
    let made_up = sign_proof(&setup.key, &ProofClaims::new("POST", TOKEN_URI, "j3", now).nonce("made-up"));
    assert!(matches!(setup.check(&policy, &made_up), Err(DpopError::UseNonce(_))));
    // Two periods later the nonce has gone stale.
    setup.clock.advance(Duration::from_secs(600));
    let later = sign_proof(&setup.key, &ProofClaims::new("POST", TOKEN_URI, "j4", setup.now()).nonce(&nonce));
    assert!(matches!(setup.check(&policy, &later), Err(DpopError::UseNonce(_))));
    assert_eq!(self::policy(false).fresh_nonce(&setup.keyring.view(), setup.clock.now()), None);
}

#[tokio::test]
async fn a_proof_is_remembered_once() {
    let setup = setup();
    let store = MemoryStore::new();
    let proof = setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j1", setup.now())).unwrap();
    remember(&store, &proof).await.unwrap();
    assert!(matches!(remember(&store, &proof).await, Err(Refusal::InvalidDpopProof(_))));
    let another = setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j2", setup.now())).unwrap();
    remember(&store, &another).await.unwrap();
}

#[test]
fn a_bound_grant_needs_a_proof_by_its_key_and_an_unbound_one_takes_the_proofs() {
    let setup = setup();
    let proof = setup.check(&policy(false), &setup.proof("POST", TOKEN_URI, "j", setup.now())).unwrap();
    let jkt = proof.jkt.clone();
    let refused = |result: Result<Option<String>, Refusal>| matches!(result, Err(Refusal::InvalidDpopProof(_)));
    assert_eq!(binding("refresh token", Some(&jkt), Some(&proof), false), Ok(Some(jkt.clone())));
    assert!(refused(binding("refresh token", Some(&jkt), None, false)));
    assert!(refused(binding("refresh token", Some("another-key-thumbprint"), Some(&proof), false)));
    assert_eq!(binding("code", None, Some(&proof), false), Ok(Some(jkt)));
    assert_eq!(binding("code", None, None, false), Ok(None));
    assert!(refused(binding("code", None, None, true)));
}

#[test]
fn a_thumbprint_is_43_base64url_characters() {
    assert!(is_thumbprint("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
    for other in [
        "",
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4",
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I=",
        "!ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    ] {
        assert!(!is_thumbprint(other), "{other}");
    }
}
