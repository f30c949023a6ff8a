//! `tessera serve --dev`: a demo page that shows the browser flow end to
//! end, and the stand-in login backend it needs. Off unless `--dev`.
//!
//! The page (plain HTML + JS, compiled into the binary) signs in through the
//! one-time code + PKCE handoff, keeps the refresh token in the HttpOnly
//! cookie, shows the access token's claims and a countdown, refreshes by
//! itself, logs out, logs out everywhere, and can replay the previous
//! refresh token to show theft detection ending the session. The page never
//! sees a refresh token; the stand-in backend remembers the last one a demo
//! session presented so that the replay button has something to replay.
//!
//! Both tokens are DPoP-bound (RFC 9449): the page holds a non-extractable
//! WebCrypto key, the login binds the code to its thumbprint, the demo
//! client has `require_dpop`, and [`api`] is a protected API that takes
//! DPoP-bound tokens only. The replay button replays with a proof by the
//! page's key (what script injected into the page could do): a thief
//! without the key is refused before the token is even consumed.

use super::error::Problem;
use super::{AppState, RefreshObserver, Route};
use crate::clients::{Client, ClientRegistry};
use crate::sessions::{self, SessionRequest, SessionStarted};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The demo's public client.
pub const DEMO_CLIENT: &str = "demo";

const PAGE: &str = include_str!("index.html");

pub mod api;

/// The demo routes, mounted only in dev mode.
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: api::PATH, endpoint: || get(api::profile) },
    Route { method: "GET", path: "/demo", endpoint: || get(page) },
    Route { method: "POST", path: "/demo/login", endpoint: || post(login) },
    Route { method: "POST", path: "/demo/replay", endpoint: || post(replay) },
    Route { method: "POST", path: "/demo/logout-everywhere", endpoint: || post(logout_everywhere) },
];

/// The configured clients plus the demo's public client (refresh cookie,
/// the issuer as its one origin), unless a client of that id exists.
pub fn with_demo_client(clients: ClientRegistry, issuer: &str, access_ttl: Duration) -> ClientRegistry {
    let mut demo = Client::public(DEMO_CLIENT, access_ttl);
    demo.scopes = vec!["profile".into()];
    demo.allowed_origins = vec![issuer.to_string()];
    demo.refresh_cookie = true;
    demo.require_dpop = true;
    clients.with(demo)
}

/// The last refresh token each demo session presented, bounded.
#[derive(Debug, Default)]
struct DemoMemory(Mutex<HashMap<String, String>>);

impl RefreshObserver for DemoMemory {
    fn presented(&self, sid: &str, token: &str) {
        let mut memory = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if memory.len() > 10_000 {
            memory.clear();
        }
        memory.insert(sid.to_string(), token.to_string());
    }

    fn last_presented(&self, sid: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(sid).cloned()
    }
}

/// The observer that remembers what demo sessions presented.
pub fn observer() -> Arc<dyn RefreshObserver> {
    Arc::new(DemoMemory::default())
}

async fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid_body", format!("the body does not match: {e}")))
}

#[derive(Deserialize)]
struct Login {
    sub: String,
    code_challenge: String,
    dpop_jkt: Option<String>,
}

/// Stand-in login backend: "authenticates" anyone and starts a session for
/// the demo client behind a one-time code bound to the page's challenge.
async fn login(State(state): State<AppState>, super::extract::RawBody(bytes): super::extract::RawBody) -> Result<Response, Problem> {
    let login: Login = body(&bytes)?;
    let config = state.config();
    let demo = config
        .clients
        .get(DEMO_CLIENT)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_demo_client", "the demo client is missing"))?;
    let request = SessionRequest {
        sub: login.sub,
        client_id: None,
        aud: None,
        resource: None,
        scope: None,
        claims: Some(serde_json::json!({"demo": true})),
        code_challenge: Some(login.code_challenge),
        code_challenge_method: Some("S256".into()),
        dpop_jkt: login.dpop_jkt,
    };
    let max_age = config.tokens.refresh_idle_ttl.as_secs();
    let budget = |client: &Client| state.cookie.token_budget(client, max_age);
    match sessions::start_for(&state.authority, &config.clients, demo, request, &budget).await? {
        SessionStarted::Code(code) => Ok((StatusCode::CREATED, Json(code)).into_response()),
        SessionStarted::Tokens(_) => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected", "the demo asked for a code")),
    }
}

#[derive(Deserialize)]
struct Replay {
    session_id: String,
    /// A proof for the token endpoint, as a thief with the page's key makes it.
    dpop: Option<String>,
}

/// Replay the refresh token the session presented last — what a thief
/// holding a stolen copy (and, with `dpop`, the use of the page's key)
/// would do.
async fn replay(State(state): State<AppState>, super::extract::RawBody(bytes): super::extract::RawBody) -> Result<Response, Problem> {
    let replay: Replay = body(&bytes)?;
    let previous = state.refresh_observer.as_ref().and_then(|observer| observer.last_presented(&replay.session_id));
    let Some(previous) = previous else {
        return Err(Problem::new(StatusCode::CONFLICT, "nothing_to_replay", "refresh once first: there is no previous refresh token yet"));
    };
    let config = state.config();
    let demo = config
        .clients
        .get(DEMO_CLIENT)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_demo_client", "the demo client is missing"))?;
    let proof = match replay.dpop.as_deref().map(|proof| state.dpop.check(proof, &state.keyring.view(), state.authority.clock.now())) {
        Some(Err(error)) => return Ok(Json(serde_json::json!({"outcome": "refused", "detail": error.to_string()})).into_response()),
        Some(Ok(proof)) => Some(proof),
        None => None,
    };
    let outcome = match crate::grants::refresh_token::grant(&state.authority, demo, &previous, None, &[], proof.as_ref()).await {
        Ok(_) => {
            serde_json::json!({"outcome": "retry", "detail": "inside the reuse grace window: treated as a retry (same child returned)"})
        }
        Err(error @ crate::authority::Refusal::InvalidGrant(_)) => {
            serde_json::json!({"outcome": "theft_detected", "detail": error.to_string()})
        }
        Err(error) => serde_json::json!({"outcome": "refused", "detail": error.to_string()}),
    };
    Ok(Json(outcome).into_response())
}

#[derive(Deserialize)]
struct Everywhere {
    sub: String,
}

async fn logout_everywhere(
    State(state): State<AppState>,
    super::extract::RawBody(bytes): super::extract::RawBody,
) -> Result<StatusCode, Problem> {
    let everywhere: Everywhere = body(&bytes)?;
    let config = state.config();
    let demo = config
        .clients
        .get(DEMO_CLIENT)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "no_demo_client", "the demo client is missing"))?;
    let before = sessions::end_subject(&state.authority, demo, &everywhere.sub).await?;
    super::sessions::after_second(before).await;
    Ok(StatusCode::NO_CONTENT)
}
