//! The `--dev` demo's protected API: a resource server that takes
//! DPoP-bound tokens only (RFC 9449 §7), with §7.1 challenges.

use super::*;

#[tokio::test]
async fn the_demo_api_takes_a_bound_token_only_with_a_fresh_proof_by_its_key() {
    let server = TestServer::start_with_flags(&default_config(), &[], &["--dev"]).await;
    let key = DpopKey::new();
    let access = bound_session(&server, &key).await["access_token"].as_str().unwrap().to_string();
    let api = server.url("/demo/api/profile");
    let call = |authorization: String, proof: Option<String>| {
        let api = api.clone();
        async move {
            let mut request = reqwest::Client::new().get(&api).header("authorization", authorization);
            if let Some(proof) = proof {
                request = request.header("dpop", proof);
            }
            let response = request.send().await.unwrap();
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (response.status().as_u16(), challenge, response.json::<Value>().await.unwrap())
        }
    };
    let proof_for = |key: &DpopKey, token: &str| {
        let claims = ProofClaims::new("GET", &api, &tessera::tokens::random_id(), chrono::Utc::now().timestamp()).access_token(token);
        sign_proof(&key.0, &claims)
    };
    // The token alone, as a bearer token: refused with a DPoP challenge.
    let (status, challenge, body) = call(format!("Bearer {access}"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("algs=\"ES256") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    // With a proof by another key, or for another token: refused.
    let (status, challenge, _) = call(format!("DPoP {access}"), Some(proof_for(&DpopKey::new(), &access))).await;
    assert!(status == 401 && challenge.contains("invalid_token"), "{challenge}");
    let (status, challenge, _) = call(format!("DPoP {access}"), Some(proof_for(&key, "another token"))).await;
    assert!(status == 401 && challenge.contains("invalid_dpop_proof"), "{challenge}");
    // The key's proof: accepted once.
    let proof = proof_for(&key, &access);
    let (status, _, body) = call(format!("DPoP {access}"), Some(proof.clone())).await;
    assert_eq!((status, body["sub"].as_str(), body["jkt"].as_str()), (200, Some("alice"), Some(key.jkt().as_str())), "{body}");
    let (status, challenge, _) = call(format!("DPoP {access}"), Some(proof)).await;
    assert!(status == 401 && challenge.contains("invalid_dpop_proof"), "a replay: {challenge}");
}
