//! Each check of [`Proof::verify`] and the request checks, one refusal at
//! a time; the RFC 9449 examples are in `tests/rfc_vectors.rs`.

use super::*;
use crate::sign_compact;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const TOKEN_URI: &str = "https://auth.example.com/oauth2/token";

fn pair(alg: Algorithm) -> KeyPair {
    KeyPair::from_pkcs8(alg, &KeyPair::generate_pkcs8(alg).unwrap()).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn public_jwk(key: &KeyPair) -> Value {
    key.public_members().iter().map(|(name, value)| (name.to_string(), Value::from(value.as_str()))).collect()
}

fn claims() -> Value {
    json!({"jti": "j1", "htm": "POST", "htu": TOKEN_URI, "iat": NOW})
}

/// A proof with any header and claims, signed by `key`.
fn signed(key: &KeyPair, header: &Value, claims: &Value) -> String {
    sign_compact(&b64(header), claims.to_string().as_bytes(), key)
}

fn header(key: &KeyPair) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": public_jwk(key)})
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn verify(proof: &str) -> Result<Proof, ProofError> {
    Proof::verify(proof, &Algorithm::ALL)
}

#[test]
fn a_signed_proof_verifies_and_names_its_key_by_thumbprint() {
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let key = pair(alg);
        let claims = ProofClaims::new("POST", TOKEN_URI, "j1", NOW).nonce("n1");
        let proof = verify(&sign_proof(&key, &claims)).unwrap();
        assert_eq!((proof.jkt(), proof.alg()), (key.thumbprint().as_str(), alg));
        assert_eq!(proof.claims(), &claims);
        assert!(verify(&signed(&key, &with(header(&key), "typ", "application/DPoP+JWT".into()), &self::claims())).is_ok());
    }
}

#[test]
fn a_proof_that_is_no_jwt_is_malformed() {
    let key = pair(Algorithm::ES256);
    let good = sign_proof(&key, &ProofClaims::new("POST", TOKEN_URI, "j1", NOW));
    let (input, signature) = good.rsplit_once('.').unwrap();
    for proof in [
        "".to_string(),
        "a.b".into(),
        format!("{good}.x"),
        format!("!!.{}", good.split_once('.').unwrap().1),
        format!("{}.{}", URL_SAFE_NO_PAD.encode("[1]"), good.split_once('.').unwrap().1),
        format!("{input}.{signature}!"),
        signed(&key, &with(header(&key), "crit", json!(["exp"])), &claims()),
        format!("{good}{}", "A".repeat(MAX_PROOF_BYTES)),
    ] {
        assert!(matches!(verify(&proof), Err(ProofError::Malformed(_))), "{proof:.80}");
    }
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = pair(Algorithm::ES256);
    let at_jwt = signed(&key, &with(header(&key), "typ", "at+jwt".into()), &claims());
    assert_eq!(verify(&at_jwt).unwrap_err(), ProofError::WrongType(Some("at+jwt".into())));
    let mut untyped = header(&key);
    untyped.as_object_mut().unwrap().remove("typ");
    assert_eq!(verify(&signed(&key, &untyped, &claims())).unwrap_err(), ProofError::WrongType(None));
}

#[test]
fn none_and_symmetric_algorithms_are_refused_before_any_cryptography() {
    let key = pair(Algorithm::ES256);
    let unsigned = format!("{}.{}.", b64(&with(header(&key), "alg", "none".into())), b64(&claims()));
    assert_eq!(verify(&unsigned).unwrap_err(), ProofError::UnsupportedAlgorithm("none".into()));
    for alg in ["HS256", "HS512", "es256", ""] {
        let proof = signed(&key, &with(header(&key), "alg", alg.into()), &claims());
        assert_eq!(verify(&proof).unwrap_err(), ProofError::UnsupportedAlgorithm(alg.into()), "{alg}");
    }
    let hmac_key = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
    assert_eq!(verify(&signed(&key, &hmac_key, &claims())).unwrap_err(), ProofError::PrivateKey("k"));
    let oct_without_k = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct"}});
    assert!(matches!(verify(&signed(&key, &oct_without_k, &claims())).unwrap_err(), ProofError::UnusableKey(r) if r.contains("symmetric")));
    let proof = sign_proof(&key, &ProofClaims::new("POST", TOKEN_URI, "j1", NOW));
    assert_eq!(Proof::verify(&proof, &[Algorithm::EdDSA]).unwrap_err(), ProofError::AlgorithmNotAllowed(Algorithm::ES256));
}

