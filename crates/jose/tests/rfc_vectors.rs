//! Known-answer tests from the RFC appendices, through the public API only:
//! if these pass, tessera's JOSE core agrees with the specifications'
//! own examples, byte for byte.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_jose::{Algorithm, CompactJws, KeyPair, KeySet, thumbprint};

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// RFC 7515 appendix A.3: a JWS signed with ES256.
const RFC7515_A3: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

#[test]
fn rfc7515_a3_es256_signature_verifies_with_the_appendix_key() {
    // The appendix's JWK, with a kid so that it can sit in a JWK Set.
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a3",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let keys = KeySet::from_jwks(jwks.as_bytes()).unwrap();
    let key = keys.get("a3").unwrap();
    assert_eq!(key.alg(), Algorithm::ES256);
    let (input, signature) = RFC7515_A3.rsplit_once('.').unwrap();
    assert!(key.verify(input.as_bytes(), &b64(signature)));
    let tampered = input.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Yi", 1);
    assert!(!key.verify(tampered.as_bytes(), &b64(signature)));
    // Its header names no key, which tessera's profile refuses.
    assert!(CompactJws::parse(RFC7515_A3).is_err());
}

/// RFC 8037 appendix A.1: the Ed25519 private key (its seed `d`).
fn rfc8037_key() -> KeyPair {
    // PKCS#8 v1 wrapping of a raw Ed25519 seed (RFC 8410).
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"));
    KeyPair::from_pkcs8(Algorithm::EdDSA, &der).unwrap()
}

/// RFC 8037 appendix A.4: Ed25519 signatures are deterministic, so the
/// exact signature must come out of signing.
#[test]
fn rfc8037_a4_ed25519_signature_is_reproduced_and_verifies() {
    let key = rfc8037_key();
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let expected = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    assert_eq!(URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes())), expected);
    assert!(key.public_key().verify(input.as_bytes(), &b64(expected)));
    assert!(!key.public_key().verify(format!("{input}X").as_bytes(), &b64(expected)));
}

/// RFC 8037 appendices A.2 and A.3: the public key and its thumbprint.
#[test]
fn rfc8037_a2_a3_public_key_and_thumbprint() {
    let key = rfc8037_key();
    let members = key.public_members();
    assert!(members.contains(&("x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_string())));
    assert_eq!(key.thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

/// RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1.
#[test]
fn rfc7638_thumbprint_example() {
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let members = vec![("e", "AQAB".to_string()), ("kty", "RSA".to_string()), ("n", n.to_string())];
    assert_eq!(thumbprint(&members), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}
