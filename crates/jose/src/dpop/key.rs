//! The proof's own key (RFC 9449 §4.2 `jwk`): a public key of an
//! asymmetric algorithm, made into a ring [`PublicKey`] and named by its
//! RFC 7638 thumbprint — the `jkt` a bound token carries.
//!
//! Unlike an access token, whose algorithm comes from a key the issuer
//! published, a proof brings its key along; so the header's `alg` is
//! checked against an allow-list of asymmetric algorithms first, and then
//! against the key: an EC or OKP key fixes its algorithm by its curve, an
//! RSA key takes RS256 or PS256 from the header. A JWK with any private
//! member (`d`, the RSA primes and CRT values, `oth`) or a symmetric key
//! (`kty: oct`, `k`) is refused outright: the client has leaked its secret,
//! and accepting it would bind tokens to a key anyone may now hold.
//!
//! The thumbprint is computed over the members exactly as sent, so each
//! key must have one spelling: base64url without padding or stray bits
//! (the decoder refuses both), fixed lengths for EC and OKP coordinates,
//! and no leading zero octets in RSA's `n` and `e` (RFC 7518 §6.3.1). Once
//! those are checked the members need no JSON escaping, so the RFC 7638
//! input is written directly — this runs on every DPoP request.

use super::ProofError;
use crate::{Algorithm, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The `jwk` header as read: the public members used, and every member
/// only a private or symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2), to refuse it. Other members are ignored.
#[derive(Deserialize)]
pub(super) struct Jwk {
    kty: Option<String>,
    crv: Option<String>,
    alg: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl Jwk {
    /// The first private or symmetric member present, if any.
    fn private_member(&self) -> Option<&'static str> {
        [
            ("d", self.d.is_some()),
            ("p", self.p.is_some()),
            ("q", self.q.is_some()),
            ("dp", self.dp.is_some()),
            ("dq", self.dq.is_some()),
            ("qi", self.qi.is_some()),
            ("oth", self.oth.is_some()),
            ("k", self.k.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }
}

/// The proof's verified-to-be-usable key and its thumbprint.
pub(super) struct EmbeddedKey {
    pub key: PublicKey,
    pub jkt: String,
}

/// The key the header's `jwk` describes, for the header's `alg`.
pub(super) fn import(jwk: &Jwk, alg_name: &str, allowed: &[Algorithm]) -> Result<EmbeddedKey, ProofError> {
    if let Some(member) = jwk.private_member() {
        return Err(ProofError::PrivateKey(member));
    }
    let alg = Algorithm::parse(alg_name).ok_or_else(|| ProofError::UnsupportedAlgorithm(alg_name.chars().take(32).collect()))?;
    if !allowed.contains(&alg) {
        return Err(ProofError::AlgorithmNotAllowed(alg));
    }
    let unusable = |reason: String| ProofError::UnusableKey(reason);
    let bytes = |name: &'static str, value: &Option<String>, length: Option<usize>| -> Result<(String, Vec<u8>), ProofError> {
        let value = value.as_deref().ok_or_else(|| unusable(format!("the jwk has no {name} string")))?;
        let decoded = URL_SAFE_NO_PAD.decode(value).map_err(|_| unusable(format!("the jwk's {name} is not base64url")))?;
        match length {
            Some(length) if decoded.len() != length => Err(unusable(format!("the jwk's {name} must be {length} bytes"))),
            None if decoded.first().is_none_or(|b| *b == 0) => Err(unusable(format!("the jwk's {name} must be minimal and non-empty"))),
            _ => Ok((value.to_string(), decoded)),
        }
    };
    if let Some(declared) = jwk.alg.as_deref()
        && declared != alg.as_str()
    {
        return Err(unusable(format!("the jwk's alg {:?} is not the header's {alg}", declared.chars().take(32).collect::<String>())));
    }
    let kty = jwk.kty.as_deref().ok_or_else(|| unusable("the jwk has no kty string".into()))?;
    let mismatch = |key: &str| unusable(format!("a {key} key cannot sign {alg}"));
    // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    let (key, canonical) = match (kty, jwk.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (implied, size) = if crv == "P-256" { (Algorithm::ES256, 32) } else { (Algorithm::ES384, 48) };
            if alg != implied {
                return Err(mismatch(crv));
            }
            let ((x, x_bytes), (y, y_bytes)) = (bytes("x", &jwk.x, Some(size))?, bytes("y", &jwk.y, Some(size))?);
            let point = [&[4u8][..], &x_bytes, &y_bytes].concat();
            (PublicKey::point(alg, point), format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#))
        }
        ("OKP", Some("Ed25519")) => {
            if alg != Algorithm::EdDSA {
                return Err(mismatch("Ed25519"));
            }
            let (x, x_bytes) = bytes("x", &jwk.x, Some(32))?;
            (PublicKey::point(alg, x_bytes), format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#))
        }
        ("RSA", _) => {
            let ((n, n_bytes), (e, e_bytes)) = (bytes("n", &jwk.n, None)?, bytes("e", &jwk.e, None)?);
            let key = PublicKey::rsa(alg, n_bytes, e_bytes).ok_or_else(|| mismatch("RSA"))?;
            (key, format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))
        }
        ("oct", _) => return Err(unusable("a symmetric (oct) key cannot prove possession to anyone else".into())),
        (kty, crv) => {
            let crv = crv.map(|c| format!(" on {}", c.chars().take(16).collect::<String>())).unwrap_or_default();
            return Err(unusable(format!(
                "kty {:?}{crv} is not supported; use EC P-256/P-384, OKP Ed25519 or RSA",
                kty.chars().take(16).collect::<String>()
            )));
        }
    };
    let jkt = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()));
    Ok(EmbeddedKey { key, jkt })
}