#[test]
fn a_jwk_with_a_private_member_is_refused() {
    let key = pair(Algorithm::ES256);
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        let jwk = with(public_jwk(&key), member, "AAAA".into());
        let proof = signed(&key, &with(header(&key), "jwk", jwk), &claims());
        assert_eq!(verify(&proof).unwrap_err(), ProofError::PrivateKey(member), "{member}");
    }
}

#[test]
fn the_key_must_be_usable_for_the_headers_alg() {
    let (es256, eddsa) = (pair(Algorithm::ES256), pair(Algorithm::EdDSA));
    let unusable = |proof: String| matches!(verify(&proof), Err(ProofError::UnusableKey(_)));
    let mut no_jwk = header(&es256);
    no_jwk.as_object_mut().unwrap().remove("jwk");
    assert!(unusable(signed(&es256, &no_jwk, &claims())));
    // An EC P-256 key under EdDSA, an Ed25519 key under ES256, ES384 on P-256.
    assert!(unusable(signed(&es256, &with(header(&es256), "alg", "EdDSA".into()), &claims())));
    assert!(unusable(signed(&eddsa, &with(header(&eddsa), "alg", "ES256".into()), &claims())));
    assert!(unusable(signed(&es256, &with(header(&es256), "alg", "ES384".into()), &claims())));
    // A jwk whose own alg disagrees, a short coordinate, padding, an unknown curve.
    assert!(unusable(signed(&es256, &with(header(&es256), "jwk", with(public_jwk(&es256), "alg", "ES384".into())), &claims())));
    let x = public_jwk(&es256)["x"].as_str().unwrap().to_string();
    assert!(unusable(signed(&es256, &with(header(&es256), "jwk", with(public_jwk(&es256), "x", x[1..].into())), &claims())));
    assert!(unusable(signed(&es256, &with(header(&es256), "jwk", with(public_jwk(&es256), "x", format!("{x}=").into())), &claims())));
    assert!(unusable(signed(&es256, &with(header(&es256), "jwk", with(public_jwk(&es256), "crv", "P-521".into())), &claims())));
}

#[test]
fn rsa_keys_take_their_algorithm_from_the_header_and_must_be_minimal() {
    // RFC 7638 §3.1's key (RFC 7517 appendix A.1): its published thumbprint.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB", "kid": "2011-04-29"});
    for alg in ["RS256", "PS256"] {
        let imported = key::import(&serde_json::from_value(jwk.clone()).unwrap(), alg, &Algorithm::ALL).ok().unwrap();
        assert_eq!(imported.jkt, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(imported.key.alg().as_str(), alg);
    }
    let padded = with(jwk.clone(), "e", "AAEAAQ".into());
    assert!(matches!(key::import(&serde_json::from_value(padded).unwrap(), "RS256", &Algorithm::ALL), Err(ProofError::UnusableKey(_))));
    assert!(matches!(key::import(&serde_json::from_value(jwk).unwrap(), "ES256", &Algorithm::ALL), Err(ProofError::UnusableKey(_))));
}

#[test]
fn the_signature_must_be_the_jwks() {
    let (key, other) = (pair(Algorithm::ES256), pair(Algorithm::ES256));
    // Signed by another key, naming this one.
    let input = format!("{}.{}", b64(&header(&key)), b64(&claims()));
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(other.sign(input.as_bytes())));
    assert_eq!(verify(&forged).unwrap_err(), ProofError::BadSignature);
    // This key's signature over other claims.
    let good = signed(&key, &header(&key), &claims());
    let (_, signature) = good.rsplit_once('.').unwrap();
    let altered = format!("{}.{}.{signature}", b64(&header(&key)), b64(&with(claims(), "htm", "GET".into())));
    assert_eq!(verify(&altered).unwrap_err(), ProofError::BadSignature);
}

