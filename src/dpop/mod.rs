//! DPoP (RFC 9449) at the token service: proofs at the token endpoint, the
//! key a new token is bound to, and server nonces.
//!
//! A proof is checked in two steps. [`DpopPolicy::check`] is pure and runs
//! at the HTTP edge, before any grant: the proof's format and signature
//! (tessera-jose's [`Proof`], the code the verifier library uses too),
//! `htm` `POST` and `htu` the token endpoint, `iat` no older than
//! `dpop.max_age` and no further ahead than `tokens.leeway`, and, with
//! `dpop.require_nonce`, a current nonce. [`remember`] then records the
//! proof in the store so it is used once across every replica; each grant
//! calls it only after its own cheap checks (client, token MAC, binding)
//! and before its one atomic step (consuming a refresh token, redeeming a
//! code), so a replayed request is refused before it can burn the grant,
//! and requests that fail anyway never fill the store.
//!
//! [`binding`] is the rule for what a newly issued token is bound to: the
//! key the presented grant is bound to (a proof by any other key, or none,
//! is refused), else the key of the request's proof, else nothing — unless
//! the client has `require_dpop`.
//!
//! Nonces are MAC'd time windows ([`NonceKey`]) under a secret derived from
//! the active refresh MAC key, which every replica already shares through
//! the key directory: no extra state, no extra secret to configure. When
//! the MAC key rotates, a nonce of the old one fails once and the client
//! retries with the fresh nonce that answer carries.

use crate::authority::Refusal;
use crate::config::DpopConfig;
use crate::keys::KeyView;
use crate::store::Store;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tessera_jose::Algorithm;
use tessera_jose::dpop::{NonceKey, NonceStatus, Proof, ProofError};

/// The algorithms a proof may be signed with: every one tessera implements,
/// all asymmetric (the metadata's `dpop_signing_alg_values_supported`).
pub const ALGORITHMS: [Algorithm; 5] = Algorithm::ALL;

/// What the MAC key is asked to sign to make the nonce secret.
const NONCE_SECRET_LABEL: &[u8] = b"tessera dpop nonce secret v1";

/// How proofs are judged at the token endpoint.
#[derive(Debug, Clone)]
pub struct DpopPolicy {
    token_endpoint: String,
    max_age: i64,
    leeway: i64,
    require_nonce: bool,
    nonce_period: u64,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// What the store remembers: a hash of `jkt` and `jti`.
    id: String,
    iat: i64,
    /// The last instant the proof passes the age check.
    until: i64,
}

/// Why a token request's proof was refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error(transparent)]
    Invalid(#[from] ProofError),
    /// RFC 9449 §8: answer `use_dpop_nonce` with this nonce.
    #[error("a DPoP nonce is required; retry with the one in the DPoP-Nonce header")]
    UseNonce(String),
    /// Nonces are required but no MAC key is active to make them.
    #[error("no refresh MAC key is active, so no DPoP nonce can be made; check the key directory")]
    NoNonceKey,
}

impl DpopPolicy {
    pub fn new(config: &DpopConfig, leeway: Duration, issuer: &str) -> Self {
        Self {
            token_endpoint: format!("{issuer}/oauth2/token"),
            max_age: config.max_age.as_secs() as i64,
            leeway: leeway.as_secs() as i64,
            require_nonce: config.require_nonce,
            nonce_period: config.nonce_period.as_secs(),
        }
    }

    /// Every stateless check on a token request's proof.
    pub fn check(&self, proof: &str, keys: &KeyView, now: DateTime<Utc>) -> Result<VerifiedProof, DpopError> {
        let (proof, verified) = self.verify(proof, "POST", &self.token_endpoint, None, now.timestamp())?;
        if self.require_nonce {
            let nonces = self.nonce_key(keys, now).ok_or(DpopError::NoNonceKey)?;
            if nonces.check(proof.claims().nonce.as_deref(), now.timestamp()) == NonceStatus::Invalid {
                return Err(DpopError::UseNonce(nonces.issue(now.timestamp())));
            }
        }
        Ok(verified)
    }

