//! Building a [`Verifier`]: what it trusts, and the first load of the keys
//! (and of the revocation list) — a verifier is only handed out once it can
//! verify.
//!
//! The issuer is required, because every token's `iss` is compared with it,
//! and so is at least one audience (RFC 9068 §4 has a resource server check
//! `aud`, or a token for another service would pass here). The JWKS is found
//! through the issuer's RFC 8414 metadata, whose `issuer` must be identical
//! to the configured one (RFC 8414 §3.3), or is given directly with
//! [`VerifierBuilder::jwks_url`].
//!
//! The revocation feed is on by default: a logout that never reaches the
//! service is a security gap, and a build that fails says so loudly.
//!
//! HTTP goes through a client of the verifier's own (connect timeout, a
//! `tessera-verifier/…` user agent, native TLS roots) unless the caller
//! hands one over with [`VerifierBuilder::http_client`]; per-request
//! timeouts and body limits apply either way.

use super::cache::VerifiedTokens;
use super::dpop::{DpopPolicy, ReplayCache};
use super::feed::RevocationFeed;
use super::fetch::{self, FetchError, REQUEST_TIMEOUT};
use super::jwks::JwksCache;
use super::revocations::RevocationMirror;
use super::token::Policy;
use super::{Inner, Verifier};
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tessera_jose::Algorithm;
use tessera_jose::dpop::NonceKey;
use tokio::sync::watch;

/// Why a verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// [`VerifierBuilder::issuer`] was not called.
    #[error("no issuer: set .issuer(url); every token's iss is compared with it")]
    MissingIssuer,
    /// [`VerifierBuilder::audience`] was not called.
    #[error("no audience: set .audience(name); a token for another service must not pass here (RFC 9068 §4)")]
    MissingAudience,
    /// [`VerifierBuilder::algorithms`] or [`VerifierBuilder::dpop_algorithms`]
    /// was given an empty list.
    #[error("an algorithm allow-list is empty; this verifier implements ES256, ES384, EdDSA, RS256 and PS256")]
    NoAlgorithms,
    /// The verifier's own HTTP client could not be made (TLS roots).
    #[error("the HTTP client could not be set up: {0}")]
    HttpClient(String),
    /// The issuer's RFC 8414 metadata could not be read.
    #[error("issuer discovery failed: {0}")]
    Discovery(FetchError),
    /// The metadata names another issuer than the configured one.
    #[error("the metadata at {url} names issuer {found:?}, not the configured {expected:?} (RFC 8414 §3.3 wants them identical)")]
    IssuerMismatch {
        /// Where the metadata was read.
        url: String,
        /// The `issuer` it names.
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// The JWKS could not be loaded.
    #[error("the JWKS could not be loaded: {0}")]
    Jwks(FetchError),
    /// The revocation feed is followed but could not be read.
    #[error("the revocation feed could not be read: {0} (turn it off with .revocation_feed(false) if the issuer has none)")]
    RevocationFeed(FetchError),
}

/// Configures and builds a [`Verifier`]; start with [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: Option<String>,
    jwks_url: Option<String>,
    audiences: Vec<String>,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    refetch_cooldown: Duration,
    revocation_feed: bool,
    feed_credentials: Option<(String, String)>,
    feed_page_size: Option<usize>,
    http: Option<reqwest::Client>,
    verified_cache: usize,
    dpop: DpopSettings,
}

/// How DPoP proofs are judged; see the `dpop_*` methods.
#[derive(Debug, Clone)]
struct DpopSettings {
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    replay_capacity: usize,
    nonces: Option<NonceKey>,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            jwks_url: None,
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            algorithms: Algorithm::ALL.to_vec(),
            refetch_cooldown: Duration::from_secs(30),
            revocation_feed: true,
            feed_credentials: None,
            feed_page_size: None,
            http: None,
            verified_cache: 10_000,
            dpop: DpopSettings {
                algorithms: Algorithm::ALL.to_vec(),
                max_age: Duration::from_secs(60),
                replay_capacity: 100_000,
                nonces: None,
            },
        }
    }
}

/// RFC 8414 §2, the members used here.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    /// tessera's extension; `{issuer}/v1/revocations` without it.
    revocation_feed_endpoint: Option<String>,
}

impl VerifierBuilder {
    /// The issuer identifier, exactly as tokens carry it in `iss`; its
    /// metadata is read from `{issuer}/.well-known/oauth-authorization-server`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Load keys from this JWKS instead of discovering it from the issuer's
    /// metadata (the issuer is still required, for `iss`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// An audience this service answers to; call again to add more. A token
    /// passes if its `aud` names any of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s; whole
    /// seconds count).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The algorithms keys may have (default: all of [`Algorithm::ALL`]).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The least time between two JWKS fetches caused by unknown kids
    /// (default 30 s).
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// Whether to follow the issuer's revocation feed (default on).
    pub fn revocation_feed(mut self, follow: bool) -> Self {
        self.revocation_feed = follow;
        self
    }

    /// Read a feed that requires authentication (`feed.public = false` on
    /// the server) as this confidential client, with HTTP Basic.
    pub fn feed_credentials(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.feed_credentials = Some((client_id.into(), secret.into()));
        self
    }

    /// Entries per feed document when the stream is unavailable and the
    /// list is read page by page (`?limit=`; default: the server's
    /// `feed.page_size`, 1000 unless configured). The server allows 1 to
    /// 10 000.
    pub fn feed_page_size(mut self, entries: usize) -> Self {
        self.feed_page_size = Some(entries);
        self
    }

