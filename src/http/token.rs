//! `POST /oauth2/token` (RFC 6749 §3.2): form-encoded requests, client
//! authentication, and one branch per grant type.

use super::browser::check_csrf;
use super::error::OAuthError;
use super::{AppState, has_content_type, is_too_large};
use crate::clients::{Client, Credentials};
use crate::sessions::IssuedSession;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// A parsed `application/x-www-form-urlencoded` body in which every
/// parameter appears at most once (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            // RFC 6749 §3.2: parameters sent without a value are treated
            // as omitted.
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {:?} is repeated", name.chars().take(64).collect::<String>())));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Read and parse the form body of an OAuth endpoint.
pub fn read_form(state: &AppState, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Form, OAuthError> {
    let body = body.map_err(|rejection| {
        if is_too_large(&rejection) {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the body exceeds {} bytes", state.config.http.max_body_bytes),
            )
        } else {
            OAuthError::invalid_request("the request body could not be read")
        }
    })?;
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("the body must be form-encoded with Content-Type: application/x-www-form-urlencoded"));
    }
    Form::parse(&body)
}

/// Credentials from the Authorization header and the form.
pub fn credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, OAuthError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("invalid"));
    Ok(Credentials::from_request(authorization, form.get("client_id"), form.get("client_secret"))?)
}

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, OAuthError> {
    let form = read_form(&state, &headers, body)?;
    let grant_type = form.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let credentials = credentials(&headers, &form)?;
    let client = state.config.clients.authenticate(&credentials)?;
    match grant_type {
        "client_credentials" => {
            if client.is_public() {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "public clients cannot use client_credentials",
                ));
            }
            let issued = state.tokens.client_credentials(client, form.get("scope"), form.get("audience"))?;
            tracing::info!(client = %client.id, "service token issued");
            Ok(no_store(Json(issued)))
        }
        "refresh_token" => {
            let from_cookie = if client.refresh_cookie { state.cookie.read(&headers) } else { None };
            let refresh_token = match (form.get("refresh_token"), from_cookie.as_deref()) {
                (Some(token), _) => token,
                (None, Some(token)) => {
                    check_csrf(&headers, client)?;
                    token
                }
                (None, None) => return Err(OAuthError::invalid_request("refresh_token is required")),
            };
            let issued = state.tokens.refresh(client, refresh_token, form.get("scope")).await?;
            if state.dev {
                crate::http::demo::remember_presented(&state, &issued.session_id, refresh_token);
            }
            Ok(deliver(&state, client, issued))
        }
        "authorization_code" => {
            let code = form.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            // The answer sets the refresh cookie: a cross-site form must not
            // be able to sign the browser into someone else's session.
            if client.refresh_cookie {
                check_csrf(&headers, client)?;
            }
            let issued = state.tokens.exchange_code(client, code, form.get("code_verifier")).await?;
            tracing::info!(client = %client.id, sid = %issued.session_id, "session handed over by a one-time code");
            Ok(deliver(&state, client, issued))
        }
        other => Err(OAuthError::unsupported_grant_type(other)),
    }
}

/// A session's tokens as the client receives them: for a client with
/// `refresh_cookie`, the refresh token goes into the cookie and the body
/// carries only the access token.
pub fn deliver(state: &AppState, client: &Client, mut issued: IssuedSession) -> Response {
    let cookie = if client.refresh_cookie {
        issued.refresh_token.take().map(|token| state.cookie.set(&token, issued.refresh_expires_in))
    } else {
        None
    };
    let mut response = no_store(Json(issued));
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// RFC 6749 §5.1: token responses must not be cached.
pub fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(Form::parse(b"grant_type=a&grant_type=b").is_err());
        let form = Form::parse(b"grant_type=client_credentials&scope=&x=1").unwrap();
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
    }
}
