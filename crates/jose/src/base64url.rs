//! base64url without padding (RFC 7515 §2), appended to a byte buffer.
//!
//! A token is assembled in one buffer: each part is encoded straight into
//! its place, and the whole is checked as UTF-8 once at the end (one fast
//! pass over ASCII), instead of going through the `base64` crate's
//! `encode_string`, which encodes in chunks and checks each chunk.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Append the base64url encoding of `bytes` to `out`.
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let encoded = base64::encoded_len(bytes.len(), false).expect("an encodable length");
    out.resize(start + encoded, 0);
    let written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut out[start..]).expect("room was made for the encoding");
    debug_assert_eq!(written, encoded);
}

/// A buffer of base64url parts, dots and other ASCII as a string.
pub fn into_string(ascii: Vec<u8>) -> String {
    String::from_utf8(ascii).expect("base64url and ASCII separators are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_what_the_base64_crate_encodes() {
        for length in 0..70 {
            let bytes: Vec<u8> = (0..length).map(|n| (n * 37 + 11) as u8).collect();
            let mut out = b"x.".to_vec();
            append(&mut out, &bytes);
            assert_eq!(into_string(out), format!("x.{}", URL_SAFE_NO_PAD.encode(&bytes)));
        }
    }
}
