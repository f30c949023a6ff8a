//! Compact JWS (RFC 7515 §7.1), as tessera writes and reads it: signing
//! assembles `header.payload.signature` around any [`Signer`]; reading
//! splits a token into a [`CompactJws`] whose payload is handed out only
//! once a [`PublicKey`] has verified it.
//!
//! Reading follows RFC 8725: the header is read only for `typ` and the key
//! id; the algorithm comes from the key, and the header's `alg` must merely
//! agree with it (so `alg: none`, or an HS256 header whose "secret" is the
//! public key, fails before any cryptography); nothing in the payload is
//! decoded before the signature verifies. `jku`, `x5u` and `jwk` headers are
//! never read, and a `crit` header is refused (RFC 7515 §4.1.11: no
//! extension is implemented, so none can be honoured). Every tessera token
//! names its key, so a header without `kid` is refused too.

use crate::{Algorithm, PublicKey, base64url};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Why a compact JWS was refused; each variant is one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not a compact JWS this crate reads; the text says which part.
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    /// The header's `typ` is absent or not one of the accepted ones.
    #[error("typ is {found:?}; expected {expected:?}")]
    WrongType {
        /// The header's `typ`, if any.
        found: Option<String>,
        /// The canonical accepted `typ`.
        expected: &'static str,
    },
    /// The header names another algorithm than the key has.
    #[error("the header says alg {header:?} but the key is {key}; the algorithm comes from the key")]
    AlgorithmMismatch {
        /// The header's `alg`, as written.
        header: String,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// The key's algorithm is not in the caller's allow-list.
    #[error("the key's algorithm {0} is not in this verifier's allow-list")]
    AlgorithmNotAllowed(Algorithm),
    /// The signature is not the key's signature over the signing input.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The protected header members tessera reads and writes.
///
/// Non-exhaustive: a later version may read or write another member; make
/// one with [`Header::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Header {
    /// The algorithm the signer claims; checked against the key, never used.
    pub alg: String,
    /// The signing key's id (tessera: its RFC 7638 thumbprint).
    pub kid: String,
    /// The token type, e.g. [`AT_JWT`](crate::typ::AT_JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// The header as read: [`Header`] plus what must be refused.
#[derive(Deserialize)]
struct ReadHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// RFC 7515 §4.1.11: extensions that must be understood; none are.
    crit: Option<serde::de::IgnoredAny>,
}

/// A compact JWS split into its parts, its signature not yet checked.
pub struct CompactJws<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// Shows the header only: a token is a credential and must not reach logs.
impl std::fmt::Debug for CompactJws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactJws").field("header", &self.header).finish_non_exhaustive()
    }
}

impl<'a> CompactJws<'a> {
    /// Larger tokens are refused before any decoding.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Split and read the header: at most [`Self::MAX_BYTES`], three
    /// base64url parts, a JSON header with `alg` and `kid`, no `crit`.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        use JwsError::Malformed;
        if token.len() > Self::MAX_BYTES {
            return Err(Malformed("longer than 16 KiB"));
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Malformed("not three dot-separated parts"))?;
        let (header, payload) = signing_input.split_once('.').ok_or(Malformed("not three dot-separated parts"))?;
        let header = base64url::decode(header).map_err(|_| Malformed("the header is not base64url"))?;
        let header: ReadHeader = serde_json::from_slice(&header).map_err(|_| Malformed("the header is not a JOSE header with alg"))?;
        if header.crit.is_some() {
            return Err(Malformed("the header has crit extensions, which this verifier does not implement"));
        }
        let kid = header.kid.ok_or(Malformed("the header has no kid"))?;
        Ok(Self { header: Header { alg: header.alg, kid, typ: header.typ }, signing_input, payload, signature })
    }

    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The key id the header names.
    pub fn kid(&self) -> &str {
        &self.header.kid
    }

    /// `typ` must be one of `accepted`, compared case-insensitively
    /// (RFC 7515 §4.1.9); the first is the canonical one, named in the error.
    pub fn require_type(&self, accepted: &'static [&'static str]) -> Result<(), JwsError> {
        match self.header.typ.as_deref() {
            Some(typ) if accepted.iter().any(|a| a.eq_ignore_ascii_case(typ)) => Ok(()),
            found => Err(JwsError::WrongType { found: found.map(str::to_string), expected: accepted[0] }),
        }
    }

    /// Check the signature with `key` — whose algorithm must be the
    /// header's and in `allowed` — and hand out the decoded payload.
    pub fn verify(&self, key: &PublicKey, allowed: &[Algorithm]) -> Result<Vec<u8>, JwsError> {
        if self.header.alg != key.alg().as_str() {
            return Err(JwsError::AlgorithmMismatch { header: self.header.alg.clone(), key: key.alg() });
        }
        if !allowed.contains(&key.alg()) {
            return Err(JwsError::AlgorithmNotAllowed(key.alg()));
        }
        let signature = base64url::decode(self.signature).map_err(|_| JwsError::Malformed("the signature is not base64url"))?;
        if !key.verify(self.signing_input.as_bytes(), &signature) {
            return Err(JwsError::BadSignature);
        }
        base64url::decode(self.payload).map_err(|_| JwsError::Malformed("the payload is not base64url"))
    }
}

/// Whatever signs a JWS signing input: a [`KeyPair`](crate::KeyPair), or a
/// caller's wrapper around one.
pub trait Signer {
    /// The signature over `signing_input` (`header.payload`, both base64url).
    fn sign(&self, signing_input: &[u8]) -> Vec<u8>;
}

impl Header {
    /// A header for a token signed with `alg` by the key `kid`.
    pub fn new(alg: Algorithm, kid: impl Into<String>, typ: &str) -> Self {
        Self { alg: alg.as_str().to_string(), kid: kid.into(), typ: Some(typ.to_string()) }
    }

