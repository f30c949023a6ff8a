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
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Fill `out` with bytes from the operating system's CSPRNG, read 4 KiB at
/// a time per thread: a token request needs two or three identifiers, and
/// one `getrandom` call each cost more than the rest of making them. Every
/// byte is handed out once.
pub fn fill_random(out: &mut [u8]) {
    const POOL: usize = 4096;
    thread_local! {
        static POOL_BYTES: std::cell::RefCell<(Box<[u8; POOL]>, usize)> = std::cell::RefCell::new((Box::new([0; POOL]), POOL));
    }
    if out.len() > POOL / 4 {
        return SystemRandom::new().fill(out).expect("system randomness");
    }
    POOL_BYTES.with_borrow_mut(|(pool, used)| {
        if POOL - *used < out.len() {
            SystemRandom::new().fill(&mut pool[..]).expect("system randomness");
            *used = 0;
        }
        out.copy_from_slice(&pool[*used..*used + out.len()]);
        // What was handed out is not kept.
        pool[*used..*used + out.len()].fill(0);
        *used += out.len();
    });
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
    fill_random(&mut bytes[6..]);
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

    #[test]
    fn random_bytes_are_never_handed_out_twice() {
        let mut seen = std::collections::HashSet::new();
        // Across several refills of the pool.
        for _ in 0..2_000 {
            let mut bytes = [0u8; 16];
            fill_random(&mut bytes);
            assert!(seen.insert(bytes), "a repeated 128-bit value");
        }
        let mut big = [0u8; 2048];
        fill_random(&mut big);
        assert!(big.iter().any(|&b| b != 0));
    }
}
