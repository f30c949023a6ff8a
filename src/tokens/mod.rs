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

/// A refresh token's `jti`: 128 bits like [`random_id`], the first 48 of
/// them the time in milliseconds and the other 80 random. Ids made close
/// in time share their first characters, and refresh tokens are consumed
/// roughly in the order they were made, so the embedded store's B-tree of
/// consumed `jti`s takes a batch of consumptions into a few neighbouring
/// pages instead of dirtying one page per token.
pub fn time_ordered_id(now_ms: i64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&now_ms.max(0).to_be_bytes()[2..]);
    SystemRandom::new().fill(&mut bytes[6..]).expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_moment_share_a_prefix_and_stay_unique() {
        let (a, b) = (time_ordered_id(1_700_000_000_000), time_ordered_id(1_700_000_000_000));
        assert_eq!(a[..8], b[..8], "48 bits of time are the first 8 characters");
        assert_ne!(a, b);
        assert_ne!(time_ordered_id(1_700_000_000_000)[..8], time_ordered_id(1_700_000_000_001)[..8]);
        assert_eq!(time_ordered_id(5).len(), random_id().len());
    }
}
