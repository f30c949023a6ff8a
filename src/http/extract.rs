//! Extractors that keep handlers thin: each reads and checks one part of a
//! request and refuses in the endpoint's own error format (RFC 6749 JSON on
//! OAuth endpoints, problem+json on the management API), so a handler only
//! decides and answers.
//!
//! | extractor | gives | refuses with |
//! |---|---|---|
//! | [`OAuthForm`] | a form body, each parameter at most once | `invalid_request` |
//! | [`OAuthClient`] | the form and the client it authenticates (any client) | `invalid_client`; 429 when throttled |
//! | [`ConfidentialClient`] | the same, for confidential clients only | `invalid_client`; 429 when throttled |
//! | [`Manager`] | a confidential client (HTTP Basic) holding a permission | 401 / 403 / 429 problem |
//!
//! Client authentication goes through [`super::throttle`], which counts
//! failures per client id and peer and refuses further guesses.
//! | [`JsonBody`] | a JSON body of type `T` | 400 / 413 / 415 problem naming the field |

use super::AppState;
use super::error::{OAuthError, Problem};
use super::oauth::Form;
use super::throttle::{Accepting, Peer};
use crate::clients::{Client, ClientAuthError, Credentials, Permission};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use std::marker::PhantomData;
use std::sync::Arc;

/// The body of an OAuth endpoint: `application/x-www-form-urlencoded`,
/// every parameter at most once (RFC 6749 §3.2), with the request's
/// headers (moved out of the request, not copied).
pub struct OAuthForm {
    pub headers: HeaderMap,
    pub form: Form,
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(mut request: Request, state: &AppState) -> Result<Self, OAuthError> {
        // Reading the body does not need the headers: they are taken out
        // whole rather than cloned.
        let headers = std::mem::take(request.headers_mut());
        let form_encoded = has_content_type(&headers, "application/x-www-form-urlencoded");
        let body = read_body(request, state).await.map_err(|unread| match unread {
            Unread::TooLarge(max) => {
                OAuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", format!("the body exceeds {max} bytes"))
            }
            Unread::Failed => OAuthError::invalid_request("the request body could not be read"),
        })?;
        if !form_encoded {
            return Err(OAuthError::invalid_request("the body must be form-encoded with Content-Type: application/x-www-form-urlencoded"));
        }
        Ok(Self { headers, form: Form::parse(&body)? })
    }
}

/// A client authenticated at an OAuth endpoint — HTTP Basic, the form's
/// `client_secret`, or a public client naming itself — with the form and
/// headers it sent.
pub struct OAuthClient {
    pub client: Arc<Client>,
    pub form: Form,
    pub headers: HeaderMap,
}

impl FromRequest<AppState> for OAuthClient {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        let (client, OAuthForm { headers, form }) = authenticated(request, state, Accepting::AnyClient).await?;
        Ok(Self { client, form, headers })
    }
}

/// Like [`OAuthClient`], for endpoints only confidential clients may use.
pub struct ConfidentialClient {
    pub client: Arc<Client>,
    pub form: Form,
}

impl FromRequest<AppState> for ConfidentialClient {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        let (client, OAuthForm { form, .. }) = authenticated(request, state, Accepting::Confidential).await?;
        Ok(Self { client, form })
    }
}

/// The form, and the client its request authenticates as (through the
/// throttle, which needs the peer: read before the request is taken apart).
async fn authenticated(request: Request, state: &AppState, accepting: Accepting) -> Result<(Arc<Client>, OAuthForm), OAuthError> {
    let peer = state.throttle.peer(request.headers(), request.extensions());
    let read = OAuthForm::from_request(request, state).await?;
    let client = state.throttle.authenticate(&state.config().clients, oauth_credentials(&read.headers, &read.form), peer, accepting)?;
    Ok((client, read))
}

/// Credentials from the Authorization header and the form.
pub fn oauth_credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, ClientAuthError> {
    Credentials::from_request(authorization(headers)?, form.get("client_id"), form.get("client_secret"))
}

/// The Authorization header as text (a non-ASCII one can match no scheme);
/// two of them are refused rather than one picked.
pub(super) fn authorization(headers: &HeaderMap) -> Result<Option<&str>, ClientAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next().map(|v| v.to_str().unwrap_or("invalid"));
    match values.next() {
        Some(_) => Err(ClientAuthError::RepeatedAuthorization),
        None => Ok(first),
    }
}

/// Which permissions a [`Manager`] must hold (any one of them).
pub trait Requirement: Send + Sync + 'static {
    const ANY_OF: &'static [Permission];
}

/// Any confidential client; the rule it calls checks the permission itself.
pub struct AnyPermission;
impl Requirement for AnyPermission {
    const ANY_OF: &'static [Permission] = &[];
}

