//! Automatic rotation: when to make the next key, and making sure that
//! replicas sharing a key directory make exactly one key per rotation slot.
//!
//! The next key is due `rotate_every` after the active key activated. It is
//! generated `lead` earlier (twice the JWKS max-age, see
//! [`crate::config::KeyPolicy::publication_lead`]) so that it is published
//! before it signs. Every replica computes the same slot from the same
//! files; the one that creates the slot's claim file (`O_EXCL`) generates
//! the key, the others see it at their next reload.

use super::directory::KeyDirectory;
use super::schedule::{self, KeyMeta, KeyState, KeyUse, TokenLifetimes};
use super::{KeyDirectoryError, SigningAlgorithm};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A rotation that is due: the slot (its nominal activation) and when the
/// new key activates (later than the slot if rotation is running late, so
/// the key is still published `lead` before it signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub slot: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
}

/// Whether a key of `key_use` should be generated now.
pub fn due(
    metas: &[KeyMeta],
    key_use: KeyUse,
    every: Duration,
    lead: Duration,
    lifetimes: TokenLifetimes,
    now: DateTime<Utc>,
) -> Option<Due> {
    let rows: Vec<_> = schedule::timeline(metas, lifetimes, now).into_iter().filter(|r| r.meta.key_use == key_use).collect();
    if rows.iter().any(|r| r.state == KeyState::Pending) {
        return None; // the successor is already scheduled
    }
    let active = rows.iter().find(|r| r.state == KeyState::Active)?;
    let every = chrono::Duration::from_std(every).ok()?;
    let lead = chrono::Duration::from_std(lead).ok()?;
    let slot = active.meta.activates_at.checked_add_signed(every)?;
    (now + lead >= slot).then(|| Due { slot, activates_at: slot.max(now + lead) })
}

impl KeyDirectory {
    /// Generate the key for a due slot unless another replica claimed it.
    /// Returns the new key, or `None` when the slot was already taken.
    pub fn rotate(
        &self,
        key_use: KeyUse,
        alg: SigningAlgorithm,
        due: Due,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyMeta>, KeyDirectoryError> {
        let claim =
            self.path().join(format!(".rotation-{}-{}", if key_use == KeyUse::Signing { "signing" } else { "mac" }, due.slot.timestamp()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(error) => return Err(KeyDirectoryError::Io { path: claim, error }),
        }
        let meta = match key_use {
            KeyUse::Signing => self.generate_signing(alg, now, due.activates_at)?,
            KeyUse::RefreshMac => self.generate_mac(now, due.activates_at)?,
        };
        self.forget_old_claims(due.slot);
        Ok(Some(meta))
    }

    /// Claim files of slots before `slot` are no longer needed.
    fn forget_old_claims(&self, slot: DateTime<Utc>) {
        let Ok(entries) = std::fs::read_dir(self.path()) else { return };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".rotation-") else { continue };
            let stamp = rest.rsplit('-').next().and_then(|s| s.parse::<i64>().ok());
            if stamp.is_some_and(|s| s < slot.timestamp()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIMES: TokenLifetimes = TokenLifetimes { access: Duration::from_secs(60), refresh: Duration::from_secs(600) };
    const EVERY: Duration = Duration::from_secs(100);
    const LEAD: Duration = Duration::from_secs(20);

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn the_next_key_is_due_lead_before_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let metas = keys.metadata().unwrap();
        assert_eq!(due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(79)), None);
        assert_eq!(due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(80)), Some(Due { slot: at(100), activates_at: at(100) }));
        // Running late, the key still gets its full publication lead.
        assert_eq!(due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(150)), Some(Due { slot: at(100), activates_at: at(170) }));
    }

    #[test]
    fn replicas_make_one_key_per_slot_and_then_wait_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDirectory::new(dir.path());
        keys.generate_signing(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let metas = keys.metadata().unwrap();
        let slot = due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(80)).unwrap();
        // Eight replicas race for the same slot.
        let made: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..8).map(|_| scope.spawn(|| keys.rotate(KeyUse::Signing, SigningAlgorithm::ES256, slot, at(80)).unwrap())).collect();
            handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.len(), 1, "exactly one key for the slot");
        let metas = keys.metadata().unwrap();
        assert_eq!(metas.len(), 2);
        assert_eq!(due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(90)), None, "the successor is pending");
        assert_eq!(due(&metas, KeyUse::Signing, EVERY, LEAD, LIFETIMES, at(180)), Some(Due { slot: at(200), activates_at: at(200) }));
    }
}
