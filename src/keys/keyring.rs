//! The live keyring: what the server signs with and publishes right now.
//!
//! A [`KeyView`] is an immutable snapshot of the loaded directory with the
//! JWKS already rendered to bytes; request handlers take an `Arc` of it and
//! never touch the disk or re-parse a key. A background task swaps in a new
//! view when the directory changes (new, retired or pruned keys appear
//! without a restart) or when the clock moves a key in or out of the JWKS.

use super::directory::{KeyDirectory, KeyDirectoryError, LoadedKey, Material};
use super::material::{MacKey, SigningKey};
use super::schedule::{self, KeyMeta, KeyState, TokenLifetimes};
use crate::clock::SharedClock;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use std::sync::{Arc, RwLock};

/// A key with its retirement instant worked out once, at load.
#[derive(Debug)]
struct Scheduled<T> {
    meta: KeyMeta,
    retirement: Option<DateTime<Utc>>,
    key: T,
}

impl<T> Scheduled<T> {
    fn state(&self, lifetimes: TokenLifetimes, now: DateTime<Utc>) -> KeyState {
        schedule::state(&self.meta, self.retirement, lifetimes.for_use(self.meta.key_use), now)
    }
}

/// The rendered JWKS document.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub body: bytes::Bytes,
    /// A strong validator for `ETag` / `If-None-Match`.
    pub etag: String,
    kids: Vec<String>,
}

/// An immutable snapshot of the key directory.
#[derive(Debug)]
pub struct KeyView {
    signing: Vec<Scheduled<Arc<SigningKey>>>,
    mac: Vec<Scheduled<Arc<MacKey>>>,
    lifetimes: TokenLifetimes,
    jwks: Jwks,
    fingerprint: u64,
}

impl KeyView {
    fn build(loaded: Vec<LoadedKey>, lifetimes: TokenLifetimes, fingerprint: u64, now: DateTime<Utc>) -> Self {
        let metas: Vec<KeyMeta> = loaded.iter().map(|k| k.meta.clone()).collect();
        let mut signing = Vec::new();
        let mut mac = Vec::new();
        for LoadedKey { meta, material } in loaded {
            let retirement = schedule::retirement(&meta, &metas);
            match material {
                Material::Signing(key) => signing.push(Scheduled { meta, retirement, key }),
                Material::Mac(key) => mac.push(Scheduled { meta, retirement, key }),
            }
        }
        // Newest first, so the JWKS lists the signing key before older ones.
        signing.sort_by(|a, b| b.meta.activates_at.cmp(&a.meta.activates_at).then(b.meta.kid.cmp(&a.meta.kid)));
        mac.sort_by(|a, b| b.meta.activates_at.cmp(&a.meta.activates_at).then(b.meta.kid.cmp(&a.meta.kid)));
        let jwks = render_jwks(&signing, lifetimes, now);
        Self { signing, mac, lifetimes, jwks, fingerprint }
    }

    /// The key that signs access tokens at `now`.
    pub fn active_signer(&self, now: DateTime<Utc>) -> Option<&Arc<SigningKey>> {
        self.signing.iter().find(|k| k.state(self.lifetimes, now) == KeyState::Active).map(|k| &k.key)
    }

    /// When the active signing key stops signing: the activation of the
    /// pending key that replaces it, else (with `rotate_every`) when its
    /// rotation is due — in the past when rotation is overdue. `None`: no
    /// active key, or manual rotation with no successor published.
    pub fn signer_ends_at(&self, now: DateTime<Utc>, rotate_every: Option<std::time::Duration>) -> Option<DateTime<Utc>> {
        let active = self.signing.iter().find(|k| k.state(self.lifetimes, now) == KeyState::Active)?;
        let successor =
            self.signing.iter().filter(|k| k.state(self.lifetimes, now) == KeyState::Pending).map(|k| k.meta.activates_at).min();
        successor.or_else(|| Some(active.meta.activates_at + chrono::Duration::from_std(rotate_every?).ok()?))
    }

    /// The key that MACs new refresh tokens at `now`.
    pub fn active_mac(&self, now: DateTime<Utc>) -> Option<&Arc<MacKey>> {
        self.mac.iter().find(|k| k.state(self.lifetimes, now) == KeyState::Active).map(|k| &k.key)
    }

    /// A MAC key that may still check refresh tokens: active or retired.
    pub fn mac_for_check(&self, kid: &str, now: DateTime<Utc>) -> Option<&Arc<MacKey>> {
        self.mac
            .iter()
            .find(|k| k.meta.kid == kid)
            .filter(|k| matches!(k.state(self.lifetimes, now), KeyState::Active | KeyState::Retired))
            .map(|k| &k.key)
    }

    /// A signing key by kid with its state at `now` (for `token inspect`).
    pub fn signing_key(&self, kid: &str, now: DateTime<Utc>) -> Option<(&Arc<SigningKey>, KeyState)> {
        self.signing.iter().find(|k| k.meta.kid == kid).map(|k| (&k.key, k.state(self.lifetimes, now)))
    }

