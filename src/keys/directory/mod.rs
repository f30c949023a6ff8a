//! The key directory on disk: one private key file per key (`<kid>.pem`,
//! PKCS#8, mode 0600; `<kid>.secret` for the MAC key) beside its metadata
//! (`<kid>.json`).
//!
//! Writes are atomic (temporary file, fsync, rename, fsync of the directory)
//! so a replica reloading the directory never sees half a key. A private key
//! that other users can read is refused, naming the file and the fix. So is,
//! as sshd's `StrictModes` does, a directory or file that another user could
//! change — group- or world-writable, or owned by someone other than the
//! user tessera runs as (or root): whoever can write there can plant a key
//! that tessera would sign with.
//!
//! The directory also records which store it works with
//! ([`STORE_EPOCH_FILE`], see [`crate::store::epoch`]), so a lost or
//! replaced store is noticed at start.
//!
//! Reading lives here; creating, retiring, revoking and pruning keys in
//! [`write`]; the ownership and mode rules in `strict`.

mod strict;
mod write;

/// The file in the key directory that names the store's epoch.
pub const STORE_EPOCH_FILE: &str = "store-epoch.json";

use super::SigningAlgorithm;
use super::material::{KeyMaterialError, MacKey, SigningKey, pem_decode, pem_encode};
use super::schedule::{self, KeyMeta, KeyState, KeyUse, TokenLifetimes};
use chrono::{DateTime, Utc};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the key directory could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyDirectoryError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} can be read by other users (mode {mode:04o}); a private key must be mode 0600: run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadMetadata { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Material { path: PathBuf, error: KeyMaterialError },
    #[error("no key with kid {0:?} in the key directory")]
    UnknownKid(String),
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyDirectoryError + '_ {
    move |error| KeyDirectoryError::Io { path: path.to_path_buf(), error }
}

/// Parsed key material of either use.
#[derive(Debug, Clone)]
pub enum Material {
    Signing(Arc<SigningKey>),
    Mac(Arc<MacKey>),
}

/// One key as loaded from the directory.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    pub meta: KeyMeta,
    pub material: Material,
}

/// A key directory.
#[derive(Debug, Clone)]
pub struct KeyDirectory {
    path: PathBuf,
}

impl KeyDirectory {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read every key's metadata (without touching private keys).
    pub fn metadata(&self) -> Result<Vec<KeyMeta>, KeyDirectoryError> {
        let mut metas = Vec::new();
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(metas),
            Err(e) => return Err(io(&self.path)(e)),
        };
        strict::check(&self.path)?;
        for entry in entries {
            let path = entry.map_err(io(&self.path))?.path();
            if path.extension().is_none_or(|ext| ext != "json") || path.file_name().is_some_and(|n| n == STORE_EPOCH_FILE) {
                continue;
            }
            strict::check(&path)?;
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let meta: KeyMeta =
                serde_json::from_str(&text).map_err(|e| KeyDirectoryError::BadMetadata { path: path.clone(), reason: e.to_string() })?;
            if path.file_stem().and_then(|s| s.to_str()) != Some(meta.kid.as_str()) {
                return Err(KeyDirectoryError::BadMetadata {
                    path,
                    reason: format!("the file name does not match its kid {:?}", meta.kid),
                });
            }
            metas.push(meta);
        }
        metas.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
        Ok(metas)
    }

    /// Load every key, parsing the private material once. Keys that have
    /// expired are listed but their material is still parsed, so a clock
    /// moving backwards never leaves tessera without its keys.
    pub fn load(&self) -> Result<Vec<LoadedKey>, KeyDirectoryError> {
        self.metadata()?.into_iter().map(|meta| self.load_one(meta)).collect()
    }

    fn load_one(&self, meta: KeyMeta) -> Result<LoadedKey, KeyDirectoryError> {
        let material = match meta.key_use {
            KeyUse::Signing => {
                let path = self.path.join(format!("{}.pem", meta.kid));
                let pem = read_private(&path)?;
                let alg = SigningAlgorithm::parse(&meta.alg).ok_or_else(|| KeyDirectoryError::BadMetadata {
                    path: path.clone(),
                    reason: format!("unsupported alg {:?}; expected one of {}", meta.alg, SigningAlgorithm::NAMES.join(", ")),
                })?;
                let material = |error| KeyDirectoryError::Material { path: path.clone(), error };
                let der = pem_decode(&pem).map_err(material)?;
                let key = SigningKey::from_pkcs8(alg, &der).map_err(material)?;
                if key.kid != meta.kid {
                    return Err(KeyDirectoryError::BadMetadata {
                        path,
                        reason: format!("the key's RFC 7638 thumbprint is {}, not the recorded kid {}", key.kid, meta.kid),
                    });
                }
                Material::Signing(Arc::new(key))
            }
            KeyUse::RefreshMac => {
                let path = self.path.join(format!("{}.secret", meta.kid));
                let content = read_private(&path)?;
                let key = MacKey::from_file_content(&meta.kid, &content).map_err(|error| KeyDirectoryError::Material { path, error })?;
                Material::Mac(Arc::new(key))
            }
        };
        Ok(LoadedKey { meta, material })
    }

    /// What the directory records about its store, if anything.
    pub fn store_epoch(&self) -> Result<Option<String>, KeyDirectoryError> {
        let path = self.path.join(STORE_EPOCH_FILE);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
            Ok(_) => {
                strict::check(&self.path)?;
                strict::check(&path)?;
                std::fs::read_to_string(&path).map(Some).map_err(io(&path))
            }
        }
    }

    /// Record which store the directory works with (atomically, mode 0600).
    pub fn record_store_epoch(&self, content: &str) -> Result<(), KeyDirectoryError> {
        self.ensure_exists()?;
        write::write_atomic(&self.path.join(STORE_EPOCH_FILE), content.as_bytes())
    }

    /// A cheap summary of the directory (names, sizes, modification times):
    /// when it changes, the keyring reloads.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            let mut rows: Vec<_> = entries
                .filter_map(Result::ok)
                // Recording the store's epoch changes no key.
                .filter(|e| e.file_name() != STORE_EPOCH_FILE)
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((e.file_name(), meta.len(), meta.modified().ok(), meta.permissions().mode()))
                })
                .collect();
            rows.sort();
            rows.hash(&mut hasher);
        }
        hasher.finish()
    }
}

