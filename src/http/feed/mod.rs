//! `GET /v1/revocations` (a signed page of the list) and
//! `GET /v1/revocations/stream` (Server-Sent Events, [`stream`]). See
//! [`crate::revocations::feed`] for the document and its cursor.
//!
//! Both are bounded by what one reader may cost, whatever the size of the
//! list: a document is one page of at most `limit` entries, signed once per
//! change of the list and handed to every reader as the same bytes; a
//! stream walks the list page by page and holds no copy of it.
//!
//! The feed names subjects and sessions, so it is private by default: a
//! confidential client with the `read_revocations` permission reads it
//! with HTTP Basic. `feed.public = true` opens it to anyone.

mod stream;

pub use stream::{StreamSlots, stream};

use super::AppState;
use super::error::Problem;
use super::extract::management_client;
use super::throttle::Peer;
use crate::clients::Permission;
use crate::config::FeedConfig;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A public feed needs nothing; a private one a confidential client (HTTP
/// Basic) with the `read_revocations` permission.
fn authorize(state: &AppState, headers: &HeaderMap, peer: Peer) -> Result<(), Problem> {
    if state.config().feed.public {
        return Ok(());
    }
    management_client(state, headers, peer, &[Permission::ReadRevocations]).map(|_| ())
}

/// The first value of query parameter `name`.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()))
}

/// `after` from the query string, or else from `Last-Event-ID` (the stream).
fn cursor(query: Option<&str>, headers: &HeaderMap) -> Result<u64, Problem> {
    let from_header = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    match query_value(query, "after").or(from_header) {
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

/// `limit` from the query string: 1 to [`FeedConfig::MAX_PAGE_SIZE`],
/// `feed.page_size` when absent.
fn limit(query: Option<&str>, feed: &FeedConfig) -> Result<usize, Problem> {
    let Some(text) = query_value(query, "limit") else {
        return Ok(feed.page_size);
    };
    match text.trim().parse::<usize>() {
        Ok(limit) if (1..=FeedConfig::MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!("the limit {:?} is not a number from 1 to {}", text.chars().take(32).collect::<String>(), FeedConfig::MAX_PAGE_SIZE),
        )
        .with_field("limit")),
    }
}

pub async fn document(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    authorize(&state, &headers, peer)?;
    state.authority.require_fresh_revocations()?;
    let after = cursor(query.as_deref(), &HeaderMap::new())?;
    let limit = limit(query.as_deref(), &state.config().feed)?;
    let page = state.authority.signed_revocations_page(after, limit).await?;
    let mut validators = HeaderMap::new();
    validators.insert(header::ETAG, HeaderValue::from_str(&page.etag).expect("ASCII"));
    // A feed behind client authentication must never be stored by a
    // shared cache and handed to someone else (RFC 9111 §3.5).
    let cache_control = if state.config().feed.public { "public, max-age=1" } else { "private, no-store" };
    validators.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    validators.insert(header::VARY, HeaderValue::from_static("Authorization"));
    if page.more {
        // RFC 8288: where the next page is.
        let next = format!("<{}/v1/revocations?after={}&limit={limit}>; rel=\"next\"", state.issuer(), page.cursor);
        // An issuer that cannot be a header value (a control character in
        // the configured URL) loses the link, not the answer.
        if let Ok(link) = HeaderValue::from_str(&next) {
            validators.insert(header::LINK, link);
        }
    }
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == page.etag || tag.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/jwt"))], validators, page.body.clone()).into_response())
}
