//! Session ids that tessera can recognise as its own.
//!
//! ```text
//! sid = base64url( 16 random bytes ‖ session end (u64, big-endian Unix seconds) ‖ HMAC-SHA256(key, "tessera-sid-v1" ‖ the 24 bytes before)[..8] )
//! ```
//!
//! 43 characters. The random part makes a sid unguessable; the tag lets
//! `DELETE /v1/sessions/{sid}` answer 404 for an id tessera never issued
//! (and store nothing); the session end inside lets a logout entry expire
//! with the session it ends rather than after `session_max_age`.
//!
//! Why a key of its own rather than the refresh MAC key: a MAC key is kept
//! only until the last refresh token it sealed has expired (the refresh
//! idle lifetime after its retirement), but a session — and so its sid —
//! lives up to `session_max_age` and outlives many MAC rotations. The sid
//! key lives as long as the key directory: `session-id.secret`, 32 random
//! bytes, mode 0600, created on first start like the MAC key and shared by
//! every replica that shares the directory. It never signs a token; who
//! steals it can only make ids that pass this check — which lets a client
//! that already holds `revoke_sessions` add entries the per-client quota
//! still bounds. Deleting it makes every live session's id unrecognised
//! (their logout answers 404; revoking their refresh token still works).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file in the key directory that holds the sid key.
pub const FILE_NAME: &str = "session-id.secret";
/// Length of a sid in characters.
pub const SID_LENGTH: usize = 43;
const RANDOM_BYTES: usize = 16;
const TAG_BYTES: usize = 8;
const DOMAIN: &[u8] = b"tessera-sid-v1";

/// Why the sid key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum SessionIdKeyError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} can be read by other users (mode {mode:04o}); it must be mode 0600: run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "{path} does not hold 32 or more bytes of base64url; delete it to have a new one made (live sessions' ids will no longer be recognised)"
    )]
    Malformed { path: PathBuf },
}

/// The key that tags session ids.
pub struct SessionIdKey(hmac::Key);

impl std::fmt::Debug for SessionIdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionIdKey(..)")
    }
}

impl SessionIdKey {
    /// A key from raw secret bytes (tests).
    pub fn from_secret(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Load `dir/session-id.secret`, creating it first if it does not
    /// exist. Creation is atomic and first-writer-wins (a complete file is
    /// hard-linked into place), so replicas starting together on a shared
    /// directory end up with one key.
    pub fn open_or_create(dir: &Path) -> Result<Self, SessionIdKeyError> {
        let path = dir.join(FILE_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| SessionIdKeyError::Io { path, error }
        };
        if !path.exists() {
            let mut secret = [0u8; 32];
            SystemRandom::new().fill(&mut secret).expect("system randomness");
            let mut nonce = [0u8; 8];
            SystemRandom::new().fill(&mut nonce).expect("system randomness");
            let temporary = dir.join(format!(".{FILE_NAME}.{}", URL_SAFE_NO_PAD.encode(nonce)));
            let written = (|| {
                let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
                file.write_all(URL_SAFE_NO_PAD.encode(secret).as_bytes())?;
                file.sync_all()?;
                match std::fs::hard_link(&temporary, &path) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                    other => other,
                }
            })();
            let _ = std::fs::remove_file(&temporary);
            written.map_err(io(&path))?;
            if let Ok(directory) = std::fs::File::open(dir) {
                let _ = directory.sync_all();
            }
        }
        let metadata = std::fs::metadata(&path).map_err(io(&path))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SessionIdKeyError::TooOpen { path, mode });
        }
        let content = std::fs::read_to_string(&path).map_err(io(&path))?;
        match URL_SAFE_NO_PAD.decode(content.trim()) {
            Ok(secret) if secret.len() >= 32 => Ok(Self::from_secret(&secret)),
            _ => Err(SessionIdKeyError::Malformed { path }),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_BYTES] {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(DOMAIN);
        context.update(body);
        let full = context.sign();
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(&full.as_ref()[..TAG_BYTES]);
        out
    }

    /// A new sid for a session that ends at `session_end` (Unix seconds).
    pub fn mint(&self, session_end: i64) -> String {
        let mut bytes = [0u8; RANDOM_BYTES + 8 + TAG_BYTES];
        crate::tokens::fill_random(&mut bytes[..RANDOM_BYTES]);
        bytes[RANDOM_BYTES..RANDOM_BYTES + 8].copy_from_slice(&(session_end.max(0) as u64).to_be_bytes());
        let tag = self.tag(&bytes[..RANDOM_BYTES + 8]);
        bytes[RANDOM_BYTES + 8..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The session end a sid carries, if tessera issued it; `None` for
    /// anything else (wrong shape, wrong tag). The tag is compared in
    /// constant time.
    pub fn verify(&self, sid: &str) -> Option<i64> {
        if sid.len() != SID_LENGTH {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sid).ok()?;
        let (body, tag) = bytes.split_at(RANDOM_BYTES + 8);
        if !crate::clients::constant_time_eq(&self.tag(body), tag) {
            return None;
        }
        let end = u64::from_be_bytes(body[RANDOM_BYTES..].try_into().ok()?);
        i64::try_from(end).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_sid_verifies_and_carries_the_session_end() {
        let key = SessionIdKey::from_secret(&[7; 32]);
        let sid = key.mint(1_900_000_000);
        assert_eq!(sid.len(), SID_LENGTH);
        assert!(sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{sid}");
        assert_eq!(key.verify(&sid), Some(1_900_000_000));
        assert_ne!(key.mint(1_900_000_000), sid, "ids are random");
    }

    #[test]
    fn ids_tessera_did_not_issue_are_refused() {
        let key = SessionIdKey::from_secret(&[7; 32]);
        let other = SessionIdKey::from_secret(&[8; 32]);
        let sid = key.mint(1_900_000_000);
        assert_eq!(other.verify(&sid), None, "another key");
        // Another session end with the old tag: the end cannot be extended.
        let mut bytes = URL_SAFE_NO_PAD.decode(&sid).unwrap();
        bytes[RANDOM_BYTES + 7] ^= 1;
        assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&bytes)), None);
        for foreign in ["", "abc", "AAAAAAAAAAAAAAAAAAAAAA", &"A".repeat(43), &format!("{sid}A"), &sid[..42], &sid.replace(|_| true, "!")] {
            assert_eq!(key.verify(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn the_key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionIdKey::open_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sid = first.mint(2_000_000_000);
        let again = SessionIdKey::open_or_create(dir.path()).unwrap();
        assert_eq!(again.verify(&sid), Some(2_000_000_000), "the same key after a restart");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [std::ffi::OsString::from(FILE_NAME)]);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = SessionIdKey::open_or_create(dir.path()).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(SessionIdKey::open_or_create(dir.path()), Err(SessionIdKeyError::Malformed { .. })));
    }
}