fn read_private(path: &Path) -> Result<String, KeyDirectoryError> {
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyDirectoryError::TooOpen { path: path.to_path_buf(), mode });
    }
    strict::check(path)?;
    std::fs::read_to_string(path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIFETIMES: TokenLifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(86_400) };

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn first_start_creates_one_key_of_each_use_then_reuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path().join("keys"));
        let created = keys.ensure_keys(SigningAlgorithm::ES256, LIFETIMES, at(0)).unwrap();
        assert_eq!(created.len(), 2);
        assert!(keys.ensure_keys(SigningAlgorithm::ES256, LIFETIMES, at(10)).unwrap().is_empty());
        let loaded = keys.load().unwrap();
        assert_eq!(loaded.len(), 2);
        let mode = std::fs::metadata(keys.path().join(format!("{}.pem", created[0].kid))).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_world_readable_private_key_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        let meta = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let pem = dir.path().join(format!("{}.pem", meta.kid));
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = keys.load().unwrap_err().to_string();
        assert!(err.contains(&pem.display().to_string()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn the_active_key_cannot_be_retired_by_hand_but_a_pending_one_can() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        let first = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let err = keys.retire(&first.kid, LIFETIMES, at(5)).unwrap_err().to_string();
        assert!(err.contains("--activate-in 0s"), "{err}");
        let pending = keys.generate_signing(SigningAlgorithm::EdDSA, at(5), at(1_000)).unwrap();
        let retired = keys.retire(&pending.kid, LIFETIMES, at(6)).unwrap();
        assert_eq!(retired.retires_at, Some(at(6)));
        // Withdrawn before it signed: the first key keeps signing past 1000.
        let rows = schedule::timeline(&keys.metadata().unwrap(), LIFETIMES, at(2_000));
        let first_row = rows.iter().find(|r| r.meta.kid == first.kid).unwrap();
        assert_eq!(first_row.state, KeyState::Active);
        assert!(matches!(keys.retire(&pending.kid, LIFETIMES, at(7)), Err(KeyDirectoryError::Refused(_))));
    }

    #[test]
    fn prune_removes_only_expired_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        let old = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let new = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(100)).unwrap();
        assert!(keys.prune(LIFETIMES, at(650)).unwrap().is_empty(), "old is retired, still published");
        assert_eq!(keys.prune(LIFETIMES, at(700)).unwrap(), vec![old.kid.clone()]);
        let left: Vec<_> = keys.metadata().unwrap().into_iter().map(|m| m.kid).collect();
        assert_eq!(left, vec![new.kid]);
        assert!(!dir.path().join(format!("{}.pem", old.kid)).exists());
    }

    #[test]
    fn a_tampered_kid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        let a = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let b = keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        std::fs::copy(dir.path().join(format!("{}.pem", b.kid)), dir.path().join(format!("{}.pem", a.kid))).unwrap();
        let err = keys.load().unwrap_err().to_string();
        assert!(err.contains("thumbprint"), "{err}");
    }
}
