//! Slowing down whoever guesses client secrets or floods the OAuth
//! endpoints, and leaving a trace of it.
//!
//! Every path that authenticates a client goes through
//! [`Throttle::authenticate`]. It counts failed authentications per
//! presented client id and per peer address in a sliding window
//! (`throttle.window`); once a client id has failed `throttle.max_failures`
//! times, or a peer `throttle.max_failures_per_peer` times, further
//! attempts for that id / from that peer are refused with 429 and
//! `Retry-After` *without the secret being checked*, so guessing stops.
//! Nothing is locked for good: the window slides, and once the failures
//! have aged out the right secret works again. A success does not wipe
//! failures (it would let a guesser who also holds one valid client reset
//! its count); it only takes back its own attempt.
//!
//! Ids are counted whether or not they are configured, so the 429 says
//! nothing about which ids exist. Each failure is logged as
//! `security_event = "client_auth_failed"` with the client id (or
//! `unknown` when no such client is configured: a mistyped secret pasted
//! into the id never reaches the log) and the peer, and counted in
//! `tessera_client_auth_failures_total{reason}`.
//!
//! The peer is the TCP peer (the listener's [`Connection`]), or behind a
//! trusted proxy the address it vouches for (module `peer`); IPv6 peers are
//! counted per /64. A request with no `Connection` (the router called
//! in-process) has no peer: only its client id is counted.
//!
//! Optionally, [`over_rate`] caps each peer's request rate on
//! `/oauth2/*` (`throttle.requests_per_second`, module `rate`). Every map here
//! holds at most `throttle.max_tracked` keys (module `generations`).

mod failures;
mod generations;
mod peer;
mod rate;

use super::AppState;
use super::error::OAuthError;
use crate::app::listener::Connection;
use crate::clients::{Client, ClientAuthError, ClientRegistry, Credentials};
use crate::config::ThrottleConfig;
use crate::metrics::{AuthFailure, Metrics};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use failures::{FailureLimit, Pending};
use peer::{TrustedProxies, throttle_key};
use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which clients an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepting {
    /// Confidential clients with their secret, public clients by id.
    AnyClient,
    /// Confidential clients only.
    Confidential,
}

/// Where a request came from, as throttling and the security log see it;
/// `None` when it did not come over TCP (the router called in-process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub Option<IpAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => address.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl FromRequestParts<AppState> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(state.throttle.peer(&parts.headers, &parts.extensions))
    }
}

/// Client ids longer than this are counted by their first bytes (no
/// configured id is longer).
const MAX_COUNTED_ID: usize = 128;

/// The failure counts, the trusted proxies and the request rate.
#[derive(Debug)]
pub struct Throttle {
    clients: FailureLimit<String>,
    peers: FailureLimit<IpAddr>,
    proxies: TrustedProxies,
    rate: Option<rate::RequestRate>,
    metrics: Arc<Metrics>,
}

impl Throttle {
    pub fn new(config: &ThrottleConfig, trusted_proxies: Vec<ipnet::IpNet>, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        Self {
            clients: FailureLimit::new(config.max_failures, config.window, config.max_tracked, now),
            peers: FailureLimit::new(config.max_failures_per_peer, config.window, config.max_tracked, now),
            proxies: TrustedProxies::new(trusted_proxies),
            rate: rate::RequestRate::new(config.requests_per_second, config.burst, config.max_tracked),
            metrics,
        }
    }

    /// The peer of a request: the TCP peer, or the address a trusted proxy vouches for.
    pub fn peer(&self, headers: &HeaderMap, extensions: &Extensions) -> Peer {
        let tcp_peer = extensions.get::<Connection>().map(|connection| connection.peer.ip());
        Peer(tcp_peer.map(|address| self.proxies.resolve(address, headers.get_all("x-forwarded-for").iter())))
    }

    /// Authenticate the client a request presented, unless its id or its
    /// peer has used up its failures; count and log the failure if it fails.
    pub fn authenticate(
        &self,
        clients: &ClientRegistry,
        credentials: Result<Credentials, ClientAuthError>,
        peer: Peer,
        accepting: Accepting,
    ) -> Result<Arc<Client>, ClientAuthError> {
        let credentials = credentials.inspect_err(|error| {
            self.failed(clients, None, peer, reason(error, None, clients));
        })?;
        let Some(id) = credentials.client_id() else {
            return Err(self.failed(clients, None, peer, AuthFailure::Missing));
        };
        let now = Instant::now();
        let client_key = truncate(id, MAX_COUNTED_ID).to_string();
        let peer_key = peer.0.map(throttle_key);
        let verify = || match accepting {
            Accepting::AnyClient => clients.authenticate(&credentials),
            Accepting::Confidential => clients.authenticate_confidential(&credentials),
        };
        let (on_client, on_peer, verdict) = if matches!(credentials, Credentials::PublicId(_)) {
            // No secret presented, so nothing to guess and no race to guard
            // against: check the limits without counting, and count only a
            // failure (a success, the common case, touches no tally).
            let refused = self.clients.refused(&client_key, now).or_else(|| peer_key.and_then(|key| self.peers.refused(&key, now)));
            if let Some(wait) = refused {
                return Err(self.throttled(clients, id, peer, wait));
            }
            let verdict = verify();
            if verdict.is_ok() {
                return verdict;
            }
            let (on_client, on_peer) = self.count(&client_key, peer_key, now).map_err(|wait| self.throttled(clients, id, peer, wait))?;
            (on_client, on_peer, verdict)
        } else {
            // A secret is checked only once the attempt is counted, so
            // concurrent guesses cannot overshoot the limit.
            let (on_client, on_peer) = self.count(&client_key, peer_key, now).map_err(|wait| self.throttled(clients, id, peer, wait))?;
            (on_client, on_peer, verify())
        };
        let error = match verdict {
            Ok(client) => {
                self.take_back(&client_key, on_client, peer_key, on_peer, now);
                return Ok(client);
            }
            Err(error) => error,
        };
        let why = reason(&error, Some(&credentials), clients);
        if why == AuthFailure::Missing {
            // A public client naming itself where a secret is needed: nothing was guessed.
            self.take_back(&client_key, on_client, peer_key, on_peer, now);
        } else {
            let reached = |pending: &Option<Pending>| pending.as_ref().is_some_and(|p| p.reached_limit);
            if reached(&on_client) || reached(&on_peer) {
                tracing::warn!(
                    security_event = "client_auth_throttled",
                    client = %logged_id(clients, Some(id)),
                    peer = %peer,
                    by = if reached(&on_client) { "client" } else { "peer" },
                    "client authentication failed too often; further attempts are refused until the window frees"
                );
            }
        }
        self.failed(clients, Some(id), peer, why);
        Err(error)
    }

