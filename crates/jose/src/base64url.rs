//! base64url without padding (RFC 7515 §2): the encoding of every token
//! part, so the encoder and decoder on every token's path.
//!
//! [`ENGINE`] is the `base64` crate's SIMD engine: AVX2 (x86-64) or NEON
//! (aarch64) kernels for the bulk of a part when the CPU has them, chosen
//! once at start, and its scalar engine otherwise (and on other targets,
//! where the crate has no SIMD engine); it accepts and refuses exactly
//! what the scalar engine does (the tests compare). A token is
//! assembled in one buffer: each part is encoded straight into its place
//! ([`append`]), and the whole is checked as UTF-8 once at the end (one
//! fast pass over ASCII), instead of going through `encode_string`, which
//! encodes in chunks and checks each chunk.

use base64::Engine;
use base64::engine::general_purpose::NO_PAD;
use std::sync::LazyLock;

/// The engine type: the SIMD engine where the `base64` crate has one
/// (x86-64 and aarch64), its scalar engine on every other target.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub type Base64Url = base64::engine::simd::Simd;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub type Base64Url = base64::engine::GeneralPurpose;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn engine() -> Base64Url {
    base64::engine::simd::Simd::url_safe(NO_PAD)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn engine() -> Base64Url {
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, NO_PAD)
}

/// The base64url engine, without padding, refusing padding and
/// non-canonical trailing bits.
pub static ENGINE: LazyLock<Base64Url> = LazyLock::new(engine);

/// Append the base64url encoding of `bytes` to `out`.
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let encoded = base64::encoded_len(bytes.len(), false).expect("an encodable length");
    out.resize(start + encoded, 0);
    let written = ENGINE.encode_slice(bytes, &mut out[start..]).expect("room was made for the encoding");
    debug_assert_eq!(written, encoded);
}

/// The bytes `text` encodes, if it is base64url without padding.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    ENGINE.decode(text)
}

/// A buffer of base64url parts, dots and other ASCII as a string.
pub fn into_string(ascii: Vec<u8>) -> String {
    String::from_utf8(ascii).expect("base64url and ASCII separators are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// Bytes that look random, from a seed (no dependency for a test).
    fn bytes(seed: u64, length: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn encodes_and_decodes_what_the_scalar_engine_does_at_every_length() {
        // Past the SIMD kernels' thresholds and across several of their blocks.
        for length in 0..700 {
            let input = bytes(length as u64, length);
            let mut out = b"x.".to_vec();
            append(&mut out, &input);
            let expected = URL_SAFE_NO_PAD.encode(&input);
            assert_eq!(into_string(out), format!("x.{expected}"), "length {length}");
            assert_eq!(decode(&expected).unwrap(), input, "length {length}");
        }
    }

    #[test]
    fn refuses_exactly_what_the_scalar_engine_refuses() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // Strange bytes anywhere in a long part: in a SIMD block, in the
        // scalar tail, at the end (trailing bits, padding, a lone symbol).
        let strange: &[u8] = b"+/=.! \n\x00\x7f\xff";
        for length in [1usize, 2, 3, 5, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 200, 341, 600] {
            let valid = URL_SAFE_NO_PAD.encode(bytes(length as u64, length * 3 / 4));
            let mut texts = vec![valid.clone(), format!("{valid}="), format!("{valid}A"), format!("{valid}AA"), format!("{valid}==")];
            for (n, &odd) in strange.iter().enumerate() {
                for position in [0, valid.len() / 2, valid.len().saturating_sub(1)] {
                    let mut text = valid.clone().into_bytes();
                    if position < text.len() {
                        text[position] = odd;
                    }
                    texts.push(String::from_utf8_lossy(&text).into_owned());
                }
                // A non-canonical last symbol: its unused bits set.
                if let Some(last) = valid.bytes().last() {
                    let index = alphabet.iter().position(|&c| c == last).unwrap();
                    let other = alphabet[(index + n + 1) % 64] as char;
                    texts.push(format!("{}{other}", &valid[..valid.len() - 1]));
                }
            }
            for text in texts {
                assert_eq!(decode(&text), URL_SAFE_NO_PAD.decode(&text), "{text:?}");
            }
        }
    }
}
