//! Editing `tessera.toml` from the command line without losing what a
//! person wrote in it, and without ever leaving half a file.
//!
//! `toml_edit` keeps comments, order and layout; only the `[[clients]]`
//! table being changed is touched. A change is written to a temporary file
//! beside the original, checked by loading it exactly as the server would
//! (the same environment included), fsynced, renamed over the original
//! (atomic on POSIX) and the directory fsynced — so a crash leaves the old
//! file or the new one, and a change the server would refuse is never
//! written.

use crate::config::Config;
use anyhow::{Context, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use toml_edit::{ArrayOfTables, DocumentMut, Table};

/// A config file opened for editing.
pub(super) struct ConfigFile {
    path: PathBuf,
    document: DocumentMut,
}

impl ConfigFile {
    /// Open `path`; a file that does not exist yet is an empty document.
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let document = text.parse::<DocumentMut>().with_context(|| format!("{} is not valid TOML", path.display()))?;
        Ok(Self { path: path.to_path_buf(), document })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The `[[clients]]` tables (created when absent).
    pub(super) fn clients(&mut self) -> anyhow::Result<&mut ArrayOfTables> {
        let path = self.path.display().to_string();
        let item = self.document.entry("clients").or_insert(toml_edit::Item::ArrayOfTables(ArrayOfTables::new()));
        item.as_array_of_tables_mut()
            .with_context(|| format!("the clients in {path} are not written as [[clients]] tables; edit that file by hand"))
    }

    /// The index of the client `id` among the `[[clients]]` tables.
    pub(super) fn position(&mut self, id: &str) -> anyhow::Result<Option<usize>> {
        Ok(self.clients()?.iter().position(|table| table.get("id").and_then(|v| v.as_str()) == Some(id)))
    }

    /// The `[[clients]]` table of `id`, or an error saying where it is not.
    pub(super) fn client(&mut self, id: &str) -> anyhow::Result<&mut Table> {
        let path = self.path.display().to_string();
        let Some(index) = self.position(id)? else {
            bail!("no client {id:?} in {path} (a client set by TESSERA_CLIENTS cannot be edited here)");
        };
        Ok(self.clients()?.get_mut(index).expect("index from position"))
    }

    /// Check the edited document as the server would load it, then replace
    /// the file atomically.
    pub(super) fn save(&self, env: &[(String, String)]) -> anyhow::Result<()> {
        let dir = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "tessera.toml".into());
        let mode = std::fs::metadata(&self.path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| -> anyhow::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&temporary)
                .with_context(|| format!("creating {}", temporary.display()))?;
            file.write_all(self.document.to_string().as_bytes())?;
            file.sync_all()?;
            // The server must accept the result before it replaces anything.
            Config::read(Some(&temporary), env).map_err(|error| {
                anyhow::anyhow!("{}", error.to_string().replace(&temporary.display().to_string(), &self.path.display().to_string()))
            })?;
            std::fs::rename(&temporary, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_keeps_comments_and_a_refused_edit_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        let original = "# the login backend\n[[clients]]\nid = \"web\" # the SPA\npublic = true\n";
        std::fs::write(&path, original).unwrap();
        let mut file = ConfigFile::open(&path).unwrap();
        file.client("web").unwrap().insert("scopes", toml_edit::value(toml_edit::Array::from_iter(["read"])));
        file.save(&[]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# the login backend\n") && text.contains("# the SPA") && text.contains("scopes = [\"read\"]"), "{text}");

        let mut file = ConfigFile::open(&path).unwrap();
        file.client("web").unwrap().insert("access_ttl", toml_edit::value("3 days"));
        let error = file.save(&[]).unwrap_err().to_string();
        assert!(error.contains("clients[0].access_ttl") && error.contains(&path.display().to_string()), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "unchanged");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
        assert!(ConfigFile::open(&path).unwrap().client("nobody").is_err());
    }
}