    /// The checks a resource server makes (RFC 9449 §7): the proof is for
    /// `method` and `uri`, fresh, and hashes `access_token`. (The `--dev`
    /// demo's protected API; services use tessera-verifier.)
    pub fn check_resource_request(
        &self,
        proof: &str,
        method: &str,
        uri: &str,
        access_token: &str,
        now: i64,
    ) -> Result<VerifiedProof, ProofError> {
        self.verify(proof, method, uri, Some(access_token), now).map(|(_, verified)| verified)
    }

    fn verify(
        &self,
        proof: &str,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<(Proof, VerifiedProof), ProofError> {
        let proof = Proof::verify(proof, &ALGORITHMS)?;
        proof.check_request(method, uri)?;
        proof.check_time(now, self.max_age, self.leeway)?;
        if let Some(token) = access_token {
            proof.check_access_token(token)?;
        }
        let id = ring::digest::digest(&ring::digest::SHA256, format!("{}.{}", proof.jkt(), proof.claims().jti).as_bytes());
        let verified = VerifiedProof {
            jkt: proof.jkt().to_string(),
            id: URL_SAFE_NO_PAD.encode(id),
            iat: proof.claims().iat,
            until: proof.acceptable_until(self.max_age).max(now),
        };
        Ok((proof, verified))
    }

    /// A nonce for the `DPoP-Nonce` header, when nonces are required.
    pub fn fresh_nonce(&self, keys: &KeyView, now: DateTime<Utc>) -> Option<String> {
        if !self.require_nonce {
            return None;
        }
        self.nonce_key(keys, now).map(|nonces| nonces.issue(now.timestamp()))
    }

    fn nonce_key(&self, keys: &KeyView, now: DateTime<Utc>) -> Option<NonceKey> {
        let mac = keys.active_mac(now)?;
        Some(NonceKey::new(mac.tag(NONCE_SECRET_LABEL).as_ref(), self.nonce_period))
    }
}

/// Record the proof as used; a replay is `invalid_dpop_proof`.
pub async fn remember(store: &dyn Store, proof: &VerifiedProof) -> Result<(), Refusal> {
    let first = store.remember_proof(&proof.id, proof.iat, proof.until).await.map_err(|error| {
        tracing::error!(%error, "DPoP proof not checked: the store could not record it");
        Refusal::StoreUnavailable
    })?;
    if first {
        Ok(())
    } else {
        Err(Refusal::InvalidDpopProof(
            "the DPoP proof was used before (or made before this server last started); make a new proof for each request".into(),
        ))
    }
}

/// RFC 9449 §5, §10: the key a token issued now is bound to. `bound` is
/// the key the presented grant (`what`: "refresh token", "code") is bound
/// to; `proof` the request's; `required` the client's `require_dpop`.
pub fn binding(what: &str, bound: Option<&str>, proof: Option<&VerifiedProof>, required: bool) -> Result<Option<String>, Refusal> {
    match (bound, proof) {
        (Some(_), None) => Err(Refusal::InvalidDpopProof(format!("the {what} is bound to a DPoP key; send a DPoP proof signed with it"))),
        (Some(key), Some(proof)) if proof.jkt != key => {
            Err(Refusal::InvalidDpopProof(format!("the DPoP proof is signed by another key than the {what} is bound to")))
        }
        (None, None) if required => {
            Err(Refusal::InvalidDpopProof("this client must use DPoP: send a DPoP proof with every token request".into()))
        }
        (_, proof) => Ok(proof.map(|proof| proof.jkt.clone())),
    }
}

/// Whether `jkt` looks like an RFC 7638 SHA-256 thumbprint (43 base64url
/// characters), as `dpop_jkt` must.
pub fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43 && URL_SAFE_NO_PAD.decode(jkt).is_ok_and(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests;
