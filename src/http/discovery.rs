//! Discovery: the JWKS and RFC 8414 authorization server metadata. Both are
//! rendered ahead of time and served from memory; the JWKS carries a strong
//! `ETag` so gateways and verifiers revalidate with a 304.

use super::AppState;
use crate::grants::GRANT_TYPES;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub fn render_metadata(issuer: &str) -> bytes::Bytes {
    let metadata = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_feed_endpoint": format!("{issuer}/v1/revocations"),
        "grant_types_supported": GRANT_TYPES,
        // Codes come from POST /v1/sessions (the login backend), not from an
        // authorization endpoint; PKCE S256 is mandatory.
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // RFC 9449 §5.1: the token endpoint takes DPoP proofs signed with these.
        "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS.map(|alg| alg.as_str()),
    });
    bytes::Bytes::from(metadata.to_string())
}

/// The JWKS, with its ETag (and `304` for a matching `If-None-Match`).
/// Takes the request whole, since a `HeaderMap` extractor copies the map.
pub async fn jwks(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let headers = request.headers();
    let view = state.keyring.view();
    let jwks = view.jwks();
    let cache_control = format!("public, max-age={}", state.config().keys.jwks_max_age.as_secs());
    let etag = HeaderValue::from_str(&jwks.etag).expect("etag is ASCII");
    let cache_control = HeaderValue::from_str(&cache_control).expect("ASCII");
    if if_none_match(headers, &jwks.etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json")),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        jwks.body.clone(),
    )
        .into_response()
}

/// RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

pub async fn metadata(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")], state.metadata.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_handles_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(if_none_match(&headers, "\"b\""));
        assert!(!if_none_match(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"c\""));
    }
}
