//! What a request presents and how a refusal is answered: the
//! `Authorization` scheme (`Bearer`, RFC 6750 §2.1, or `DPoP`, RFC 9449
//! §7.1) with its `DPoP` proof, and the RFC 6750 §3 / RFC 9449 §7.1
//! answers — a `WWW-Authenticate` challenge per scheme the resource
//! accepts, and an RFC 9457 problem+json body.
//!
//! A request with no credentials gets a bare challenge for each accepted
//! scheme (the DPoP one with the `algs` a proof may use); a refused
//! credential gets the error in the scheme it came with: `invalid_request`
//! (400) for a malformed header, `invalid_token` (401), `invalid_dpop_proof`
//! (401), `use_dpop_nonce` (401, with a `DPoP-Nonce`), `insufficient_scope`
//! (403).

use super::VerifyError;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};

/// The credentials of a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    Bearer(&'a str),
    Dpop { token: &'a str, proof: &'a str },
}

/// The scheme a refusal is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// Why a request was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    NoToken,
    MalformedHeader(Scheme, &'static str),
    InvalidToken(Scheme, VerifyError),
    InvalidProof(String),
    UseNonce(String),
    Busy,
    /// A bearer token where only DPoP-bound tokens are accepted.
    BearerNotAccepted,
    InsufficientScope(Scheme),
}

impl From<(Scheme, VerifyError)> for Refusal {
    fn from((scheme, error): (Scheme, VerifyError)) -> Self {
        match error {
            VerifyError::Proof(_) | VerifyError::ProofReplayed => Refusal::InvalidProof(error.to_string()),
            VerifyError::NonceRequired { nonce } => Refusal::UseNonce(nonce),
            VerifyError::ReplayCacheFull => Refusal::Busy,
            error => Refusal::InvalidToken(scheme, error),
        }
    }
}

/// The credentials in `headers`; `DPoP` is recognised only when `dpop`.
pub(crate) fn presented(headers: &HeaderMap, dpop: bool) -> Result<Presented<'_>, Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(Refusal::NoToken) };
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader(Scheme::Bearer, "more than one Authorization header"));
    }
    let value = value.to_str().map_err(|_| Refusal::MalformedHeader(Scheme::Bearer, "the Authorization header is not visible ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if dpop && scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        // Another scheme is no token this resource takes (RFC 6750 §3.1).
        return Err(Refusal::NoToken);
    };
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        let detail = if scheme == Scheme::Bearer {
            "Authorization: Bearer needs exactly one token"
        } else {
            "Authorization: DPoP needs exactly one token"
        };
        return Err(Refusal::MalformedHeader(scheme, detail));
    }
    if scheme == Scheme::Bearer {
        return Ok(Presented::Bearer(token));
    }
    // RFC 9449 §4.3: exactly one DPoP header.
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(proof), None) => proof.to_str().map_err(|_| Refusal::InvalidProof("the DPoP header is not visible ASCII".into()))?,
        (None, _) => return Err(Refusal::InvalidProof("a DPoP-bound token needs a DPoP proof in the DPoP header".into())),
        (Some(_), Some(_)) => return Err(Refusal::InvalidProof("more than one DPoP header".into())),
    };
    Ok(Presented::Dpop { token, proof: proof.trim() })
}

/// How challenges are written for one resource.
pub(crate) struct Challenges<'a> {
    pub realm: &'a str,
    /// The `algs` of the DPoP challenge; `None` when DPoP is not accepted.
    pub dpop_algs: Option<String>,
    pub bearer: bool,
    pub scopes: &'a [String],
}

