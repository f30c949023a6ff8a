//! A real key directory (one signing key, one refresh MAC key), made once
//! per fuzzing process, for the targets that open tokens.

use std::sync::{Arc, OnceLock};
use tessera::clock::{Clock, SystemClock};
use tessera::keys::{KeyDirectory, KeyView, Keyring, SigningAlgorithm};

pub struct Keys {
    pub view: Arc<KeyView>,
    _dir: tempfile::TempDir,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let lifetimes = tessera::keys::TokenLifetimes {
            access: std::time::Duration::from_secs(600),
            refresh: std::time::Duration::from_secs(86_400),
        };
        let directory = KeyDirectory::new(dir.path().join("keys"));
        directory.ensure_keys(SigningAlgorithm::ES256, lifetimes, SystemClock.now()).expect("keys");
        let keyring = Keyring::open(directory, lifetimes, Arc::new(SystemClock)).expect("keyring");
        Keys { view: keyring.view(), _dir: dir }
    })
}
