//! Liveness and readiness for orchestrators.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

/// The process is up and answering.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to issue tokens: a signing key and a refresh MAC key are active.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (signing, mac) = state.keyring.key_uses_present();
    let ready = signing && mac;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "signing_key": signing, "refresh_mac_key": mac },
    });
    (status, Json(body))
}