impl Challenges<'_> {
    pub(crate) fn refuse(&self, refusal: Refusal) -> Response {
        let realm = format!("realm=\"{}\"", quotable(self.realm));
        let dpop_bare = self.dpop_algs.as_ref().map(|algs| format!("DPoP {realm}, algs=\"{algs}\""));
        let bearer_bare = self.bearer.then(|| format!("Bearer {realm}"));
        let error = |scheme: Scheme, error: &str, detail: &str| {
            let params = format!("error=\"{error}\", error_description=\"{}\"", quotable(detail));
            match scheme {
                Scheme::Bearer => vec![Some(format!("Bearer {realm}, {params}")), dpop_bare.clone()],
                Scheme::Dpop => vec![Some(format!("{}, {params}", dpop_bare.clone().unwrap_or_else(|| format!("DPoP {realm}"))))],
            }
        };
        let (status, challenges, detail, nonce) = match refusal {
            Refusal::NoToken => {
                let detail = if self.bearer {
                    "this resource needs an access token: Authorization: Bearer <token>"
                } else {
                    "this resource needs a DPoP-bound access token: Authorization: DPoP <token> with a DPoP proof"
                };
                (StatusCode::UNAUTHORIZED, vec![bearer_bare, dpop_bare], detail.to_string(), None)
            }
            Refusal::MalformedHeader(scheme, detail) => {
                (StatusCode::BAD_REQUEST, error(scheme, "invalid_request", detail), detail.into(), None)
            }
            Refusal::InvalidToken(scheme, error_) => {
                let detail = format!("the access token was refused: {error_}");
                (StatusCode::UNAUTHORIZED, error(scheme, "invalid_token", &detail), detail, None)
            }
            Refusal::InvalidProof(reason) => {
                let detail = format!("the DPoP proof was refused: {reason}");
                (StatusCode::UNAUTHORIZED, error(Scheme::Dpop, "invalid_dpop_proof", &detail), detail, None)
            }
            Refusal::UseNonce(nonce) => {
                let detail = "this resource requires a DPoP nonce; retry with the one in DPoP-Nonce".to_string();
                (StatusCode::UNAUTHORIZED, error(Scheme::Dpop, "use_dpop_nonce", &detail), detail, Some(nonce))
            }
            Refusal::Busy => {
                let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, "too many DPoP proofs in flight; try again shortly");
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Refusal::BearerNotAccepted => {
                let detail = "this resource accepts DPoP-bound access tokens only: Authorization: DPoP <token> with a DPoP proof";
                (StatusCode::UNAUTHORIZED, error(Scheme::Dpop, "invalid_token", detail), detail.to_string(), None)
            }
            Refusal::InsufficientScope(scheme) => {
                let scope = quotable(&self.scopes.join(" "));
                let detail = format!("the access token lacks a scope this resource needs: {scope}");
                let challenge = match scheme {
                    Scheme::Bearer => format!("Bearer {realm}, error=\"insufficient_scope\", scope=\"{scope}\""),
                    Scheme::Dpop => format!("{}, error=\"insufficient_scope\", scope=\"{scope}\"", dpop_bare.clone().unwrap_or_default()),
                };
                (StatusCode::FORBIDDEN, vec![Some(challenge)], detail, None)
            }
        };
        let mut response = problem(status, &detail);
        for challenge in challenges.into_iter().flatten() {
            let value = HeaderValue::from_str(&challenge).expect("quotable() leaves visible ASCII only");
            response.headers_mut().append(WWW_AUTHENTICATE, value);
        }
        if let Some(nonce) = nonce.and_then(|nonce| HeaderValue::from_str(&nonce).ok()) {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        response
    }
}

/// Text safe inside an RFC 6750 quoted value: visible ASCII and space,
/// without `"` and `\`, at most 200 characters.
pub(crate) fn quotable(text: &str) -> String {
    text.chars().take(200).map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '\'' }).collect()
}

pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &[&'static str], dpop: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(AUTHORIZATION, HeaderValue::from_static(value));
        }
        for value in dpop {
            headers.append("dpop", HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn bearer_tokens_are_told_from_no_token_and_from_a_malformed_header() {
        let bearer = |values: &[&'static str]| format!("{:?}", presented(&headers(values, &[]), true));
        assert_eq!(bearer(&["Bearer abc.def.ghi"]), format!("{:?}", Ok::<_, ()>(Presented::Bearer("abc.def.ghi"))));
        assert_eq!(bearer(&["bearer  abc "]), format!("{:?}", Ok::<_, ()>(Presented::Bearer("abc"))));
        assert_eq!(bearer(&[]), "Err(NoToken)");
        assert_eq!(bearer(&["Basic dXNlcjpwYXNz"]), "Err(NoToken)");
        assert!(bearer(&["Bearer"]).starts_with("Err(MalformedHeader(Bearer,"));
        assert!(bearer(&["Bearer a b"]).starts_with("Err(MalformedHeader(Bearer,"));
        assert!(bearer(&["Bearer a", "Bearer b"]).starts_with("Err(MalformedHeader(Bearer,"));
    }

    #[test]
    fn a_dpop_token_needs_exactly_one_proof_and_a_resource_that_takes_dpop() {
        let dpop = |authorization: &'static str, proofs: &[&'static str], accepted: bool| {
            format!("{:?}", presented(&headers(&[authorization], proofs), accepted))
        };
        assert_eq!(dpop("DPoP t", &["p"], true), format!("{:?}", Ok::<_, ()>(Presented::Dpop { token: "t", proof: "p" })));
        assert_eq!(dpop("DPoP t", &["p"], false), "Err(NoToken)");
        assert!(dpop("DPoP t", &[], true).starts_with("Err(InvalidProof("));
        assert!(dpop("DPoP t", &["p", "q"], true).starts_with("Err(InvalidProof(\"more than one"));
        assert!(dpop("DPoP", &["p"], true).starts_with("Err(MalformedHeader(Dpop,"));
    }

    #[test]
    fn quotable_text_cannot_break_out_of_the_quotes() {
        assert_eq!(quotable("kid \"x\\\" é\tend"), "kid 'x'' ''end");
        assert_eq!(quotable(&"a".repeat(300)).len(), 200);
    }
}
