//! Server nonces (RFC 9449 §8, §9) without shared state: a nonce names a
//! time window and carries a MAC over it, so any replica holding the same
//! secret can issue and check nonces without talking to the others, and a
//! nonce goes stale on its own.
//!
//! ```text
//! nonce = base64url( window (8 bytes, big-endian) || HMAC-SHA256(secret, "dpop-nonce" || window)[..16] )
//! ```
//!
//! `window` is `now / period`. A nonce of the current or the previous
//! window is accepted, so a nonce lives between one and two periods and a
//! client that just fetched one never races a window boundary. 128 bits of
//! MAC are far beyond guessing within a window.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

const LABEL: &[u8] = b"dpop-nonce";
const TAG_BYTES: usize = 16;

/// Whether a presented nonce is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Of the current window.
    Current,
    /// Of the previous window: accepted; send the client a fresh one.
    Previous,
    /// Absent, unreadable, forged, or older than the previous window.
    Invalid,
}

/// Issues and checks nonces under one secret.
#[derive(Clone)]
pub struct NonceKey {
    key: hmac::Key,
    period: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey").field("period", &self.period).finish_non_exhaustive()
    }
}

impl NonceKey {
    /// A key over `secret` (at least 32 bytes, shared by every replica that
    /// must accept the others' nonces) whose windows last `period_seconds`
    /// (at least 1).
    pub fn new(secret: &[u8], period_seconds: u64) -> Self {
        let period = i64::try_from(period_seconds.max(1)).unwrap_or(i64::MAX);
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret), period }
    }

    /// A key over a fresh random secret: nonces only this process accepts.
    pub fn random(period_seconds: u64) -> Self {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).expect("system randomness");
        Self::new(&secret, period_seconds)
    }

    fn window(&self, now: i64) -> u64 {
        u64::try_from(now.max(0) / self.period).unwrap_or(0)
    }

    fn tag(&self, window: u64) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(LABEL);
        context.update(&window.to_be_bytes());
        context.sign()
    }

    /// The nonce of the window `now` (Unix seconds) falls in.
    pub fn issue(&self, now: i64) -> String {
        let window = self.window(now);
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(window).as_ref()[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` is one this key issued in the current or previous
    /// window; the MAC is compared in constant time.
    pub fn check(&self, nonce: Option<&str>, now: i64) -> NonceStatus {
        let Some(bytes) = nonce.filter(|n| n.len() <= 64).and_then(|n| URL_SAFE_NO_PAD.decode(n).ok()) else {
            return NonceStatus::Invalid;
        };
        if bytes.len() != 8 + TAG_BYTES {
            return NonceStatus::Invalid;
        }
        let window = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = self.window(now);
        let status = if window == current {
            NonceStatus::Current
        } else if current.checked_sub(1) == Some(window) {
            NonceStatus::Previous
        } else {
            return NonceStatus::Invalid;
        };
        let expected = self.tag(window);
        // Constant time: no early exit on the first differing byte.
        let difference = expected.as_ref()[..TAG_BYTES].iter().zip(&bytes[8..]).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference == 0 { status } else { NonceStatus::Invalid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_nonce_is_good_for_its_window_and_the_next() {
        let key = NonceKey::new(&[7; 32], 60);
        let nonce = key.issue(NOW);
        let window_start = NOW - NOW % 60;
        assert_eq!(key.check(Some(&nonce), window_start + 59), NonceStatus::Current);
        assert_eq!(key.check(Some(&nonce), window_start + 60), NonceStatus::Previous);
        assert_eq!(key.check(Some(&nonce), window_start + 119), NonceStatus::Previous);
        assert_eq!(key.check(Some(&nonce), window_start + 120), NonceStatus::Invalid);
        assert_eq!(key.check(Some(&nonce), window_start - 1), NonceStatus::Invalid);
    }

    #[test]
    fn replicas_with_the_same_secret_accept_each_others_nonces_and_no_one_else_does() {
        let (one, two, other) = (NonceKey::new(&[7; 32], 60), NonceKey::new(&[7; 32], 60), NonceKey::new(&[8; 32], 60));
        assert_eq!(two.check(Some(&one.issue(NOW)), NOW), NonceStatus::Current);
        assert_eq!(other.check(Some(&one.issue(NOW)), NOW), NonceStatus::Invalid);
        assert_eq!(NonceKey::random(60).check(Some(&one.issue(NOW)), NOW), NonceStatus::Invalid);
    }

    #[test]
    fn forged_or_garbled_nonces_are_invalid() {
        let key = NonceKey::new(&[7; 32], 60);
        let nonce = key.issue(NOW);
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        // The previous window, with this window's tag: only the MAC can tell.
        let previous = u64::from_be_bytes(bytes[..8].try_into().unwrap()) - 1;
        bytes[..8].copy_from_slice(&previous.to_be_bytes());
        assert_eq!(key.check(Some(&URL_SAFE_NO_PAD.encode(&bytes)), NOW), NonceStatus::Invalid);
        for garbled in [None, Some(""), Some("!!"), Some(&nonce[..nonce.len() - 2]), Some(&*format!("{nonce}AA"))] {
            assert_eq!(key.check(garbled, NOW), NonceStatus::Invalid, "{garbled:?}");
        }
    }
}