#[test]
fn every_required_claim_must_be_there_with_its_type() {
    let key = pair(Algorithm::EdDSA);
    for missing in ["jti", "htm", "htu", "iat"] {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(missing);
        assert!(matches!(verify(&signed(&key, &header(&key), &claims)), Err(ProofError::InvalidClaims(_))), "{missing}");
    }
    for (name, value) in
        [("iat", json!("1800000000")), ("iat", json!(1.5)), ("jti", json!(7)), ("jti", json!("")), ("jti", json!("j".repeat(257)))]
    {
        let proof = signed(&key, &header(&key), &with(claims(), name, value.clone()));
        assert!(matches!(verify(&proof), Err(ProofError::InvalidClaims(_))), "{name}: {value}");
    }
}

#[test]
fn method_and_uri_must_be_the_requests() {
    let key = pair(Algorithm::ES256);
    let proof = verify(&sign_proof(&key, &ProofClaims::new("POST", "https://Auth.Example.com:443/oauth2/token", "j", NOW))).unwrap();
    assert_eq!(proof.check_request("POST", "https://auth.example.com/oauth2/token?grant_type=x"), Ok(()));
    assert_eq!(proof.check_request("GET", TOKEN_URI), Err(ProofError::WrongMethod { htm: "POST".into(), expected: "GET".into() }));
    assert!(matches!(proof.check_request("post", TOKEN_URI), Err(ProofError::WrongMethod { .. })));
    for uri in
        ["https://auth.example.com/oauth2/revoke", "http://auth.example.com/oauth2/token", "https://evil.example/oauth2/token", "not a uri"]
    {
        assert!(matches!(proof.check_request("POST", uri), Err(ProofError::WrongUri { .. })), "{uri}");
    }
    let relative = verify(&sign_proof(&key, &ProofClaims::new("POST", "/oauth2/token", "j", NOW))).unwrap();
    assert!(matches!(relative.check_request("POST", TOKEN_URI), Err(ProofError::WrongUri { .. })));
}

#[test]
fn iat_must_lie_inside_the_window() {
    let key = pair(Algorithm::ES256);
    let proof = verify(&sign_proof(&key, &ProofClaims::new("POST", TOKEN_URI, "j", NOW))).unwrap();
    assert_eq!(proof.check_time(NOW + 60, 60, 5), Ok(()));
    assert_eq!(proof.check_time(NOW + 61, 60, 5), Err(ProofError::TooOld { iat: NOW }));
    assert_eq!(proof.check_time(NOW - 5, 60, 5), Ok(()));
    assert_eq!(proof.check_time(NOW - 6, 60, 5), Err(ProofError::IssuedInFuture { iat: NOW }));
    assert_eq!(proof.acceptable_until(60), NOW + 60);
    assert_eq!(proof.check_time(i64::MIN, i64::MAX, i64::MAX), Ok(()));
}

#[test]
fn ath_must_hash_the_presented_access_token() {
    let key = pair(Algorithm::ES256);
    let bare = verify(&sign_proof(&key, &ProofClaims::new("GET", "https://api.example.com/orders", "j", NOW))).unwrap();
    assert_eq!(bare.check_access_token("at"), Err(ProofError::MissingAccessTokenHash));
    let bound = ProofClaims::new("GET", "https://api.example.com/orders", "j", NOW).access_token("at");
    let proof = verify(&sign_proof(&key, &bound)).unwrap();
    assert_eq!(proof.check_access_token("at"), Ok(()));
    assert_eq!(proof.check_access_token("at2"), Err(ProofError::WrongAccessTokenHash));
}
