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
    let store_up = state.authority.store_answers(std::time::Duration::from_secs(1)).await;
    let current = state.authority.require_fresh_revocations().is_ok();
    text.push_str(&format!(
        "# HELP tessera_store_up Whether the store answered a ping during this scrape.\n# TYPE tessera_store_up gauge\ntessera_store_up {}\n\
         # HELP tessera_revocations_current Whether the in-memory revocation list is current (a shared store's follower reported within store.mirror_max_staleness); 0 means refresh and revocation answer 503.\n# TYPE tessera_revocations_current gauge\ntessera_revocations_current {}\n",
        u8::from(store_up),
        u8::from(current)
    ));
    let now = state.keyring.clock().now();
    if let Some(ends) = state.keyring.view().signer_ends_at(now, state.config().keys.rotate_every) {
        text.push_str(&format!(
            "# HELP tessera_signing_key_expires_in_seconds Seconds until the active signing key stops signing: its successor activates, or (keys.rotate_every) its rotation is due; negative when overdue.\n# TYPE tessera_signing_key_expires_in_seconds gauge\ntessera_signing_key_expires_in_seconds {}\n",
            (ends - now).num_seconds()
        ));
    }
    text.push_str(&format!(
        "# HELP tessera_feed_streams Open revocation streams (GET /v1/revocations/stream).\n# TYPE tessera_feed_streams gauge\ntessera_feed_streams {}\n",
        state.feed_streams.open()
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
