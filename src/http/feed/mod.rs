//! `GET /v1/revocations` (signed document) and `GET /v1/revocations/stream`
//! (Server-Sent Events with `Last-Event-ID` resume). See [`crate::revocations::feed`].

use super::AppState;
use super::error::Problem;
use crate::clients::Credentials;
use crate::revocations::RevocationEntry;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The feed is public unless `feed.public = false`; then any confidential
/// client may read it with HTTP Basic.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    if state.config.feed_public {
        return Ok(());
    }
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("invalid"));
    state.config.clients.authenticate_confidential(&Credentials::from_request(authorization, None, None)?)?;
    Ok(())
}

/// `after` from the query string, or from `Last-Event-ID` for the stream.
fn cursor(query: Option<&str>, headers: &HeaderMap) -> Result<u64, Problem> {
    let from_query = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "after").map(|(_, v)| v.into_owned()));
    let from_header = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    match from_query.or(from_header) {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                format!("the cursor {:?} is not a sequence number", text.chars().take(32).collect::<String>()),
            )
            .with_field("after")
        }),
    }
}

pub async fn document(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    state.authority.require_fresh_revocations()?;
    let after = cursor(query.as_deref(), &HeaderMap::new())?;
    let (entries, watermark) = state.authority.revocations_since(after);
    // Weak: the signed bytes differ by `iat`, the content does not.
    let etag = format!("W/\"{after}.{watermark}.{}\"", entries.len());
    let validators = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("ASCII")),
        // A feed behind client authentication must never be stored by a
        // shared cache and handed to someone else (RFC 9111 §3.5).
        (header::CACHE_CONTROL, HeaderValue::from_static(if state.config.feed_public { "public, max-age=1" } else { "private, no-store" })),
        (header::VARY, HeaderValue::from_static("Authorization")),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    let signed = state
        .authority
        .sign_revocations(after, watermark, entries)
        .ok_or_else(|| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", "no signing key is active"))?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/jwt"))], validators, signed).into_response())
}

fn event(entry: &RevocationEntry) -> Event {
    Event::default().id(entry.seq.to_string()).event("revocation").data(serde_json::to_string(entry).expect("entry serializes"))
}

struct Follow {
    backlog: VecDeque<Event>,
    last: u64,
    live: tokio::sync::broadcast::Receiver<RevocationEntry>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    state: AppState,
}

pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    authorize(&state, &headers)?;
    state.authority.require_fresh_revocations()?;
    let after = cursor(query.as_deref(), &headers)?;
    // Subscribe before reading the backlog so nothing falls in between.
    let live = state.authority.subscribe_revocations();
    let (entries, watermark) = state.authority.revocations_since(after);
    let mut backlog: VecDeque<Event> = entries.iter().map(event).collect();
    backlog.push_back(Event::default().event("ready").data(format!("{{\"cursor\":{watermark}}}")));
    let follow = Follow { backlog, last: watermark.max(after), live, shutdown: state.shutdown_signal(), state };
    let events = stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(next) = follow.backlog.pop_front() {
                return Some((Ok(next), follow));
            }
            tokio::select! {
                _ = follow.shutdown.changed() => return None,
                received = follow.live.recv() => match received {
                    Ok(entry) if entry.seq <= follow.last => continue,
                    Ok(entry) => {
                        follow.last = entry.seq;
                        return Some((Ok(event(&entry)), follow));
                    }
                    Err(RecvError::Lagged(_)) => {
                        let (missed, _) = follow.state.authority.revocations_since(follow.last);
                        if let Some(top) = missed.last() {
                            follow.last = top.seq;
                        }
                        follow.backlog.extend(missed.iter().map(event));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