/// The `sessions` permission: create sessions.
pub struct MaySessions;
impl Requirement for MaySessions {
    const ANY_OF: &'static [Permission] = &[Permission::Sessions];
}

/// The `revoke_sessions` permission: logout, logout everywhere.
pub struct MayRevokeSessions;
impl Requirement for MayRevokeSessions {
    const ANY_OF: &'static [Permission] = &[Permission::RevokeSessions];
}

/// Either session permission: list a subject's sessions.
pub struct MayReadSessions;
impl Requirement for MayReadSessions {
    const ANY_OF: &'static [Permission] = &[Permission::Sessions, Permission::RevokeSessions];
}

/// A confidential client, authenticated over HTTP Basic, that holds one of
/// `R`'s permissions (none required for [`AnyPermission`]).
pub struct Manager<R: Requirement> {
    pub client: Arc<Client>,
    required: PhantomData<R>,
}

impl<R: Requirement> FromRequestParts<AppState> for Manager<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let peer = state.throttle.peer(&parts.headers, &parts.extensions);
        let client = management_client(state, &parts.headers, peer, R::ANY_OF)?;
        Ok(Self { client, required: PhantomData })
    }
}

/// Authenticate a confidential client over HTTP Basic and require one of
/// `permissions`.
pub fn management_client(state: &AppState, headers: &HeaderMap, peer: Peer, permissions: &[Permission]) -> Result<Arc<Client>, Problem> {
    let credentials = authorization(headers).and_then(|authorization| Credentials::from_request(authorization, None, None));
    let client = state.throttle.authenticate(&state.config().clients, credentials, peer, Accepting::Confidential)?;
    if !permissions.is_empty() && !permissions.iter().any(|p| client.may(*p)) {
        let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("client {:?} needs the {} permission", client.id, names.join(" or ")),
        ));
    }
    Ok(client)
}

/// A JSON body of type `T`; refusals are problems that name the field
/// where serde knows it.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let json = has_content_type(request.headers(), "application/json");
        let body = read_body(request, state).await.map_err(unread_problem)?;
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        serde_json::from_slice(&body).map(JsonBody).map_err(json_problem)
    }
}

/// Turn a serde error into a problem naming the field where serde knows it.
pub fn json_problem(error: serde_json::Error) -> Problem {
    let message = error.to_string();
    let field = ["unknown field `", "missing field `"].iter().find_map(|marker| {
        let start = message.find(marker)? + marker.len();
        let len = message[start..].find('`')?;
        Some(message[start..start + len].to_string())
    });
    // serde's message ends with a position; keep it, it helps find the spot.
    let detail = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("the body is not valid JSON: {message}")
        }
        _ => format!("the body does not match the session request: {message}"),
    };
    let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid_body", detail);
    match field {
        Some(field) => problem.with_field(field),
        None => problem,
    }
}

/// Whether the request's Content-Type is `expected` (parameters ignored).
pub fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Why a body was not read; each extractor answers it in its own format.
enum Unread {
    /// Over `http.max_body_bytes` (the limit).
    TooLarge(usize),
    Failed,
}

/// The whole body, within `http.max_body_bytes`. Every body tessera reads
/// comes through here (the extractors above and [`RawBody`]), so this is
/// where the limit holds — also for a body sent without a length, which
/// the edge cannot refuse from its headers. A body that arrives in one
/// piece, as a small form or JSON body does, is handed on without a copy.
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, Unread> {
    use http_body_util::BodyExt;
    let max = state.config().http.max_body_bytes;
    let mut body = request.into_body();
    let mut first: Option<Bytes> = None;
    let mut joined = bytes::BytesMut::new();
    let mut length = 0usize;
    while let Some(frame) = body.frame().await {
        // Trailers carry no body bytes.
        let Ok(data) = frame.map_err(|_| Unread::Failed)?.into_data() else { continue };
        length = length.saturating_add(data.len());
        if length > max {
            return Err(Unread::TooLarge(max));
        }
        match &first {
            None => first = Some(data),
            Some(head) => {
                if joined.is_empty() {
                    joined.extend_from_slice(head);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(if joined.is_empty() { first.unwrap_or_default() } else { joined.freeze() })
}

/// A body as it came, within `http.max_body_bytes`; refusals are problems.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        read_body(request, state).await.map(RawBody).map_err(unread_problem)
    }
}

/// Why a body was not read, as a problem.
fn unread_problem(unread: Unread) -> Problem {
    match unread {
        Unread::TooLarge(max) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body exceeds {max} bytes")),
        Unread::Failed => Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn two_authorization_headers_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(authorization(&headers), Ok(None));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        assert_eq!(authorization(&headers), Ok(Some("Basic YTpi")));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Basic YzpkCg=="));
        assert_eq!(authorization(&headers), Err(ClientAuthError::RepeatedAuthorization));
    }
}
