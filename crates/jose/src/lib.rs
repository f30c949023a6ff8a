//! tessera's JOSE core: what the token service and its verifier library
//! share, so that they cannot disagree about what a valid token is.
//!
//! | module | owns |
//! |---|---|
//! | `algorithm` | [`Algorithm`]: the five JWS algorithms, by JOSE name |
//! | `key` | [`KeyPair`] and [`PublicKey`] on ring, each bound to its algorithm |
//! | `jws` | [`CompactJws`] reading, [`sign_compact`] writing, [`Header`] |
//! | `jwk` | [`KeySet`] from a JWK Set; public JWK rendering; [`thumbprint`] (RFC 7638) |
//! | [`typ`] | the `typ` values that keep access tokens and feed documents apart |
//! | [`dpop`] | DPoP proofs (RFC 9449): reading, checking, writing; `jkt` and `ath` |
//! | `audience` | [`Audience`]: `aud` as one string or many |
//! | [`base64url`] | base64url appended in place, for assembling tokens |
//! | `time` | [`TimeClaims::check`]: `exp`, `nbf`, `iat` with leeway (RFC 7519) |
//!
//! It owns formats and cryptography, nothing about policy: which issuer,
//! audience or key state is acceptable is the caller's to decide. It does no
//! I/O and no logging, and depends on ring, base64, serde, serde_json and
//! thiserror only.
//!
//! ```
//! use tessera_jose::{Algorithm, CompactJws, Header, KeyPair, TimeClaims, sign_compact, typ};
//! let key = KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256)?)?;
//! let header = Header::new(key.alg(), key.thumbprint(), typ::AT_JWT).encode();
//! let token = sign_compact(&header, br#"{"sub":"alice","exp":1900000000}"#, &key);
//!
//! let jws = CompactJws::parse(&token)?;
//! jws.require_type(typ::AT_JWT_TYPES)?;
//! let payload = jws.verify(key.public_key(), &Algorithm::ALL)?;
//! assert_eq!(payload, br#"{"sub":"alice","exp":1900000000}"#);
//! TimeClaims { exp: 1_900_000_000, nbf: None, iat: None }.check(1_800_000_000, 30)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # jsonwebtoken's role
//!
//! tessera signs and verifies with ring through this crate: one code path,
//! cached key pairs, and checks in the order RFC 8725 asks, which
//! jsonwebtoken's generic `decode` cannot guarantee (it reads `alg` from the
//! header). jsonwebtoken stays as an independent third-party cross-check in
//! tessera's tests — every minted token and feed document must verify under
//! it too — through the ring `CryptoProvider` behind the cargo feature
//! `jsonwebtoken`, which no shipped binary enables.

#![deny(missing_docs)]

mod algorithm;
mod audience;
pub mod base64url;
pub mod dpop;
#[cfg(feature = "jsonwebtoken")]
pub mod jsonwebtoken_provider;
mod jwk;
mod jws;
mod key;
mod time;
pub mod typ;

pub use algorithm::Algorithm;
pub use audience::Audience;
pub use jwk::{JwksError, KeySet, SkippedKey, thumbprint};
pub use jws::{CompactJws, Header, JwsError, Signer, sign_compact};
pub use key::{KeyError, KeyPair, PublicKey};
pub use time::{TimeClaims, TimeError};
