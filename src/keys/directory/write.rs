//! Changing the key directory: generating keys, retiring, revoking and
//! pruning them. Every file is written atomically (temporary file, fsync,
//! rename, fsync of the directory).

use super::*;

impl KeyDirectory {
    pub(super) fn ensure_exists(&self) -> Result<(), KeyDirectoryError> {
        if !self.path.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.path).map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// Generate a signing key that starts signing at `activates_at`.
    pub fn generate_signing(
        &self,
        alg: SigningAlgorithm,
        now: DateTime<Utc>,
        activates_at: DateTime<Utc>,
    ) -> Result<KeyMeta, KeyDirectoryError> {
        self.ensure_exists()?;
        let der = SigningKey::generate(alg).map_err(|error| KeyDirectoryError::Material { path: self.path.clone(), error })?;
        let key = SigningKey::from_pkcs8(alg, &der).map_err(|error| KeyDirectoryError::Material { path: self.path.clone(), error })?;
        let meta = KeyMeta {
            kid: key.kid.clone(),
            alg: alg.as_str().into(),
            key_use: KeyUse::Signing,
            created: now,
            activates_at,
            retires_at: None,
            revoked_at: None,
        };
        write_atomic(&self.path.join(format!("{}.pem", meta.kid)), pem_encode(&der).as_bytes())?;
        self.write_meta(&meta)?;
        Ok(meta)
    }

    /// Generate a refresh-token MAC key that starts being used at `activates_at`.
    pub fn generate_mac(&self, now: DateTime<Utc>, activates_at: DateTime<Utc>) -> Result<KeyMeta, KeyDirectoryError> {
        self.ensure_exists()?;
        let (kid, content) = MacKey::generate();
        let meta = KeyMeta {
            kid: kid.clone(),
            alg: "HS256".into(),
            key_use: KeyUse::RefreshMac,
            created: now,
            activates_at,
            retires_at: None,
            revoked_at: None,
        };
        write_atomic(&self.path.join(format!("{kid}.secret")), format!("{content}\n").as_bytes())?;
        self.write_meta(&meta)?;
        Ok(meta)
    }

    fn write_meta(&self, meta: &KeyMeta) -> Result<(), KeyDirectoryError> {
        let json = serde_json::to_string_pretty(meta).expect("metadata serializes");
        write_atomic(&self.path.join(format!("{}.json", meta.kid)), format!("{json}\n").as_bytes())
    }

    /// First start: make sure there is a key of each use that is active now
    /// (or will be, pending). Returns what was created.
    pub fn ensure_keys(
        &self,
        alg: SigningAlgorithm,
        lifetimes: TokenLifetimes,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyMeta>, KeyDirectoryError> {
        let metas = self.metadata()?;
        let usable = |key_use: KeyUse| {
            metas.iter().filter(|m| m.key_use == key_use).any(|m| {
                matches!(
                    schedule::state(m, schedule::retirement(m, &metas), lifetimes.for_use(key_use), now),
                    KeyState::Active | KeyState::Pending
                )
            })
        };
        let mut created = Vec::new();
        if !usable(KeyUse::Signing) {
            created.push(self.generate_signing(alg, now, now)?);
        }
        if !usable(KeyUse::RefreshMac) {
            created.push(self.generate_mac(now, now)?);
        }
        Ok(created)
    }

    /// Retire a key at `now`. A pending key is withdrawn before it ever
    /// signs. The active key is never retired by hand: that would leave
    /// nothing to sign with until its successor activates. It is retired
    /// automatically the instant a newer key activates, so replacing it now
    /// is `keys generate --activate-in 0s`.
    pub fn retire(&self, kid: &str, lifetimes: TokenLifetimes, now: DateTime<Utc>) -> Result<KeyMeta, KeyDirectoryError> {
        let metas = self.metadata()?;
        let mut meta = metas.iter().find(|m| m.kid == kid).cloned().ok_or_else(|| KeyDirectoryError::UnknownKid(kid.into()))?;
        let state = schedule::state(&meta, schedule::retirement(&meta, &metas), lifetimes.for_use(meta.key_use), now);
        match state {
            KeyState::Pending => {}
            KeyState::Active => {
                let flag = if meta.key_use == KeyUse::RefreshMac { " --mac" } else { "" };
                return Err(KeyDirectoryError::Refused(format!(
                    "key {kid} is the active key; to replace it now run `tessera keys generate{flag} --activate-in 0s` (the old key is retired the moment the new one activates)"
                )));
            }
            KeyState::Retired | KeyState::Revoked | KeyState::Expired => {
                return Err(KeyDirectoryError::Refused(format!("key {kid} is already {}", state.as_str())));
            }
        }
        meta.retires_at = Some(now);
        self.write_meta(&meta)?;
        Ok(meta)
    }

    /// Emergency withdrawal: from now on the key is neither published nor
    /// trusted, and serving replicas announce it in the revocation feed. If
    /// it was the active key of its use, a successor is generated that
    /// activates at once (verifiers meet its kid early and refetch the JWKS).
    pub fn revoke(
        &self,
        kid: &str,
        alg: SigningAlgorithm,
        lifetimes: TokenLifetimes,
        now: DateTime<Utc>,
    ) -> Result<(KeyMeta, Option<KeyMeta>), KeyDirectoryError> {
        let metas = self.metadata()?;
        let mut meta = metas.iter().find(|m| m.kid == kid).cloned().ok_or_else(|| KeyDirectoryError::UnknownKid(kid.into()))?;
        let state = schedule::state(&meta, schedule::retirement(&meta, &metas), lifetimes.for_use(meta.key_use), now);
        if matches!(state, KeyState::Revoked | KeyState::Expired) {
            return Err(KeyDirectoryError::Refused(format!("key {kid} is already {}", state.as_str())));
        }
        let successor = match (state, meta.key_use) {
            (KeyState::Active, KeyUse::Signing) => Some(self.generate_signing(alg, now, now)?),
            (KeyState::Active, KeyUse::RefreshMac) => Some(self.generate_mac(now, now)?),
            _ => None,
        };
        meta.revoked_at = Some(now);
        self.write_meta(&meta)?;
        Ok((meta, successor))
    }

    /// Delete every expired key's files; returns their kids.
    pub fn prune(&self, lifetimes: TokenLifetimes, now: DateTime<Utc>) -> Result<Vec<String>, KeyDirectoryError> {
        let metas = self.metadata()?;
        let mut removed = Vec::new();
        for meta in &metas {
            let state = schedule::state(meta, schedule::retirement(meta, &metas), lifetimes.for_use(meta.key_use), now);
            if state != KeyState::Expired {
                continue;
            }
            let private = self.path.join(format!("{}.{}", meta.kid, if meta.key_use == KeyUse::Signing { "pem" } else { "secret" }));
            // Metadata first: a key without metadata is invisible, a key
            // without its private file would fail the next load.
            let json = self.path.join(format!("{}.json", meta.kid));
            std::fs::remove_file(&json).map_err(io(&json))?;
            match std::fs::remove_file(&private) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&private)(e)),
            }
            removed.push(meta.kid.clone());
        }
        sync_dir(&self.path)?;
        Ok(removed)
    }
}

pub(super) fn write_atomic(path: &Path, content: &[u8]) -> Result<(), KeyDirectoryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    file.write_all(content).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), KeyDirectoryError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
