//! Who may change the key directory, as sshd's `StrictModes` asks of
//! `~/.ssh`: only the user tessera runs as (or root). A directory or file
//! that is group- or world-writable, or that another user owns, is refused
//! with the path and the fix — whoever can write there can add a key with
//! a newer activation instant, and tessera would sign with it.

use super::KeyDirectoryError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuse `path` (a key directory or a file in it) if another user could
/// change it.
pub(super) fn check(path: &Path) -> Result<(), KeyDirectoryError> {
    let metadata = std::fs::metadata(path).map_err(|error| KeyDirectoryError::Io { path: path.to_path_buf(), error })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() };
    judge(metadata.mode(), metadata.uid(), user, &path.display().to_string()).map_err(|_| {
        // Name the path so the fix can be pasted from any directory.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let reason = judge(metadata.mode(), metadata.uid(), user, &path.display().to_string()).unwrap_err();
        KeyDirectoryError::Unsafe { path, reason }
    })
}

/// The pure rule: `mode` and `owner` of a path, `user` the effective uid.
fn judge(mode: u32, owner: u32, user: u32, shown: &str) -> Result<(), String> {
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 { "every user" } else { "its group" };
        return Err(format!(
            "can be changed by {who} (mode {:04o}), and whoever can write to the key directory can plant a signing key: run `chmod go-w {shown}`",
            mode & 0o7777
        ));
    }
    if owner != user && owner != 0 {
        return Err(format!(
            "is owned by uid {owner}, not by the user tessera runs as (uid {user}) or root, so that user can plant a signing key: \
             run `chown {user} {shown}`, or run tessera as uid {owner}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_service_user_or_root_may_change_keys() {
        assert!(judge(0o40700, 1000, 1000, "k").is_ok());
        assert!(judge(0o100600, 0, 1000, "k").is_ok(), "root-owned, like sshd");
        assert!(judge(0o40755, 1000, 1000, "k").is_ok(), "readable is the private-key check's business");
        let group = judge(0o40770, 1000, 1000, "/srv/keys").unwrap_err();
        assert!(group.contains("its group") && group.contains("chmod go-w /srv/keys") && group.contains("0770"), "{group}");
        let world = judge(0o41777, 1000, 1000, "/srv/keys").unwrap_err();
        assert!(world.contains("every user"), "{world}");
        let other = judge(0o100600, 1001, 1000, "/srv/keys/a.pem").unwrap_err();
        assert!(other.contains("uid 1001") && other.contains("chown 1000 /srv/keys/a.pem"), "{other}");
    }

    #[test]
    fn a_world_writable_key_directory_is_refused_with_the_path_and_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = super::super::KeyDirectory::new(dir.path().join("keys"));
        let lifetimes =
            crate::keys::TokenLifetimes { access: std::time::Duration::from_secs(600), refresh: std::time::Duration::from_secs(86_400) };
        keys.ensure_keys(crate::keys::SigningAlgorithm::ES256, lifetimes, chrono::Utc::now()).unwrap();
        assert!(keys.load().is_ok());
        std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = keys.load().unwrap_err().to_string();
        assert!(error.contains(&keys.path().display().to_string()) && error.contains("chmod go-w"), "{error}");
        std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let metadata = std::fs::read_dir(keys.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap();
        std::fs::set_permissions(&metadata, std::fs::Permissions::from_mode(0o662)).unwrap();
        let error = keys.load().unwrap_err().to_string();
        assert!(error.contains(&metadata.display().to_string()), "a planted or writable metadata file is refused too: {error}");
    }
}
