//! `nbf` (RFC 7519 §4.1.5) means the same to every checker: a token signed
//! by the server's active key but not valid for another hour is inactive at
//! introspection, invalid for `tessera token inspect`, and refused by the
//! verifier — they share tessera-jose's one time check. Within the leeway
//! all three accept it.

use crate::common::*;
use std::sync::Arc;
use std::time::Duration;
use tessera::clock::{Clock, SystemClock};
use tessera::keys::{KeyDirectory, Keyring, TokenLifetimes};
use tessera::tokens::access::{self, AccessClaims, Audience};
use tessera_verifier::{Verifier, VerifyError};

/// Claims the server would issue to `web` for orders-api, with `nbf`.
fn claims(server: &TestServer, nbf: Option<i64>) -> AccessClaims {
    let now = SystemClock.unix();
    AccessClaims {
        iss: server.base.clone(),
        sub: "alice".into(),
        aud: Audience::One("orders-api".into()),
        exp: now + 600,
        nbf: nbf.map(|offset| now + offset),
        iat: now,
        jti: tessera::tokens::random_id(),
        client_id: "web".into(),
        scope: Some("read".into()),
        sid: None,
        auth_time: None,
        cnf: None,
        custom: serde_json::Map::new(),
    }
}

/// Sign with the active key of the running server's own key directory.
fn sign_with_server_key(server: &TestServer, claims: &AccessClaims) -> String {
    let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(14 * 86_400) };
    let directory = KeyDirectory::new(server.dir().join("keys"));
    let keyring = Keyring::open(directory, lifetimes, Arc::new(SystemClock)).expect("the server's key directory loads");
    let view = keyring.view();
    access::mint(view.active_signer(SystemClock.now()).expect("the server has an active key"), claims)
}

/// What each checker says: introspection's `active`, `token inspect`'s
/// last line, and the verifier's outcome.
async fn verdicts(server: &TestServer, verifier: &Verifier, token: &str) -> (bool, String, Result<(), VerifyError>) {
    let active = server.active(token).await;
    let output = server.cli(&["token", "inspect", token]);
    let stdout = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
    let last_line = stdout.lines().last().unwrap_or_default().to_string();
    assert_eq!(output.status.success(), last_line == "valid", "{stdout}");
    (active, last_line, verifier.verify(token).await.map(|_| ()))
}

#[tokio::test]
async fn a_token_valid_only_in_an_hour_is_refused_by_introspection_inspect_and_the_verifier() {
    let server = TestServer::start().await;
    let verifier = Verifier::builder().issuer(&server.base).audience("orders-api").build().await.unwrap();

    // The forged tokens are the server's own: without nbf, all accept.
    let plain = sign_with_server_key(&server, &claims(&server, None));
    assert_eq!(verdicts(&server, &verifier, &plain).await, (true, "valid".into(), Ok(())));

    // Within the 30 s leeway both sides grant, nbf is already satisfied.
    let soon = sign_with_server_key(&server, &claims(&server, Some(10)));
    assert_eq!(verdicts(&server, &verifier, &soon).await, (true, "valid".into(), Ok(())));

    let later = claims(&server, Some(3600));
    let nbf = later.nbf.unwrap();
    let token = sign_with_server_key(&server, &later);
    let (active, inspected, verified) = verdicts(&server, &verifier, &token).await;
    assert!(!active, "introspection calls a token active an hour before its nbf");
    assert_eq!(inspected, "invalid: not valid yet (nbf is in the future)");
    assert_eq!(verified, Err(VerifyError::NotYetValid { nbf }));
}