    /// Signing keys withdrawn with `keys revoke`, with when they were.
    pub fn revoked_signing_keys(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> {
        self.signing.iter().filter_map(|k| k.meta.revoked_at.map(|at| (k.meta.kid.as_str(), at)))
    }

    /// The JWKS as rendered for the published keys.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    fn published_kids(&self, now: DateTime<Utc>) -> Vec<String> {
        published(&self.signing, self.lifetimes, now).map(|k| k.meta.kid.clone()).collect()
    }
}

fn published(
    keys: &[Scheduled<Arc<SigningKey>>],
    lifetimes: TokenLifetimes,
    now: DateTime<Utc>,
) -> impl Iterator<Item = &Scheduled<Arc<SigningKey>>> {
    keys.iter().filter(move |k| k.state(lifetimes, now).is_published())
}

fn render_jwks(keys: &[Scheduled<Arc<SigningKey>>], lifetimes: TokenLifetimes, now: DateTime<Utc>) -> Jwks {
    let members: Vec<String> = published(keys, lifetimes, now).map(|k| k.key.public_jwk_json()).collect();
    let kids = published(keys, lifetimes, now).map(|k| k.meta.kid.clone()).collect();
    let body = format!("{{\"keys\":[{}]}}", members.join(","));
    let hash = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
    Jwks { body: bytes::Bytes::from(body), etag, kids }
}

/// The keyring shared by the server: the directory, the current view, and
/// the clock that decides states.
pub struct Keyring {
    directory: KeyDirectory,
    lifetimes: TokenLifetimes,
    clock: SharedClock,
    current: RwLock<Arc<KeyView>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("directory", &self.directory).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Load the directory. Fails if a key cannot be read or is too open.
    pub fn open(directory: KeyDirectory, lifetimes: TokenLifetimes, clock: SharedClock) -> Result<Self, KeyDirectoryError> {
        let fingerprint = directory.fingerprint();
        let view = KeyView::build(directory.load()?, lifetimes, fingerprint, clock.now());
        Ok(Self { directory, lifetimes, clock, current: RwLock::new(Arc::new(view)) })
    }

    /// The current snapshot.
    pub fn view(&self) -> Arc<KeyView> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn directory(&self) -> &KeyDirectory {
        &self.directory
    }

    /// Bring the view up to date: reload when the directory changed,
    /// re-render the JWKS when the published set moved with the clock.
    /// Returns whether a new view was installed. On a load error the old
    /// view stays in service.
    pub fn refresh(&self) -> Result<bool, KeyDirectoryError> {
        let current = self.view();
        let now = self.clock.now();
        let fingerprint = self.directory.fingerprint();
        let directory_changed = fingerprint != current.fingerprint;
        if !directory_changed && current.published_kids(now) == current.jwks.kids {
            return Ok(false);
        }
        let view = KeyView::build(self.directory.load()?, self.lifetimes, fingerprint, now);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        Ok(true)
    }

    /// Refresh every `interval`, until the app stops this task.
    pub async fn reload_every(self: Arc<Self>, interval: std::time::Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let keyring = self.clone();
            match tokio::task::spawn_blocking(move || keyring.refresh()).await {
                Ok(Ok(true)) => {
                    tracing::info!(dir = %self.directory.path().display(), "key directory reloaded")
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "key directory reload failed; still serving the previous keys")
                }
                Err(error) => tracing::error!(%error, "key directory reload task failed"),
            }
        }
    }

    pub fn key_uses_present(&self) -> (bool, bool) {
        let view = self.view();
        let now = self.clock.now();
        (view.active_signer(now).is_some(), view.active_mac(now).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::SigningAlgorithm;
    use std::time::Duration;

    const LIFETIMES: TokenLifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(86_400) };

    #[test]
    fn jwks_follows_the_clock_and_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        let directory = KeyDirectory::new(dir.path());
        let first = directory.generate_signing(SigningAlgorithm::ES256, clock.now(), clock.now()).unwrap();
        let keyring = Keyring::open(directory.clone(), LIFETIMES, clock.clone()).unwrap();
        assert_eq!(keyring.view().active_signer(clock.now()).unwrap().kid, first.kid);

        // A pending key appears in the JWKS after a reload, before it signs.
        let later = clock.now() + chrono::Duration::seconds(600);
        let second = directory.generate_signing(SigningAlgorithm::EdDSA, clock.now(), later).unwrap();
        assert!(keyring.refresh().unwrap());
        let view = keyring.view();
        let body = std::str::from_utf8(&view.jwks().body).unwrap().to_string();
        assert!(body.contains(&first.kid) && body.contains(&second.kid), "{body}");
        assert_eq!(view.active_signer(clock.now()).unwrap().kid, first.kid);

        // At activation the new key signs; the old one stays published.
        clock.advance(Duration::from_secs(600));
        assert_eq!(keyring.view().active_signer(clock.now()).unwrap().kid, second.kid);
        assert!(!keyring.refresh().unwrap(), "published set unchanged");

        // One access-token lifetime later the old key leaves the JWKS.
        let etag_before = keyring.view().jwks().etag.clone();
        clock.advance(Duration::from_secs(600));
        assert!(keyring.refresh().unwrap());
        let body = String::from_utf8(keyring.view().jwks().body.to_vec()).unwrap();
        assert!(!body.contains(&first.kid), "{body}");
        assert_ne!(keyring.view().jwks().etag, etag_before);
    }
}
