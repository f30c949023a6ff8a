//! Property tests: random bytes, random JSON and random forms thrown at the
//! token and session endpoints never get a 5xx, a panic or a non-JSON body.

use crate::helpers::basic;
use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine;
use http_body_util::BodyExt;
use proptest::prelude::*;
use std::sync::OnceLock;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    _app: tessera::app::App,
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, crate::helpers::default_config()).unwrap();
        let mut config = tessera::config::Config::load_with_env(Some(&path), &[]).unwrap();
        config.issuer = Some("http://127.0.0.1:8080".into());
        config.keys_dir = dir.path().join("keys");
        config.store = tessera::config::StoreConfig::Memory;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let built = runtime.block_on(tessera::app::App::build(config, Default::default())).unwrap();
        App { router: built.router(), _app: built, _dir: dir, runtime }
    })
}

fn send(path: &str, content_type: Option<&str>, authorization: Option<String>, body: Vec<u8>) -> (u16, Vec<u8>) {
    let app = app();
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(value) = authorization.and_then(|a| axum::http::HeaderValue::from_str(&a).ok()) {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = request.body(Body::from(body)).unwrap();
    app.runtime.block_on(async {
        let response = app.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, bytes)
    })
}

fn check(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "status {status}: {}", String::from_utf8_lossy(body));
    prop_assert!(serde_json::from_slice::<serde_json::Value>(body).is_ok(), "body is not JSON: {}", String::from_utf8_lossy(body));
    Ok(())
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(basic(crate::helpers::BACKEND_ID, crate::helpers::BACKEND_SECRET))),
        Just(Some(basic(crate::helpers::SERVICE_ID, crate::helpers::SERVICE_SECRET))),
        Just(Some(basic("web", ""))),
        ".{0,40}".prop_map(Some),
        any::<Vec<u8>>().prop_map(|b| Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(b)))),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("application/json; charset=utf-8")),
        Just(Some("text/plain")),
        Just(Some("multipart/form-data; boundary=x")),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        ".{0,300}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sub".to_string()),
                    Just("aud".into()),
                    Just("scope".into()),
                    Just("claims".into()),
                    Just("client_id".into()),
                    ".{0,12}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn form() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("grant_type".to_string()),
        Just("scope".into()),
        Just("audience".into()),
        Just("client_id".into()),
        Just("client_secret".into()),
        Just("refresh_token".into()),
        Just("code".into()),
        Just("code_verifier".into()),
        ".{0,10}"
    ];
    let value = prop_oneof![
        Just("client_credentials".to_string()),
        Just("refresh_token".into()),
        Just("authorization_code".into()),
        Just("orders:read".into()),
        Just(crate::helpers::SERVICE_ID.into()),
        Just("web".into()),
        ".{0,200}"
    ];
    prop::collection::vec((name, value), 0..8)
        .prop_map(|pairs| form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_get_a_server_error(path in prop_oneof![Just("/v1/sessions"), Just("/oauth2/token")], content_type in content_type(), authorization in authorization(), body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (status, bytes) = send(path, content_type, authorization, body);
        check(status, &bytes)?;
    }

    #[test]
    fn random_json_at_sessions_never_gets_a_server_error(authorization in authorization(), body in json_value()) {
        let (status, bytes) = send("/v1/sessions", Some("application/json"), authorization, serde_json::to_vec(&body).unwrap());
        check(status, &bytes)?;
    }

    #[test]
    fn random_session_requests_from_the_backend_never_get_a_server_error(sub in ".{0,300}", aud in json_value(), scope in ".{0,40}", claims in json_value()) {
        let body = serde_json::json!({"sub": sub, "client_id": "web", "aud": aud, "scope": scope, "claims": claims});
        let (status, bytes) = send("/v1/sessions", Some("application/json"), Some(basic(crate::helpers::BACKEND_ID, crate::helpers::BACKEND_SECRET)), serde_json::to_vec(&body).unwrap());
        check(status, &bytes)?;
    }

    #[test]
    fn random_forms_at_the_token_endpoint_never_get_a_server_error(authorization in authorization(), body in form()) {
        let (status, bytes) = send("/oauth2/token", Some("application/x-www-form-urlencoded"), authorization, body);
        check(status, &bytes)?;
    }
}
