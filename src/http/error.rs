//! The one mapping from domain errors to HTTP answers: RFC 6749 §5.2 JSON
//! on the OAuth endpoints, RFC 9457 problem+json everywhere else. Handlers
//! return these types and never build an error body by hand.

use crate::authority::Refusal;
use crate::clients::ClientAuthError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\", charset=\"UTF-8\"";

/// An RFC 6749 error response.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    www_authenticate: Option<&'static str>,
    retry_after: Option<u64>,
    /// RFC 9449 §8: the nonce a `use_dpop_nonce` answer hands the client.
    dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), www_authenticate: None, retry_after: None, dpop_nonce: None }
    }

    /// RFC 9449 §8: a proof without the current nonce; retry with this one.
    pub fn use_dpop_nonce(nonce: String) -> Self {
        let description = "a DPoP nonce is required: make the proof again with the one in the DPoP-Nonce header";
        Self { dpop_nonce: Some(nonce), ..Self::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", description) }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 429 with `Retry-After`. RFC 6749 names no error for it; this is the
    /// code it gives a server that cannot answer now.
    pub fn too_many_requests(retry_after: u64, description: impl Into<String>) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", description) }
    }

    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {:?} is not supported; supported: {}",
                grant_type.chars().take(64).collect::<String>(),
                crate::grants::GRANT_TYPES.join(", ")
            ),
        )
    }
}

impl From<ClientAuthError> for OAuthError {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::MultipleMethods | ClientAuthError::RepeatedAuthorization => OAuthError::invalid_request(error.to_string()),
            ClientAuthError::Throttled { retry_after } => OAuthError::too_many_requests(retry_after, error.to_string()),
            // RFC 6749 §5.2: 401 with a challenge for the scheme the client
            // used — and for clients that sent nothing, since Basic is the
            // method every client must support.
            _ => {
                Self { www_authenticate: Some(BASIC_CHALLENGE), ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", error.to_string()) }
            }
        }
    }
}

impl From<Refusal> for OAuthError {
    fn from(error: Refusal) -> Self {
        let description = error.to_string();
        match error {
            Refusal::InvalidField { .. } => OAuthError::invalid_request(description),
            Refusal::InvalidScope(_) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description),
            // RFC 8707 §2 names this error for a refused audience/resource.
            Refusal::InvalidTarget(_) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description),
            Refusal::Forbidden(_) => OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", description),
            Refusal::InvalidGrant(_) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description),
            Refusal::InvalidDpopProof(_) => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description),
            Refusal::KeysUnavailable | Refusal::StoreUnavailable => {
                Self { retry_after: Some(5), ..OAuthError::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", description) }
            }
            Refusal::NotFound(_) => OAuthError::invalid_request(description),
            Refusal::RateLimited { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..OAuthError::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", description)
            },
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(nonce) = self.dpop_nonce.and_then(|nonce| HeaderValue::from_str(&nonce).ok()) {
            headers.insert("dpop-nonce", nonce);
        }
        response
    }
}

/// An RFC 9457 problem: `type` is `about:blank`, `title` the status phrase,
/// `detail` says what was wrong, and `code` / `field` let programs react.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
    www_authenticate: Option<&'static str>,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None, www_authenticate: None, retry_after: None }
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: u64, code: &'static str, detail: impl Into<String>) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail) }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Ask the client to wait this many seconds before trying again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no resource at {:?}; see openapi.yaml for the endpoints", path.chars().take(128).collect::<String>()),
        )
    }
}

impl From<ClientAuthError> for Problem {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::Throttled { retry_after } => {
                return Problem::too_many_requests(retry_after, "too_many_attempts", error.to_string());
            }
            ClientAuthError::RepeatedAuthorization => return Problem::new(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
            _ => {}
        }
        Self {
            www_authenticate: Some(BASIC_CHALLENGE),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                format!("{error}; use HTTP Basic with a confidential client's id and secret"),
            )
        }
    }
}

impl From<Refusal> for Problem {
    fn from(error: Refusal) -> Self {
        let field = error.field_name().map(str::to_string);
        let problem = match &error {
            Refusal::InvalidField { .. } => Problem::new(StatusCode::BAD_REQUEST, "invalid_field", error.to_string()),
            Refusal::InvalidScope(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_scope", error.to_string()),
            Refusal::InvalidTarget(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_audience", error.to_string()),
            Refusal::Forbidden(_) => Problem::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            Refusal::InvalidGrant(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_grant", error.to_string()),
            Refusal::InvalidDpopProof(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", error.to_string()),
            Refusal::KeysUnavailable => {
                Self { retry_after: Some(5), ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", error.to_string()) }
            }
            Refusal::StoreUnavailable => {
                Self { retry_after: Some(5), ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string()) }
            }
            Refusal::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not_found", error.to_string()),
            Refusal::RateLimited { retry_after, .. } => {
                Self { retry_after: Some(*retry_after), ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", error.to_string()) }
            }
        };
        Self { field, ..problem }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
