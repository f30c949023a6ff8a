//! The little DER jsonwebtoken's provider interface needs read: a PKCS#1
//! RSA public key's modulus and exponent. ring parses private keys itself
//! but has no parser for a bare `RSAPublicKey`.

use jsonwebtoken::errors::{Error, ErrorKind, Result};

/// Parse a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub(super) fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = || Error::from(ErrorKind::InvalidRsaKey("not a PKCS#1 RSAPublicKey".into()));
    let (tag, body, rest) = der_element(der).ok_or_else(bad)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(bad());
    }
    let (tag_n, n, after_n) = der_element(body).ok_or_else(bad)?;
    let (tag_e, e, after_e) = der_element(after_n).ok_or_else(bad)?;
    if tag_n != 0x02 || tag_e != 0x02 || !after_e.is_empty() {
        return Err(bad());
    }
    let strip = |b: &[u8]| b.iter().position(|&x| x != 0).map(|i| b[i..].to_vec()).unwrap_or_default();
    Ok((strip(n), strip(e)))
}

/// One DER TLV: (tag, contents, remainder).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_public_key_parser_handles_long_lengths() {
        // SEQUENCE { INTEGER 0x00ff.., INTEGER 65537 } with a 2-byte length.
        let mut n = vec![0x00];
        n.extend(std::iter::repeat_n(0xffu8, 256));
        let mut body = vec![0x02, 0x82, 0x01, 0x01];
        body.extend(&n);
        body.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        der.extend(body);
        let (parsed_n, parsed_e) = rsa_components_from_public_key(&der).unwrap();
        assert_eq!(parsed_n.len(), 256);
        assert_eq!(parsed_e, vec![1, 0, 1]);
        assert!(rsa_components_from_public_key(&der[..10]).is_err());
    }
}
