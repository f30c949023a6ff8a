//! Undoing `application/x-www-form-urlencoded` (RFC 6749 Appendix B) for
//! one name or value, shared by the OAuth form parser and HTTP Basic client
//! credentials (RFC 6749 §2.3.1), which differ only in what they do with a
//! malformed escape.

/// `+` is a space and `%XX` the byte XX; a `%` not followed by two hex
/// digits is kept as it is, and the second half of the answer says
/// whether every `%` was a well-formed escape.
pub fn unescape(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut well_formed = true;
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'+' => b' ',
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => {
                    well_formed = false;
                    b'%'
                }
            },
            other => other,
        };
        bytes.push(byte);
        i += 1;
    }
    (bytes, well_formed)
}

fn hex(digit: &u8) -> Option<u8> {
    (*digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_plus_are_undone_and_malformed_escapes_kept_and_reported() {
        assert_eq!(unescape(b"a+b%20c%2Bd%e9"), (b"a b c+d\xe9".to_vec(), true));
        assert_eq!(unescape(b"plain"), (b"plain".to_vec(), true));
        for (raw, kept) in [(&b"%"[..], &b"%"[..]), (b"%2", b"%2"), (b"%zz1", b"%zz1"), (b"a%g0=", b"a%g0=")] {
            assert_eq!(unescape(raw), (kept.to_vec(), false), "{raw:?}");
        }
    }
}
