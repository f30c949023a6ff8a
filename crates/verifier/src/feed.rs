//! Following tessera's revocation feed, so a logout reaches this service in
//! about a second while each check stays a local lookup.
//!
//! The live path is the Server-Sent Events stream
//! (`GET {feed}/stream`): the backlog after our cursor, one `ready` event,
//! then each entry the moment the server records it. A broken stream is
//! reopened with `Last-Event-ID` set to the cursor, so nothing recorded in
//! between is missed. While the stream cannot be opened (a proxy that
//! buffers or forbids SSE, the issuer restarting, a cap on streams), the
//! signed document `GET {feed}?after=cursor` is polled every second
//! instead, and the stream retried with backoff. The document comes in
//! pages: while a page says `more`, the next one is read from its cursor,
//! so a list of any size loads without one huge document. The document is a JWS (`typ: revocations+jwt`)
//! checked with the same JWKS as access tokens, because caches and CDNs may
//! carry it; the stream comes straight from the issuer over the same
//! transport as the JWKS.
//!
//! [`RevocationFeed::sync`] runs once at build, so a verifier never starts
//! with an empty list; [`RevocationFeed::follow`] then runs in the
//! background until the verifier is dropped.

use super::fetch::{self, FetchError, REQUEST_TIMEOUT};
use super::jwks::JwksCache;
use super::revocations::{RevocationEntry, RevocationMirror};
use super::sse::SseDecoder;
use super::token::{self, Policy, VerifyError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tessera_jose::{CompactJws, TimeClaims, typ};
use tokio::time::{Instant, sleep, timeout};

/// How often the document is polled while the stream is down.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The server sends a keep-alive comment every 15 s; silence this long means
/// the connection is dead.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Delays between attempts to reopen a stream that could not be opened.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The claims of the signed feed document.
#[derive(Deserialize)]
struct FeedDocument {
    iss: String,
    exp: i64,
    after: u64,
    cursor: u64,
    /// More entries follow from `cursor` (absent from servers that send
    /// the whole list in one document).
    #[serde(default)]
    more: bool,
    revocations: Vec<RevocationEntry>,
}

#[derive(Deserialize)]
struct Ready {
    cursor: u64,
}

/// An open event stream.
pub(crate) struct EventStream {
    response: reqwest::Response,
    decoder: SseDecoder,
    /// Whether the server said the backlog was delivered.
    ready: bool,
}

pub(crate) struct RevocationFeed {
    http: reqwest::Client,
    document_url: String,
    stream_url: String,
    policy: Arc<Policy>,
    jwks: Arc<JwksCache>,
    mirror: Arc<RevocationMirror>,
    /// HTTP Basic credentials for a feed that is not public.
    credentials: Option<(String, String)>,
    /// The last sequence number applied.
    cursor: u64,
    /// Entries per document asked for (`limit`); the server's default when
    /// `None`.
    page_size: Option<usize>,
}

impl RevocationFeed {
    pub fn new(
        http: reqwest::Client,
        document_url: String,
        policy: Arc<Policy>,
        jwks: Arc<JwksCache>,
        mirror: Arc<RevocationMirror>,
        credentials: Option<(String, String)>,
        page_size: Option<usize>,
    ) -> Self {
        let stream_url = format!("{document_url}/stream");
        Self { http, document_url, stream_url, policy, jwks, mirror, credentials, cursor: 0, page_size }
    }

    /// A GET to the feed, with credentials when the feed requires them.
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.credentials {
            Some((id, secret)) => request.basic_auth(id, Some(secret)),
            None => request,
        }
    }

    /// The first synchronisation: read the stream up to `ready`, or, if it
    /// cannot be, poll the document once. The stream, if it is open, for
    /// [`follow`](Self::follow) to go on with.
    pub async fn sync(&mut self) -> Result<Option<EventStream>, FetchError> {
        let error = match self.open().await {
            Ok(mut stream) => match timeout(REQUEST_TIMEOUT, self.read(&mut stream, true)).await {
                Ok(Ok(())) if stream.ready => return Ok(Some(stream)),
                Ok(Ok(())) => FetchError::document(&self.stream_url, "the stream ended before its ready event"),
                Ok(Err(error)) => error,
                Err(_) => FetchError::document(&self.stream_url, "no ready event within 10 s"),
            },
            Err(error) => error,
        };
        tracing::warn!(%error, "revocation stream unavailable; polling the feed document instead");
        self.poll().await.map(|()| None)
    }

    /// Follow the feed for ever (the task is dropped with the verifier).
    pub async fn follow(mut self, mut stream: Option<EventStream>) {
        let mut retry = RETRY_MIN;
        loop {
            let opened = match stream.take() {
                Some(open) => Ok(open),
                None => self.open().await,
            };
            match opened {
                Ok(mut open) => {
                    if let Err(error) = self.read(&mut open, false).await {
                        tracing::info!(%error, cursor = self.cursor, "revocation stream broke; resuming");
                    }
                    if open.ready {
                        // It was healthy: reopen at once, from the cursor.
                        retry = RETRY_MIN;
                        continue;
                    }
                }
                Err(error) => tracing::warn!(%error, cursor = self.cursor, retry_in = ?retry, "revocation stream unavailable; polling"),
            }
            self.poll_for(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    async fn open(&self) -> Result<EventStream, FetchError> {
        let request = self.get(&self.stream_url).header("accept", "text/event-stream").header("last-event-id", self.cursor.to_string());
        let response = timeout(REQUEST_TIMEOUT, fetch::send(request, &self.stream_url))
            .await
            .map_err(|_| FetchError::document(&self.stream_url, "no response within 10 s"))??;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status { url: self.stream_url.clone(), status: response.status().as_u16() });
        }
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(FetchError::document(&self.stream_url, format!("content-type {content_type:?} is not text/event-stream")));
        }
        Ok(EventStream { response, decoder: SseDecoder::default(), ready: false })
    }

    /// Apply events until the stream ends (or, with `until_ready`, until its
    /// `ready` event).
    async fn read(&mut self, stream: &mut EventStream, until_ready: bool) -> Result<(), FetchError> {
        let mut events = Vec::new();
        loop {
            let chunk = timeout(STREAM_IDLE_TIMEOUT, stream.response.chunk())
                .await
                .map_err(|_| FetchError::document(&self.stream_url, "silent for 45 s"))?
                .map_err(|e| FetchError::transport(&self.stream_url, &e))?;
            let Some(chunk) = chunk else { return Ok(()) };
            stream.decoder.push(&chunk, &mut events).map_err(|reason| FetchError::document(&self.stream_url, reason))?;
            for event in events.drain(..) {
                match event.event.as_str() {
                    "revocation" => {
                        let entry: RevocationEntry = serde_json::from_str(&event.data)
                            .map_err(|e| FetchError::document(&self.stream_url, format!("a revocation event is not an entry: {e}")))?;
                        self.cursor = self.cursor.max(entry.seq);
                        self.mirror.apply(&[entry], super::unix_now());
                    }
                    "ready" => {
                        let ready: Ready = serde_json::from_str(&event.data)
                            .map_err(|e| FetchError::document(&self.stream_url, format!("the ready event has no cursor: {e}")))?;
                        self.cursor = self.cursor.max(ready.cursor);
                        stream.ready = true;
                    }
                    _ => {}
                }
            }
            if until_ready && stream.ready {
                return Ok(());
            }
        }
    }

    /// Poll the document every [`POLL_INTERVAL`] for `period`.
    async fn poll_for(&mut self, period: Duration) {
        let until = Instant::now() + period;
        let mut logged = false;
        loop {
            if let Err(error) = self.poll().await
                && !std::mem::replace(&mut logged, true)
            {
                tracing::warn!(%error, cursor = self.cursor, "revocation feed document unavailable; revocations may be missed");
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            sleep(left.min(POLL_INTERVAL)).await;
        }
    }

    /// Fetch, check and apply the signed document after our cursor, page
    /// after page until the last.
    async fn poll(&mut self) -> Result<(), FetchError> {
        while self.poll_page().await? {}
        Ok(())
    }

    /// One page; whether more follow.
    async fn poll_page(&mut self) -> Result<bool, FetchError> {
        let url = match self.page_size {
            Some(limit) => format!("{}?after={}&limit={limit}", self.document_url, self.cursor),
            None => format!("{}?after={}", self.document_url, self.cursor),
        };
        let request = self.get(&url).timeout(REQUEST_TIMEOUT).header("accept", "application/jwt");
        let body = fetch::body(fetch::send(request, &url).await?, &url).await?;
        let text = std::str::from_utf8(&body).map_err(|_| FetchError::document(&url, "the document is not UTF-8"))?;
        let document = self.check_document(text.trim()).await.map_err(|e| FetchError::document(&url, e.to_string()))?;
        if document.after > self.cursor {
            return Err(FetchError::document(&url, format!("the document starts after {}, not after {}", document.after, self.cursor)));
        }
        self.mirror.apply(&document.revocations, super::unix_now());
        if document.more && document.cursor <= self.cursor {
            return Err(FetchError::document(&url, format!("the page says more follow, but its cursor {} does not move", document.cursor)));
        }
        self.cursor = self.cursor.max(document.cursor);
        Ok(document.more)
    }

    /// `typ`, key (one refetch for a new kid), signature, `iss`, `exp`.
    async fn check_document(&self, token: &str) -> Result<FeedDocument, VerifyError> {
        let jws = CompactJws::parse(token)?;
        jws.require_type(typ::REVOCATIONS_JWT_TYPES)?;
        if !self.jwks.keys().contains(jws.kid()) {
            self.jwks.refetch_for(jws.kid()).await;
        }
        let payload = token::verify_signature(&jws, &self.jwks.keys(), &self.policy.algorithms)?;
        let document: FeedDocument = serde_json::from_slice(&payload).map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
        if document.iss != self.policy.issuer {
            return Err(VerifyError::WrongIssuer { iss: document.iss, expected: self.policy.issuer.clone() });
        }
        TimeClaims { exp: document.exp, nbf: None, iat: None }.check(super::unix_now(), self.policy.leeway_seconds)?;
        Ok(document)
    }
}