    /// Count an attempt against the client id and the peer; the wait if
    /// either has used up its failures (then neither is counted).
    fn count(&self, client_key: &String, peer_key: Option<IpAddr>, now: Instant) -> Result<(Option<Pending>, Option<Pending>), Duration> {
        let on_client = self.clients.begin(client_key, now)?;
        match peer_key.map(|key| self.peers.begin(&key, now)) {
            Some(Err(wait)) => {
                self.take_back(client_key, on_client, None, None, now);
                Err(wait)
            }
            Some(Ok(on_peer)) => Ok((on_client, on_peer)),
            None => Ok((on_client, None)),
        }
    }

    fn take_back(&self, client_key: &String, on_client: Option<Pending>, peer_key: Option<IpAddr>, on_peer: Option<Pending>, now: Instant) {
        if let Some(pending) = on_client {
            self.clients.succeeded(client_key, pending, now);
        }
        if let (Some(key), Some(pending)) = (peer_key, on_peer) {
            self.peers.succeeded(&key, pending, now);
        }
    }

    /// Log and count a failed authentication; the error to answer with.
    fn failed(&self, clients: &ClientRegistry, id: Option<&str>, peer: Peer, reason: AuthFailure) -> ClientAuthError {
        self.metrics.client_auth_failure(reason);
        tracing::warn!(
            security_event = "client_auth_failed",
            client = %logged_id(clients, id),
            peer = %peer,
            reason = reason.as_str(),
            "client authentication failed"
        );
        match reason {
            AuthFailure::Missing => ClientAuthError::Missing,
            _ => ClientAuthError::Failed,
        }
    }

    /// Count a refused attempt (logged once, when the limit was reached).
    fn throttled(&self, clients: &ClientRegistry, id: &str, peer: Peer, wait: Duration) -> ClientAuthError {
        self.metrics.client_auth_failure(AuthFailure::Throttled);
        tracing::debug!(client = %logged_id(clients, Some(id)), peer = %peer, "client authentication refused: too many failures");
        ClientAuthError::Throttled { retry_after: whole_seconds(wait) }
    }
}

/// Why an authentication failed, for the metric and the log.
fn reason(error: &ClientAuthError, credentials: Option<&Credentials>, clients: &ClientRegistry) -> AuthFailure {
    let known = credentials.and_then(Credentials::client_id).is_some_and(|id| clients.get(id).is_some());
    match error {
        ClientAuthError::Missing => AuthFailure::Missing,
        ClientAuthError::Failed if matches!(credentials, Some(Credentials::PublicId(_))) && known => AuthFailure::Missing,
        ClientAuthError::Failed if known => AuthFailure::BadSecret,
        ClientAuthError::Failed if credentials.is_some() => AuthFailure::UnknownClient,
        ClientAuthError::Throttled { .. } => AuthFailure::Throttled,
        _ => AuthFailure::Malformed,
    }
}

/// The id as the log may show it: a configured client's, else `unknown`.
fn logged_id<'a>(clients: &ClientRegistry, id: Option<&'a str>) -> &'a str {
    match id {
        Some(id) if clients.get(id).is_some() => id,
        _ => "unknown",
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `Retry-After` seconds: rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000_000).max(1) as u64
}

/// Middleware: refuse a peer over `throttle.requests_per_second` on the
/// OAuth endpoints with 429 and `Retry-After`, before its body is read.
/// The optional per-peer request rate limit on the OAuth endpoints: the
/// answer to give instead of serving the request, when the peer is over it.
pub fn over_rate(state: &AppState, request: &Request) -> Option<Response> {
    let rate = state.throttle.rate.as_ref()?;
    if !request.uri().path().starts_with("/oauth2/") {
        return None;
    }
    let Peer(Some(peer)) = state.throttle.peer(request.headers(), request.extensions()) else { return None };
    let wait = rate.check(throttle_key(peer)).err()?;
    Some(
        OAuthError::too_many_requests(
            whole_seconds(wait),
            format!("too many requests from this address; at most {} per second", state.config().throttle.requests_per_second),
        )
        .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }

    #[test]
    fn long_ids_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("ab", 128), "ab");
        assert_eq!(truncate("aé", 2), "a");
    }
}
