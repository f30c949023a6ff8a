//! DPoP proofs (RFC 9449): a JWT the client signs for each request with a
//! key of its own and puts in the `DPoP` header, so that a token bound to
//! that key (`cnf.jkt`) is useless to anyone who has the token but not the
//! key.
//!
//! This module owns the proof as a format — reading and checking one,
//! writing one — and the two hashes the protocol names: the RFC 7638
//! thumbprint of the proof's key ([`Proof::jkt`]) and `ath`, the hash of
//! the access token presented with it ([`access_token_hash`]). Policy stays
//! with the caller: which algorithms, how old a proof may be, whether a
//! server nonce is required, and remembering `jti`s so a proof is used
//! once — the token service keeps those in its store, a resource server in
//! memory, and both call the same checks here.
//!
//! Reading follows RFC 9449 §4.3 in order: one compact JWS of at most
//! [`MAX_PROOF_BYTES`]; `typ` `dpop+jwt`; no `crit`; a `jwk` with no
//! private member; an asymmetric `alg` from the caller's allow-list that
//! the key can have; the signature by that key; then the claims `jti`,
//! `htm`, `htu` and `iat`, all required. [`Proof::check_request`],
//! [`Proof::check_time`] and [`Proof::check_access_token`] compare them
//! with the request. [`NonceKey`] issues and checks server nonces (§8)
//! that need no shared state.
//!
//! ```
//! use tessera_jose::{Algorithm, KeyPair};
//! use tessera_jose::dpop::{Proof, ProofClaims, sign_proof};
//! let key = KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256)?)?;
//! let claims = ProofClaims::new("POST", "https://auth.example.com/oauth2/token", "n7x1", 1_800_000_000);
//! let proof = sign_proof(&key, &claims);
//!
//! let proof = Proof::verify(&proof, &Algorithm::ALL)?;
//! proof.check_request("POST", "https://AUTH.example.com:443/oauth2/token?x=1")?;
//! proof.check_time(1_800_000_010, 60, 5)?;
//! assert_eq!(proof.jkt(), key.thumbprint());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod htu;
mod key;
mod nonce;

pub use htu::normalize_htu;
pub use nonce::{NonceKey, NonceStatus};

