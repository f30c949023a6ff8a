//! Known-answer tests from the RFC appendices, through the public API only:
//! if these pass, tessera's JOSE core agrees with the specifications'
//! own examples, byte for byte.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_jose::dpop::{Proof, ProofError, access_token_hash};
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

/// RFC 9449 §4.1, figures 4–6: the example proof's header, the key in it.
const RFC9449_HEADER: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19";

/// RFC 9449 §6.1, figure 9: that key's thumbprint, as `cnf.jkt`.
const RFC9449_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

/// RFC 9449 §5, figure 5: the proof for the token request.
#[test]
fn rfc9449_token_request_proof_verifies_and_binds_to_the_published_thumbprint() {
    let proof = format!(
        "{RFC9449_HEADER}.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
    );
    let verified = Proof::verify(&proof, &Algorithm::ALL).unwrap();
    assert_eq!(verified.jkt(), RFC9449_JKT);
    assert_eq!(verified.alg(), Algorithm::ES256);
    let claims = verified.claims();
    assert_eq!((claims.jti.as_str(), claims.iat, claims.ath.as_deref()), ("-BwC3ESc6acc2lTc", 1_562_262_616, None));
    verified.check_request("POST", "https://server.example.com/token").unwrap();
    verified.check_time(1_562_262_620, 60, 5).unwrap();
    assert!(verified.check_request("POST", "https://server.example.com/par").is_err());
    // The same proof with one byte of its claims changed no longer verifies.
    let altered = proof.replacen("eyJqdGkiOiIt", "eyJqdGkiOiIu", 1);
    assert_eq!(Proof::verify(&altered, &Algorithm::ALL).unwrap_err(), ProofError::BadSignature);
}

/// RFC 9449 §7.1, figures 12–13: `ath` of the example access token, and
/// the proof sent with it to a resource server.
#[test]
fn rfc9449_resource_request_proof_carries_the_access_token_hash() {
    let access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    assert_eq!(access_token_hash(access_token), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    let proof = format!(
        "{RFC9449_HEADER}.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
    );
    let verified = Proof::verify(&proof, &Algorithm::ALL).unwrap();
    assert_eq!(verified.jkt(), RFC9449_JKT);
    verified.check_request("GET", "https://resource.example.org/protectedresource").unwrap();
    verified.check_access_token(access_token).unwrap();
    assert_eq!(verified.check_access_token("another token"), Err(ProofError::WrongAccessTokenHash));
}

/// RFC 9449 §4.1: the example key's thumbprint, from its members alone.
#[test]
fn rfc9449_example_key_thumbprint() {
    let members = vec![
        ("kty", "EC".to_string()),
        ("x", "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".to_string()),
        ("y", "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".to_string()),
        ("crv", "P-256".to_string()),
    ];
    assert_eq!(thumbprint(&members), RFC9449_JKT);
}
