//! Token formats: RFC 9068 access tokens (JWS) and tessera's opaque,
//! MAC-protected refresh tokens. Minting and parsing only — the rules about
//! who may get which token live in [`crate::grants`] and [`crate::sessions`];
//! [`issue`] assembles every access token's claims.

pub mod access;
pub mod issue;
pub mod refresh;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// A fresh unguessable identifier (128 bits, base64url): `jti`, `sid`.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}