use crate::{Algorithm, KeyPair, typ};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Larger proofs are refused before any decoding (a proof with a 4096-bit
/// RSA key is about 1.5 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The longest `jti` accepted; it becomes a key in a replay cache.
pub const MAX_JTI_LENGTH: usize = 256;

/// Why a DPoP proof was refused; each variant is one check. Every one of
/// them is `invalid_dpop_proof` on the wire (RFC 9449 §5, §7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not a compact JWS with a JSON header and claims; the text says which part.
    #[error("the DPoP proof is not a JWT: {0}")]
    Malformed(&'static str),
    /// `typ` is absent or not `dpop+jwt`.
    #[error("the DPoP proof's typ is {0:?}; it must be \"dpop+jwt\"")]
    WrongType(Option<String>),
    /// `alg` is `none`, symmetric, or not a JOSE name implemented here.
    #[error("the DPoP proof's alg {0:?} is not an asymmetric algorithm this service accepts")]
    UnsupportedAlgorithm(String),
    /// `alg` is implemented but not in the caller's allow-list.
    #[error("the DPoP proof's alg {0} is not accepted here")]
    AlgorithmNotAllowed(Algorithm),
    /// The `jwk` header carries a private or symmetric key member.
    #[error("the DPoP proof's jwk contains the private member {0:?}; send the public key only, and replace this key")]
    PrivateKey(&'static str),
    /// The `jwk` header is missing or no public key of the header's `alg`.
    #[error("the DPoP proof's jwk cannot be used: {0}")]
    UnusableKey(String),
    /// The signature is not the `jwk`'s over the proof.
    #[error("the DPoP proof's signature does not verify with its jwk")]
    BadSignature,
    /// The claims are not RFC 9449 §4.2 proof claims.
    #[error("the DPoP proof's claims are invalid: {0}")]
    InvalidClaims(String),
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for method {htm:?}, not this request's {expected}")]
    WrongMethod {
        /// The proof's `htm`.
        htm: String,
        /// The request's method.
        expected: String,
    },
    /// `htu` is not the request's URI (after normalisation, RFC 9449 §4.3).
    #[error("the DPoP proof is for {htu:?}, not this request's {expected}")]
    WrongUri {
        /// The proof's `htu`.
        htu: String,
        /// The request's URI, normalised.
        expected: String,
    },
    /// `iat` is older than the window the caller allows.
    #[error("the DPoP proof was made at {iat} (Unix time), too long ago; make a fresh proof for each request")]
    TooOld {
        /// The proof's `iat`.
        iat: i64,
    },
    /// `iat` is later than now plus the leeway.
    #[error("the DPoP proof was made at {iat} (Unix time), in the future; check the client's clock")]
    IssuedInFuture {
        /// The proof's `iat`.
        iat: i64,
    },
    /// An access token was presented but the proof has no `ath`.
    #[error("the DPoP proof has no ath, the hash of the access token it is sent with")]
    MissingAccessTokenHash,
    /// `ath` is not the hash of the presented access token.
    #[error("the DPoP proof's ath is not the hash of the access token it is sent with")]
    WrongAccessTokenHash,
}

/// The claims of a DPoP proof (RFC 9449 §4.2).
///
/// Non-exhaustive: make one with [`ProofClaims::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProofClaims {
    /// The proof's unique id: a server accepts it once.
    pub jti: String,
    /// The HTTP method of the request.
    pub htm: String,
    /// The HTTP URI of the request, without query and fragment.
    pub htu: String,
    /// When the proof was made (Unix seconds).
    pub iat: i64,
    /// base64url(SHA-256(access token)), when sent with an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    /// The server's `DPoP-Nonce`, when it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ProofClaims {
    /// Claims for a request without an access token or nonce.
    pub fn new(htm: &str, htu: &str, jti: &str, iat: i64) -> Self {
        Self { jti: jti.into(), htm: htm.into(), htu: htu.into(), iat, ath: None, nonce: None }
    }

    /// With `ath` for `access_token` (requests to a resource server).
    pub fn access_token(mut self, access_token: &str) -> Self {
        self.ath = Some(access_token_hash(access_token));
        self
    }

    /// With the server's nonce.
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.into());
        self
    }
}

/// A proof whose signature verified with its own key.
#[derive(Debug, Clone)]
pub struct Proof {
    jkt: String,
    alg: Algorithm,
    claims: ProofClaims,
}

/// The header as read.
#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: String,
    jwk: Option<key::Jwk>,
    /// RFC 7515 §4.1.11: extensions that must be understood; none are.
    crit: Option<serde::de::IgnoredAny>,
}

