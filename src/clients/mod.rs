//! OAuth clients: who they are, what they may do, and how they prove it.
//!
//! Clients come from configuration. A confidential client is stored as the
//! SHA-256 of its secret (never the secret), and authenticates with HTTP
//! Basic or `client_secret_post` (RFC 6749 §2.3.1); a public client names
//! itself with `client_id` and proves nothing. Secrets are compared in
//! constant time, and an unknown client costs the same work as a known one,
//! so timing says nothing about which ids exist.

mod credentials;

pub use credentials::{ClientAuthError, Credentials};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What a confidential client may do beyond `client_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `POST /v1/sessions`: create sessions for subjects it authenticated.
    Sessions,
    /// `POST /oauth2/introspect`.
    Introspect,
    /// Logout of any session and logout-everywhere of any subject.
    RevokeSessions,
    /// Read the revocation feed (document and stream) when it is not public.
    ReadRevocations,
}

impl Permission {
    pub const NAMES: [&'static str; 4] = ["sessions", "introspect", "revoke_sessions", "read_revocations"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sessions" => Some(Self::Sessions),
            "introspect" => Some(Self::Introspect),
            "revoke_sessions" => Some(Self::RevokeSessions),
            "read_revocations" => Some(Self::ReadRevocations),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::Introspect => "introspect",
            Self::RevokeSessions => "revoke_sessions",
            Self::ReadRevocations => "read_revocations",
        }
    }
}

/// Revocation requests a client may make per minute unless configured.
pub const DEFAULT_REVOCATION_QUOTA: u32 = 600;

/// A configured client, valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub(crate) secret_sha256: Option<[u8; 32]>,
    /// The secret replaced by `tessera clients rotate-secret`, accepted
    /// beside the new one until its grace period ends.
    pub(crate) previous_secret: Option<PreviousSecret>,
    pub permissions: Vec<Permission>,
    /// Audiences its tokens may carry; the default `aud` when none is asked.
    pub audiences: Vec<String>,
    /// Scopes its tokens may carry.
    pub scopes: Vec<String>,
    pub access_ttl: Duration,
    pub allowed_origins: Vec<String>,
    pub refresh_cookie: bool,
    /// Most concurrent sessions per subject; the oldest is ended when a new
    /// one would exceed it. `None` keeps no session state at all.
    pub max_sessions_per_subject: Option<usize>,
    /// With the `sessions` permission: the clients it may create sessions
    /// for. `None`: public clients only (and itself).
    pub session_clients: Option<Vec<String>>,
    /// Revocation requests per minute (logout, logout everywhere, RFC 7009).
    pub revocation_quota: u32,
    /// Only DPoP-bound tokens (RFC 9449): every token request needs a proof,
    /// and a session is created only with a key to bind it to.
    pub require_dpop: bool,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_sha256.is_none()
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Whether this client, holding `sessions`, may create a session whose
    /// tokens are issued to `target`: itself always (nothing it could not
    /// get with its own secret); the clients its `session_clients` lists;
    /// without that list, public clients only — never another confidential
    /// client, whose tokens stand for a service.
    pub fn may_create_sessions_for(&self, target: &Client) -> bool {
        if !self.may(Permission::Sessions) {
            return false;
        }
        if target.id == self.id {
            return true;
        }
        match &self.session_clients {
            Some(listed) => listed.contains(&target.id),
            None => target.is_public(),
        }
    }

    /// A public client with nothing granted yet.
    pub fn public(id: &str, access_ttl: Duration) -> Self {
        Self {
            id: id.to_string(),
            secret_sha256: None,
            previous_secret: None,
            permissions: Vec::new(),
            audiences: Vec::new(),
            scopes: Vec::new(),
            access_ttl,
            allowed_origins: Vec::new(),
            refresh_cookie: false,
            max_sessions_per_subject: None,
            session_clients: None,
            revocation_quota: DEFAULT_REVOCATION_QUOTA,
            require_dpop: false,
        }
    }
}

pub(crate) fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn valid_scope_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 128 && token.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

pub(crate) fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Hex of the SHA-256 of a secret, as written in the config file.
pub fn secret_sha256_hex(secret: &str) -> String {
    digest(&SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new client secret: 256 bits from the system's CSPRNG, base64url.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compare without an early exit, so the time taken says nothing about
/// where two digests differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A rotated-out secret and the end of its grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousSecret {
    pub(crate) sha256: [u8; 32],
    /// Accepted while the time is before this.
    pub valid_until: std::time::SystemTime,
}

/// Two configured clients share an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client id {0:?} is configured twice; client ids must be unique")]
pub struct DuplicateClientId(pub String);

/// All configured clients, by id. Looked up on every authenticated
/// request, so hashed with foldhash (randomly seeded) rather than SipHash:
/// the keys come from the configuration, so no peer can choose colliding ones.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry(Arc<Clients>);

type Clients = HashMap<String, Arc<Client>, foldhash::fast::RandomState>;

impl ClientRegistry {
    /// A registry of `clients`; refuses two clients with one id.
    pub fn new(clients: Vec<Client>) -> Result<Self, DuplicateClientId> {
        let mut map = Clients::default();
        for client in clients {
            if map.contains_key(&client.id) {
                return Err(DuplicateClientId(client.id));
            }
            map.insert(client.id.clone(), Arc::new(client));
        }
        Ok(Self(Arc::new(map)))
    }

    /// The registry plus `client` (unless a client of that id exists).
    pub fn with(&self, client: Client) -> Self {
        let mut map = (*self.0).clone();
        map.entry(client.id.clone()).or_insert_with(|| Arc::new(client));
        Self(Arc::new(map))
    }

    pub fn get(&self, id: &str) -> Option<&Client> {
        self.0.get(id).map(|client| &**client)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.0.values().map(|client| &**client)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Authenticate a confidential client (Basic or post).
    pub fn authenticate_confidential(&self, credentials: &Credentials) -> Result<Arc<Client>, ClientAuthError> {
        self.authenticate_confidential_at(credentials, std::time::SystemTime::now())
    }

    /// [`Self::authenticate_confidential`] at `now`: a rotated-out secret is
    /// accepted only before its `valid_until`.
    pub fn authenticate_confidential_at(
        &self,
        credentials: &Credentials,
        now: std::time::SystemTime,
    ) -> Result<Arc<Client>, ClientAuthError> {
        let (id, secret) = match credentials {
            Credentials::Basic { id, secret } | Credentials::Post { id, secret } => (id, secret),
            Credentials::PublicId(_) | Credentials::None => return Err(ClientAuthError::Missing),
        };
        let presented = digest(&SHA256, secret.as_bytes());
        let client = self.0.get(id.as_str());
        // Compare against a fixed value when the id is unknown or public, so
        // the work done does not reveal which ids exist; both comparisons
        // always run.
        let expected = client.and_then(|c| c.secret_sha256).unwrap_or([0u8; 32]);
        let previous = client.and_then(|c| c.previous_secret).filter(|previous| now < previous.valid_until);
        let equal_current = constant_time_eq(presented.as_ref(), &expected);
        let equal_previous = constant_time_eq(presented.as_ref(), &previous.map_or([0u8; 32], |previous| previous.sha256));
        let equal = equal_current | (equal_previous & previous.is_some());
        match client {
            Some(client) if equal && !client.is_public() => Ok(client.clone()),
            _ => Err(ClientAuthError::Failed),
        }
    }

    /// Authenticate any client: confidential ones must prove their secret;
    /// a public client may only name itself.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<Arc<Client>, ClientAuthError> {
        match credentials {
            Credentials::PublicId(id) => match self.0.get(id.as_str()) {
                Some(client) if client.is_public() => Ok(client.clone()),
                // A confidential client that sent no secret.
                _ => Err(ClientAuthError::Failed),
            },
            Credentials::None => Err(ClientAuthError::Missing),
            _ => self.authenticate_confidential(credentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (ClientRegistry, String) {
        let secret = generate_secret();
        let mut confidential = Client::public("backend", Duration::from_secs(600));
        confidential.secret_sha256 = Some(digest(&SHA256, secret.as_bytes()).as_ref().try_into().unwrap());
        confidential.permissions = vec![Permission::Sessions];
        let public = Client::public("web", Duration::from_secs(600));
        (ClientRegistry::new(vec![confidential, public]).unwrap(), secret)
    }

    #[test]
    fn every_permission_name_parses_to_itself() {
        for name in Permission::NAMES {
            assert_eq!(Permission::parse(name).map(Permission::as_str), Some(name));
        }
        assert_eq!(Permission::parse("read_revocations"), Some(Permission::ReadRevocations));
        assert_eq!(Permission::parse("revocations"), None);
    }

    #[test]
    fn client_ids_are_unique() {
        let twice = vec![Client::public("web", Duration::from_secs(1)), Client::public("web", Duration::from_secs(2))];
        assert_eq!(ClientRegistry::new(twice).err(), Some(DuplicateClientId("web".into())));
    }

    #[test]
    fn confidential_client_needs_its_secret() {
        let (registry, secret) = registry();
        let good = Credentials::Basic { id: "backend".into(), secret: secret.clone() };
        assert_eq!(registry.authenticate(&good).unwrap().id, "backend");
        let bad = Credentials::Post { id: "backend".into(), secret: "wrong".into() };
        assert_eq!(registry.authenticate(&bad).unwrap_err(), ClientAuthError::Failed);
        let unknown = Credentials::Basic { id: "nobody".into(), secret };
        assert_eq!(registry.authenticate(&unknown).unwrap_err(), ClientAuthError::Failed);
        assert_eq!(registry.authenticate(&Credentials::PublicId("backend".into())).unwrap_err(), ClientAuthError::Failed);
    }

    #[test]
    fn public_client_names_itself_but_cannot_use_confidential_paths() {
        let (registry, _) = registry();
        assert!(registry.authenticate(&Credentials::PublicId("web".into())).unwrap().is_public());
        let posing = Credentials::Basic { id: "web".into(), secret: String::new() };
        assert!(registry.authenticate_confidential(&posing).is_err());
    }

    #[test]
    fn a_rotated_out_secret_works_until_its_grace_ends() {
        let (registry, old_secret) = registry();
        let mut client = (*registry.0["backend"]).clone();
        let new_secret = generate_secret();
        let now = std::time::SystemTime::now();
        let grace = Duration::from_secs(3600);
        client.previous_secret = Some(PreviousSecret { sha256: client.secret_sha256.unwrap(), valid_until: now + grace });
        client.secret_sha256 = Some(digest(&SHA256, new_secret.as_bytes()).as_ref().try_into().unwrap());
        let registry = ClientRegistry::new(vec![client]).unwrap();
        let old = Credentials::Basic { id: "backend".into(), secret: old_secret };
        let new = Credentials::Basic { id: "backend".into(), secret: new_secret };
        assert!(registry.authenticate_confidential_at(&new, now).is_ok());
        assert!(registry.authenticate_confidential_at(&old, now).is_ok(), "the old secret works during the grace");
        assert!(registry.authenticate_confidential_at(&new, now + grace).is_ok());
        assert_eq!(registry.authenticate_confidential_at(&old, now + grace).unwrap_err(), ClientAuthError::Failed, "not after it");
    }

    #[test]
    fn sessions_may_be_created_for_self_listed_clients_or_public_ones_only() {
        let (registry, _) = registry();
        let backend = registry.get("backend").unwrap().clone();
        let web = registry.get("web").unwrap().clone();
        let mut service = Client::public("service", Duration::from_secs(600));
        service.secret_sha256 = Some([1; 32]);
        assert!(backend.may_create_sessions_for(&web), "public targets by default");
        assert!(backend.may_create_sessions_for(&backend), "itself");
        assert!(!backend.may_create_sessions_for(&service), "never another confidential client by default");

        let mut listing = backend.clone();
        listing.session_clients = Some(vec!["service".into()]);
        assert!(listing.may_create_sessions_for(&service), "listed");
        assert!(!listing.may_create_sessions_for(&web), "the list replaces the default");

        let mut without = backend.clone();
        without.permissions.clear();
        assert!(!without.may_create_sessions_for(&web), "no permission, no sessions");
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(valid_scope_token("orders:read"));
        assert!(!valid_scope_token("has space"));
        assert!(!valid_scope_token("quote\""));
        assert!(!valid_scope_token(""));
    }
}
