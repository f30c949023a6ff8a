//! The demo's protected API, `GET /demo/api/profile`: a resource server
//! that accepts DPoP-bound access tokens only, so the page can show a call
//! with its key — and the Chromium test that the same token, copied to a
//! client without the key, is refused.
//!
//! It checks what a service using tessera-verifier checks (RFC 9449 §7):
//! the token is active (introspected in-process) and bound; the proof is
//! for this method and URI, fresh, hashes the token, is signed by the key
//! the token is bound to, and has not been seen before. Refusals are 401
//! with `WWW-Authenticate: DPoP` naming the error and the accepted `algs`
//! (§7.1), and a problem+json body.

use crate::http::AppState;
use crate::http::error::Problem;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The API's path; a proof's `htu` is the issuer plus this.
pub const PATH: &str = "/demo/api/profile";

pub async fn profile(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorize(&state, &headers).await {
        Ok(body) => axum::Json(body).into_response(),
        Err((error, detail)) => refuse(error, &detail),
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<serde_json::Value, (Option<&'static str>, String)> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some((scheme, token)) = authorization.and_then(|value| value.split_once(' ')) else {
        return Err((None, "this API needs a DPoP-bound access token: Authorization: DPoP <token> and a DPoP proof".into()));
    };
    let token = token.trim();
    let introspection = state.authority.introspect(token).await.map_err(|e| (Some("invalid_token"), e.to_string()))?;
    if !introspection.active || introspection.token_type == Some("refresh_token") {
        return Err((Some("invalid_token"), "the access token is not active".into()));
    }
    let Some(cnf) = introspection.cnf else {
        return Err((Some("invalid_token"), "the access token is not bound to a DPoP key; this API accepts DPoP-bound tokens only".into()));
    };
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Err((
            Some("invalid_token"),
            "the access token is bound to a DPoP key: present it as Authorization: DPoP, with a proof by that key".into(),
        ));
    }
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next().and_then(|v| v.to_str().ok()), proofs.next()) {
        (Some(proof), None) => proof,
        _ => return Err((Some("invalid_dpop_proof"), "send exactly one DPoP header with a proof".into())),
    };
    let uri = format!("{}{PATH}", state.issuer());
    let now = state.authority.clock.unix();
    let proof = state
        .dpop
        .check_resource_request(proof.trim(), "GET", &uri, token, now)
        .map_err(|e| (Some("invalid_dpop_proof"), e.to_string()))?;
    if proof.jkt != cnf.jkt {
        return Err((Some("invalid_token"), "the DPoP proof is signed by another key than the token is bound to".into()));
    }
    crate::dpop::remember(state.authority.store.as_ref(), &proof).await.map_err(|e| (Some("invalid_dpop_proof"), e.to_string()))?;
    Ok(serde_json::json!({
        "sub": introspection.sub,
        "client_id": introspection.client_id,
        "scope": introspection.scope,
        "jkt": cnf.jkt,
        "message": "hello from a protected API: your token and your key's proof checked out",
    }))
}

fn refuse(error: Option<&'static str>, detail: &str) -> Response {
    let algs = crate::dpop::ALGORITHMS.map(|alg| alg.as_str()).join(" ");
    let quoted: String =
        detail.chars().take(200).map(|c| if c == '"' || c == '\\' || !(' '..='~').contains(&c) { '\'' } else { c }).collect();
    let challenge = match error {
        None => format!("DPoP realm=\"tessera-demo\", algs=\"{algs}\""),
        Some(error) => format!("DPoP realm=\"tessera-demo\", algs=\"{algs}\", error=\"{error}\", error_description=\"{quoted}\""),
    };
    let code = error.unwrap_or("unauthorized");
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, code, detail).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