impl Proof {
    /// Read `proof` and check everything that needs no request: shape,
    /// `typ`, the key, `alg` (in `allowed`, and one the key can have), the
    /// signature, and that the claims are there.
    pub fn verify(proof: &str, allowed: &[Algorithm]) -> Result<Self, ProofError> {
        use ProofError::Malformed;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(Malformed("longer than 8 KiB"));
        }
        let mut parts = proof.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Malformed("not three dot-separated parts"));
        };
        let header = crate::base64url::decode(header).map_err(|_| Malformed("the header is not base64url"))?;
        let header: ProofHeader = serde_json::from_slice(&header).map_err(|_| Malformed("the header is not a JOSE header with alg"))?;
        if header.crit.is_some() {
            return Err(Malformed("the header has crit extensions, which are not implemented"));
        }
        match header.typ.as_deref() {
            Some(found) if typ::DPOP_JWT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(found)) => {}
            found => return Err(ProofError::WrongType(found.map(|t| t.chars().take(64).collect()))),
        }
        let jwk = header.jwk.ok_or_else(|| ProofError::UnusableKey("the header has no jwk".into()))?;
        let embedded = key::import(&jwk, &header.alg, allowed)?;
        let signature = crate::base64url::decode(signature).map_err(|_| Malformed("the signature is not base64url"))?;
        let signing_input = &proof[..proof.len() - proof.rsplit('.').next().map_or(0, str::len) - 1];
        if !embedded.key.verify(signing_input.as_bytes(), &signature) {
            return Err(ProofError::BadSignature);
        }
        let payload = crate::base64url::decode(payload).map_err(|_| Malformed("the payload is not base64url"))?;
        let claims: ProofClaims = serde_json::from_slice(&payload)
            .map_err(|e| ProofError::InvalidClaims(format!("{e}; jti, htm, htu (strings) and iat (integer) are required")))?;
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LENGTH {
            return Err(ProofError::InvalidClaims(format!("jti must have 1 to {MAX_JTI_LENGTH} characters")));
        }
        Ok(Self { jkt: embedded.jkt, alg: embedded.key.alg(), claims })
    }

    /// The RFC 7638 thumbprint of the proof's key: what `cnf.jkt` and
    /// `dpop_jkt` carry.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The algorithm the proof was signed with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The proof's claims.
    pub fn claims(&self) -> &ProofClaims {
        &self.claims
    }

    /// `htm` is `method` (exactly: methods are case-sensitive) and `htu`
    /// is `uri`, both normalised as RFC 9449 §4.3 asks.
    pub fn check_request(&self, method: &str, uri: &str) -> Result<(), ProofError> {
        if self.claims.htm != method {
            return Err(ProofError::WrongMethod { htm: clip(&self.claims.htm), expected: method.to_string() });
        }
        // The common case, the same spelling: nothing to normalise.
        if self.claims.htu == uri && normalize_htu(uri).is_some() {
            return Ok(());
        }
        let expected = normalize_htu(uri);
        if expected.is_none() || normalize_htu(&self.claims.htu) != expected {
            return Err(ProofError::WrongUri { htu: clip(&self.claims.htu), expected: expected.unwrap_or_else(|| clip(uri)) });
        }
        Ok(())
    }

    /// `iat` is at most `max_age` seconds before `now` and at most
    /// `leeway` seconds after it. A replay cache must keep the `jti` until
    /// [`Proof::acceptable_until`].
    pub fn check_time(&self, now: i64, max_age: i64, leeway: i64) -> Result<(), ProofError> {
        let iat = self.claims.iat;
        if now.saturating_sub(iat) > max_age {
            return Err(ProofError::TooOld { iat });
        }
        if iat.saturating_sub(now) > leeway {
            return Err(ProofError::IssuedInFuture { iat });
        }
        Ok(())
    }

    /// The last instant (Unix seconds) [`Proof::check_time`] with this
    /// `max_age` accepts the proof: how long its `jti` must be remembered.
    pub fn acceptable_until(&self, max_age: i64) -> i64 {
        self.claims.iat.saturating_add(max_age)
    }

    /// `ath` is the hash of `access_token` (RFC 9449 §4.3 step 12).
    pub fn check_access_token(&self, access_token: &str) -> Result<(), ProofError> {
        match self.claims.ath.as_deref() {
            None => Err(ProofError::MissingAccessTokenHash),
            Some(ath) if ath == access_token_hash(access_token) => Ok(()),
            Some(_) => Err(ProofError::WrongAccessTokenHash),
        }
    }
}

/// At most 200 characters of a claim, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

/// `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the access token's
/// ASCII bytes.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()))
}

/// A proof signed by `key`, with its public JWK in the header.
pub fn sign_proof(key: &KeyPair, claims: &ProofClaims) -> String {
    let jwk: serde_json::Map<String, serde_json::Value> =
        key.public_members().iter().map(|(name, value)| (name.to_string(), value.as_str().into())).collect();
    let header = serde_json::json!({ "typ": typ::DPOP_JWT, "alg": key.alg().as_str(), "jwk": jwk });
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    crate::sign_compact(&header, &serde_json::to_vec(claims).expect("claims serialize"), key)
}

#[cfg(test)]
mod tests;
