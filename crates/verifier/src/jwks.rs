//! The JWKS cache: the issuer's keys, parsed, kept current in the
//! background, and refetched — rarely — when a token names a key not seen
//! yet.
//!
//! How it stays current and polite:
//! - It honours `Cache-Control: max-age` and refreshes at 80% of it
//!   (between 1 s and 1 h), revalidating with `If-None-Match`, so an
//!   unchanged set costs the issuer a 304. tessera publishes a new key
//!   longer than max-age before signing with it, so a cache that follows
//!   these rules never meets an unknown kid in normal rotation.
//! - An unknown kid triggers at most one fetch per cooldown (default 30 s),
//!   counted from the last fetch of any kind: tokens with random kids cannot
//!   turn the verifier into a JWKS flooder. All fetches are serialised, so a
//!   burst of cold verifications shares one request.
//! - A failed fetch keeps the last good set (retrying with backoff); only a
//!   successful fetch replaces it, so a key removed from the JWKS stops
//!   verifying at the next refresh, and a brief outage changes nothing.
//!
//! Readers take an `Arc` of the current set under a read lock held for a
//! pointer copy, so verification never waits on a fetch.

use super::fetch::{self, FetchError, REQUEST_TIMEOUT};
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tessera_jose::{KeySet, SkippedKey};
use tokio::time::Instant;

/// Refresh bounds: never busier than this…
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// …never staler than this.
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// Assumed when the response says nothing.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Retry delays after a failed refresh.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

struct Validators {
    etag: Option<String>,
    last_fetch: Instant,
}

pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Held for the length of every fetch.
    fetching: tokio::sync::Mutex<Validators>,
    refetch_cooldown: Duration,
}

impl JwksCache {
    /// Fetch the set once; a verifier without keys is not built. Returns the
    /// cache and when to refresh it.
    pub async fn load(url: String, http: reqwest::Client, refetch_cooldown: Duration) -> Result<(Self, Duration), FetchError> {
        let cache = Self {
            url,
            http,
            keys: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(Validators { etag: None, last_fetch: Instant::now() }),
            refetch_cooldown,
        };
        let refresh_in = cache.fetch(&mut *cache.fetching.lock().await).await?;
        Ok((cache, refresh_in))
    }

    /// The current set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A token names `kid`, which the set lacks: refetch if the cooldown
    /// allows. Whether the set now has it.
    pub async fn refetch_for(&self, kid: &str) -> bool {
        let mut validators = self.fetching.lock().await;
        // Whoever held the lock may have just fetched it.
        if self.keys().contains(kid) {
            return true;
        }
        if validators.last_fetch.elapsed() < self.refetch_cooldown {
            return false;
        }
        if let Err(error) = self.fetch(&mut validators).await {
            tracing::warn!(%error, kid, "JWKS refetch for an unknown kid failed; keeping the last good set");
        }
        self.keys().contains(kid)
    }

    /// Keep the set current until the task is dropped.
    pub async fn refresh_forever(self: Arc<Self>, mut refresh_in: Duration) {
        let mut retry = RETRY_MIN;
        loop {
            tokio::time::sleep(refresh_in).await;
            let outcome = self.fetch(&mut *self.fetching.lock().await).await;
            refresh_in = match outcome {
                Ok(next) => {
                    retry = RETRY_MIN;
                    next
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?retry, "JWKS refresh failed; keeping the last good set");
                    let wait = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
        }
    }

    /// One conditional GET; replaces the set on 200, keeps it on 304.
    /// Returns when to refresh next.
    async fn fetch(&self, validators: &mut Validators) -> Result<Duration, FetchError> {
        validators.last_fetch = Instant::now();
        let mut request = self.http.get(&self.url).timeout(REQUEST_TIMEOUT).header("accept", "application/jwk-set+json, application/json");
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = fetch::send(request, &self.url).await?;
        let headers = response.headers();
        let refresh_in = refresh_delay(headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()));
        let etag = headers.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        if response.status() == reqwest::StatusCode::NOT_MODIFIED && validators.etag.is_some() {
            tracing::debug!(url = self.url, "JWKS unchanged (304)");
            return Ok(refresh_in);
        }
        let body = fetch::body(response, &self.url).await?;
        let keys = KeySet::from_jwks(&body).map_err(|error| FetchError::document(&self.url, error.to_string()))?;
        for skipped in keys.skipped() {
            match skipped {
                SkippedKey::Duplicate { index, kid } => tracing::warn!(kid, index, "JWKS names this kid twice; the first key is used"),
                SkippedKey::Unusable { index, reason } => tracing::warn!(index, reason, "skipping a JWKS key this verifier cannot use"),
                other => tracing::warn!(?other, "skipping a JWKS key"),
            }
        }
        tracing::debug!(url = self.url, keys = keys.len(), "JWKS loaded");
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        validators.etag = etag;
        Ok(refresh_in)
    }
}

/// 80% of the response's max-age, within [`MIN_REFRESH`, `MAX_REFRESH`].
fn refresh_delay(cache_control: Option<&str>) -> Duration {
    (max_age(cache_control).unwrap_or(DEFAULT_MAX_AGE).mul_f64(0.8)).clamp(MIN_REFRESH, MAX_REFRESH)
}

/// `max-age` from a Cache-Control value; `no-cache`/`no-store` mean 0.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control?.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(Duration::ZERO),
            "max-age" => max_age = value.trim().trim_matches('"').parse().ok().map(Duration::from_secs),
            _ => {}
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reads_the_directive_among_others() {
        assert_eq!(max_age(Some("public, max-age=300")), Some(Duration::from_secs(300)));
        assert_eq!(max_age(Some("Max-Age=\"60\", must-revalidate")), Some(Duration::from_secs(60)));
        assert_eq!(max_age(Some("public, max-age=300, no-cache")), Some(Duration::ZERO));
        assert_eq!(max_age(Some("public")), None);
        assert_eq!(max_age(Some("max-age=soon")), None);
        assert_eq!(max_age(None), None);
    }

    #[test]
    fn refresh_comes_at_four_fifths_of_max_age_within_bounds() {
        assert_eq!(refresh_delay(Some("max-age=300")), Duration::from_secs(240));
        assert_eq!(refresh_delay(Some("max-age=0")), MIN_REFRESH);
        assert_eq!(refresh_delay(Some("max-age=86400")), MAX_REFRESH);
        assert_eq!(refresh_delay(None), DEFAULT_MAX_AGE.mul_f64(0.8));
    }
}