    /// Send every request (discovery, JWKS, feed) through this client
    /// instead of the verifier's own: to go through a proxy, trust a private
    /// CA, or name the service in the user agent. Its timeouts and pool
    /// settings are the caller's; each request still has the verifier's
    /// 10 s deadline and body limit. Build it with the re-exported
    /// [`reqwest`](crate::reqwest), so the versions match.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The most verified tokens remembered at once (default 10,000; 0 turns
    /// the cache off). A token seen again while held skips the signature
    /// check and the decoding of its claims; its issuer, audience, time
    /// and revocation are checked on every call, and it is verified afresh
    /// whenever the JWKS has changed. Only tokens that passed every check
    /// are entered, keyed by their SHA-256; each is held until its `exp`
    /// plus the leeway, and a full cache makes room by dropping the expired
    /// entries, then those closest to expiry.
    pub fn verified_cache(mut self, capacity: usize) -> Self {
        self.verified_cache = capacity;
        self
    }

    /// The algorithms DPoP proofs may be signed with (default: all of
    /// [`Algorithm::ALL`]; an empty list is refused at build).
    pub fn dpop_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.dpop.algorithms = algorithms.to_vec();
        self
    }

    /// How long after its `iat` a DPoP proof is accepted (default 60 s).
    /// Each accepted proof's `jti` is remembered this long; a proof's `iat`
    /// may also lie up to [`leeway`](Self::leeway) in the future.
    pub fn dpop_max_age(mut self, max_age: Duration) -> Self {
        self.dpop.max_age = max_age;
        self
    }

    /// The most DPoP proofs remembered at once against replay (default
    /// 100,000). When all of them are still live, further DPoP requests
    /// are refused with 503 until some age out: a live proof is never
    /// forgotten to make room.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop.replay_capacity = capacity;
        self
    }

    /// Require a server nonce in every DPoP proof (RFC 9449 §9): nonces
    /// name a window of `period` and carry a MAC under `secret` (at least
    /// 32 random bytes). Instances of one service behind a load balancer
    /// must share the secret to accept each other's nonces; an instance
    /// that needs none of that can pass fresh random bytes.
    pub fn dpop_nonces(mut self, secret: &[u8], period: Duration) -> Self {
        self.dpop.nonces = Some(NonceKey::new(secret, period.as_secs()));
        self
    }

    /// Discover, load the keys and (when followed) the revocation list, and
    /// start the background tasks that keep both current (on the Tokio
    /// runtime this is called from).
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let issuer = self.issuer.ok_or(BuildError::MissingIssuer)?;
        if self.audiences.is_empty() {
            return Err(BuildError::MissingAudience);
        }
        if self.algorithms.is_empty() || self.dpop.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        let http = match self.http {
            Some(client) => client,
            None => fetch::client().map_err(|e| BuildError::HttpClient(e.to_string()))?,
        };
        let base = issuer.trim_end_matches('/');
        let (jwks_url, feed_url) = match self.jwks_url {
            Some(jwks_url) => (jwks_url, format!("{base}/v1/revocations")),
            None => {
                let metadata = discover(&http, &issuer).await?;
                (metadata.jwks_uri, metadata.revocation_feed_endpoint.unwrap_or_else(|| format!("{base}/v1/revocations")))
            }
        };
        let policy = Arc::new(Policy {
            issuer,
            audiences: self.audiences,
            leeway_seconds: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            algorithms: self.algorithms,
        });
        let (jwks, refresh_in) = JwksCache::load(jwks_url, http.clone(), self.refetch_cooldown).await.map_err(BuildError::Jwks)?;
        let jwks = Arc::new(jwks);
        // Dropped with the last clone of the verifier, which ends the tasks.
        let (stop, stopped) = watch::channel(());
        let revocations = if self.revocation_feed {
            let mirror = Arc::new(RevocationMirror::default());
            let mut feed = RevocationFeed::new(
                http,
                feed_url,
                policy.clone(),
                jwks.clone(),
                mirror.clone(),
                self.feed_credentials,
                self.feed_page_size,
            );
            let stream = feed.sync().await.map_err(BuildError::RevocationFeed)?;
            spawn_until(stopped.clone(), feed.follow(stream));
            Some(mirror)
        } else {
            None
        };
        spawn_until(stopped, jwks.clone().refresh_forever(refresh_in));
        let dpop = DpopPolicy {
            algorithms: self.dpop.algorithms,
            max_age: i64::try_from(self.dpop.max_age.as_secs()).unwrap_or(i64::MAX),
            leeway: policy.leeway_seconds,
            nonces: self.dpop.nonces,
            replay: ReplayCache::new(self.dpop.replay_capacity),
        };
        let verified = VerifiedTokens::new(self.verified_cache);
        Ok(Verifier { inner: Arc::new(Inner { policy, dpop, jwks, revocations, verified, _stop: stop }) })
    }
}

async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata, BuildError> {
    let url = format!("{}/.well-known/oauth-authorization-server", issuer.trim_end_matches('/'));
    let response = fetch::send(http.get(&url).timeout(REQUEST_TIMEOUT).header("accept", "application/json"), &url)
        .await
        .map_err(BuildError::Discovery)?;
    let body = fetch::body(response, &url).await.map_err(BuildError::Discovery)?;
    let metadata: Metadata = serde_json::from_slice(&body)
        .map_err(|e| BuildError::Discovery(FetchError::document(&url, format!("not RFC 8414 metadata with issuer and jwks_uri: {e}"))))?;
    if metadata.issuer != issuer {
        return Err(BuildError::IssuerMismatch { url, found: metadata.issuer, expected: issuer.to_string() });
    }
    Ok(metadata)
}

/// Run `task` until the sender of `stop` is dropped.
fn spawn_until(mut stop: watch::Receiver<()>, task: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.changed() => {}
            () = task => {}
        }
    });
}
