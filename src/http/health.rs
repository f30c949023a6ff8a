//! Operator endpoints: liveness, readiness, metrics.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

/// The process is up and answering.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to issue tokens: a signing key and a refresh MAC key are active,
/// and the store answers and takes writes. When the store is the reason,
/// `reasons.store` says why (e.g. "write failed: No space left on device").
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (signing, mac) = state.authority.keys_present();
    let trouble = state.authority.store_trouble();
    let store = trouble.is_none() && state.authority.store_answers(std::time::Duration::from_secs(2)).await;
    let revocations_current = state.authority.require_fresh_revocations().is_ok();
    let ready = signing && mac && store && revocations_current;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "signing_key": signing, "refresh_mac_key": mac, "store": store, "revocations_current": revocations_current },
    });
    if !store {
        body["reasons"] = json!({ "store": trouble.unwrap_or_else(|| "the store did not answer within 2 seconds".into()) });
    }
    (status, Json(body))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let mut text = state.authority.render_metrics();
    text.push_str(&format!(
        "# HELP tessera_feed_streams Open revocation streams (GET /v1/revocations/stream).\n# TYPE tessera_feed_streams gauge\ntessera_feed_streams {}\n",
        state.feed_streams.open()
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
