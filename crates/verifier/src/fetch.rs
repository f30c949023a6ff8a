//! HTTP for the verifier: one client with bounded connects, bounded bodies,
//! and the one error for "could not get a usable document from the issuer".

use std::time::Duration;

/// A metadata, JWKS or feed request that takes longer has failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// No document the verifier reads is anywhere near this size.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why a document from the issuer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No answer: connection refused, timed out, TLS failed…
    #[error("GET {url}: {reason}")]
    Transport {
        /// What was requested.
        url: String,
        /// The cause, with its chain of sources.
        reason: String,
    },
    /// An answer, but not 200 (or 304 where one was asked for).
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// What was requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A 200 whose body is not the document expected.
    #[error("GET {url}: {reason}")]
    Document {
        /// What was requested.
        url: String,
        /// What is wrong with the body.
        reason: String,
    },
}

impl FetchError {
    pub(crate) fn transport(url: &str, error: &reqwest::Error) -> Self {
        // reqwest's own message leaves the cause (refused, timed out…) to its sources.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport { url: url.to_string(), reason }
    }

    pub(crate) fn document(url: &str, reason: impl Into<String>) -> Self {
        Self::Document { url: url.to_string(), reason: reason.into() }
    }
}

/// The client for every request to the issuer; fails if the TLS roots
/// cannot be loaded.
pub(crate) fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("tessera-verifier/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Send a request; any status is a response.
pub(crate) async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response, FetchError> {
    request.send().await.map_err(|e| FetchError::transport(url, &e))
}

/// The body of a 200 response, at most 16 MiB.
pub(crate) async fn body(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, FetchError> {
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status { url: url.to_string(), status: response.status().as_u16() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::transport(url, &e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(FetchError::document(url, "the body is larger than 16 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