    /// The header as the first part of a compact JWS: base64url of its
    /// JSON, members in the order `alg`, `kid`, `typ`. Signers encode it
    /// once per key, not per token.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a header serializes"))
    }
}

/// `header.payload.signature`: `payload` is encoded, the signing input
/// signed by `signer`. `encoded_header` comes from [`Header::encode`].
pub fn sign_compact<S: Signer + ?Sized>(encoded_header: &str, payload: &[u8], signer: &S) -> String {
    let mut out = Vec::with_capacity(encoded_header.len() + payload.len() * 4 / 3 + 140);
    out.extend_from_slice(encoded_header.as_bytes());
    out.push(b'.');
    base64url::append(&mut out, payload);
    let signature = signer.sign(&out);
    out.push(b'.');
    base64url::append(&mut out, &signature);
    base64url::into_string(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;
    use serde_json::{Value, json};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn pair(alg: Algorithm) -> KeyPair {
        KeyPair::from_pkcs8(alg, &KeyPair::generate_pkcs8(alg).unwrap()).unwrap()
    }

    /// A token with any header, signed by `key`.
    fn signed(key: &KeyPair, header: &Value) -> String {
        sign_compact(&b64(header.to_string().as_bytes()), br#"{"sub":"alice"}"#, key)
    }

    #[test]
    fn signed_tokens_verify_and_hand_out_the_payload() {
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let key = pair(alg);
            let token = sign_compact(&Header::new(alg, "k1", "at+jwt").encode(), br#"{"sub":"alice"}"#, &key);
            let jws = CompactJws::parse(&token).unwrap();
            assert_eq!(jws.header(), &Header { alg: alg.as_str().into(), kid: "k1".into(), typ: Some("at+jwt".into()) });
            jws.require_type(&["at+jwt"]).unwrap();
            assert_eq!(jws.verify(key.public_key(), &Algorithm::ALL).unwrap(), br#"{"sub":"alice"}"#);
        }
    }

    #[test]
    fn the_header_is_encoded_with_its_members_in_order() {
        let encoded = Header::new(Algorithm::EdDSA, "k", "revocations+jwt").encode();
        assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap(), br#"{"alg":"EdDSA","kid":"k","typ":"revocations+jwt"}"#);
    }

    #[test]
    fn a_token_that_is_no_compact_jws_is_malformed() {
        let key = pair(Algorithm::ES256);
        let good = signed(&key, &json!({"alg": "ES256", "kid": "k"}));
        let (input, signature) = good.rsplit_once('.').unwrap();
        for token in [
            "".to_string(),
            "abc".into(),
            "a.b".into(),
            format!("!!.{}", good.split_once('.').unwrap().1),
            format!("{}.{}", b64(b"[1]"), good.split_once('.').unwrap().1),
            signed(&key, &json!({"alg": "ES256"})),
            signed(&key, &json!({"kid": "k"})),
            signed(&key, &json!({"alg": "ES256", "kid": "k", "crit": ["exp"]})),
            format!("{good}{}", "A".repeat(CompactJws::MAX_BYTES)),
        ] {
            assert!(matches!(CompactJws::parse(&token), Err(JwsError::Malformed(_))), "{token:.80}");
        }
        let bad_signature = format!("{input}.{signature}!");
        let jws = CompactJws::parse(&bad_signature).unwrap();
        assert!(matches!(jws.verify(key.public_key(), &Algorithm::ALL), Err(JwsError::Malformed(_))));
    }

    #[test]
    fn the_algorithm_comes_from_the_key_and_the_type_must_match() {
        let (es256, eddsa) = (pair(Algorithm::ES256), pair(Algorithm::EdDSA));
        for alg in ["none", "HS256", "EdDSA"] {
            let token = signed(&es256, &json!({"alg": alg, "kid": "k"}));
            let error = CompactJws::parse(&token).unwrap().verify(es256.public_key(), &Algorithm::ALL).unwrap_err();
            assert_eq!(error, JwsError::AlgorithmMismatch { header: alg.into(), key: Algorithm::ES256 });
        }
        let token = signed(&es256, &json!({"alg": "ES256", "kid": "k", "typ": "Application/AT+JWT"}));
        let jws = CompactJws::parse(&token).unwrap();
        assert_eq!(jws.verify(es256.public_key(), &[Algorithm::EdDSA]), Err(JwsError::AlgorithmNotAllowed(Algorithm::ES256)));
        assert!(jws.verify(eddsa.public_key(), &Algorithm::ALL).unwrap_err().to_string().contains("the key is EdDSA"));
        assert!(jws.require_type(&["at+jwt", "application/at+jwt"]).is_ok());
        assert_eq!(
            jws.require_type(&["revocations+jwt"]),
            Err(JwsError::WrongType { found: Some("Application/AT+JWT".into()), expected: "revocations+jwt" })
        );
    }

    #[test]
    fn nothing_in_the_payload_is_read_before_the_signature_verifies() {
        let (key, other) = (pair(Algorithm::EdDSA), pair(Algorithm::EdDSA));
        let header = json!({"alg": "EdDSA", "kid": "k"});
        let good = signed(&key, &header);
        let (_, signature) = good.rsplit_once('.').unwrap();
        let forged = format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(br#"{"sub":"mallory"}"#));
        assert_eq!(CompactJws::parse(&forged).unwrap().verify(key.public_key(), &Algorithm::ALL), Err(JwsError::BadSignature));
        let by_another_key = signed(&other, &header);
        assert_eq!(CompactJws::parse(&by_another_key).unwrap().verify(key.public_key(), &Algorithm::ALL), Err(JwsError::BadSignature));
    }
}
