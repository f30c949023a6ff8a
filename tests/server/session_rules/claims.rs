//! What tokens carry: refresh re-checks the client's current scopes and
//! audiences, RFC 8707 `resource` on every grant and on session creation,
//! what a `sub` may contain and how it is logged, and the clock skew a
//! logout-everywhere covers.

use super::*;

fn form_refresh<'a>(token: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    form
}

async fn refresh_with(server: &TestServer, token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let response = server.token(None, &form_refresh(token, extra)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn refresh_drops_scopes_and_audiences_the_operator_removed_from_the_client() {
    // A fixed issuer: the restarts listen on other ports.
    const ISSUER: &[(&str, &str)] = &[("TESSERA_ISSUER", "https://auth.example")];
    let server = TestServer::start_with(&config(), ISSUER).await;
    let session = server.web_session("alice").await;
    assert_eq!(session["scope"], "read write");
    let token = session["refresh_token"].as_str().unwrap().to_string();

    let narrowed = config()
        .replace("scopes = [\"read\", \"write\"]", "scopes = [\"read\"]")
        .replace("audiences = [\"orders-api\", \"billing-api\"]\nscopes", "audiences = [\"orders-api\"]\nscopes");
    let server = TestServer::start_in(server.stop_keep_dir(), &narrowed, ISSUER).await;
    let (status, child) = server.refresh("web", &token).await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["scope"], "read");
    let access = claims(child["access_token"].as_str().unwrap());
    assert_eq!(access["scope"], "read");
    assert_eq!(access["aud"], "orders-api");
    let token = child["refresh_token"].as_str().unwrap().to_string();

    // Nothing of the session's scope left: invalid_scope; no audience left: invalid_target.
    let no_scope = narrowed.replace("scopes = [\"read\"]", "scopes = []");
    let server = TestServer::start_in(server.stop_keep_dir(), &no_scope, ISSUER).await;
    let (status, error) = server.refresh("web", &token).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_scope")), "{error}");
    let no_audience = narrowed.replace("audiences = [\"orders-api\"]\nscopes", "audiences = [\"other-api\"]\nscopes");
    let server = TestServer::start_in(server.stop_keep_dir(), &no_audience, ISSUER).await;
    let (status, error) = server.refresh("web", &token).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_target")), "{error}");
}

#[tokio::test]
async fn resource_on_client_credentials_sets_the_audience_or_is_refused_with_invalid_target() {
    let server = server().await;
    let issue = |form: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let response = server.token(Some(SVC2), &form).await;
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = issue(vec![("grant_type", "client_credentials"), ("resource", "billing-api")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], "billing-api");
    let (_, body) = issue(vec![("grant_type", "client_credentials"), ("resource", "orders-api"), ("resource", "billing-api")]).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], json!(["orders-api", "billing-api"]));
    let (status, error) =
        issue(vec![("grant_type", "client_credentials"), ("resource", "billing-api"), ("resource", "https://evil")]).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_target")), "{error}");
    let (_, body) = issue(vec![("grant_type", "client_credentials")]).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], json!(["billing-api", "orders-api"]), "none asked: all");
}

#[tokio::test]
async fn resource_on_refresh_narrows_the_access_token_and_the_refresh_token_keeps_the_grant() {
    let server = server().await;
    let session = server.web_session("alice").await;
    let token = session["refresh_token"].as_str().unwrap();
    // Not an audience of the session: refused, and nothing was consumed.
    let (status, error) = refresh_with(&server, token, &[("resource", "https://evil")]).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_target")), "{error}");
    let (status, narrowed) = refresh_with(&server, token, &[("resource", "billing-api")]).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(claims(narrowed["access_token"].as_str().unwrap())["aud"], "billing-api");
    // A retry inside the grace window gets the very same narrowed token (claims; ES256 signatures differ).
    let (_, again) = refresh_with(&server, token, &[("resource", "billing-api")]).await;
    assert_eq!(claims(again["access_token"].as_str().unwrap()), claims(narrowed["access_token"].as_str().unwrap()));
    let (_, next) = refresh_with(&server, narrowed["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(claims(next["access_token"].as_str().unwrap())["aud"], json!(["orders-api", "billing-api"]));
}

#[tokio::test]
async fn resource_on_session_creation_is_an_audience_request() {
    let server = server().await;
    let body = server.session(json!({"sub": "alice", "client_id": "web", "resource": "billing-api"})).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], "billing-api");
    let body = server.session(json!({"sub": "alice", "client_id": "web", "resource": ["billing-api"], "aud": "orders-api"})).await;
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], json!(["orders-api", "billing-api"]));
    let response = server.create_session(json!({"sub": "alice", "client_id": "web", "resource": "https://evil"})).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_audience", "{problem}");
}

#[tokio::test]
async fn a_subject_must_be_printable_text_and_is_logged_escaped() {
    let server = server().await;
    for sub in ["x\u{202E}gnp.exe", "ad\u{200B}min", "\u{FEFF}alice", "   ", "a\u{2066}b"] {
        let response = server.create_session(json!({"sub": sub, "client_id": "web"})).await;
        assert_eq!(response.status(), 400, "{sub:?}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "sub", "{problem}");
    }
    let refused = reqwest::Client::new()
        .post(server.url("/v1/subjects/x%E2%80%AEy/revoke"))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // A printable subject with a quote is logged in its escaped form.
    let response = reqwest::Client::new()
        .post(server.url("/v1/subjects/zo%C3%AB%20%22q%22/revoke"))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let logs = server.logs();
    assert!(logs.contains(r#"sub="zoë \"q\"""#), "{logs}");
}

#[tokio::test]
async fn logout_everywhere_covers_the_tolerated_clock_skew_and_a_login_right_after_it_works() {
    let server = server().await;
    let earlier = server.web_session("erin").await;
    let asked = now();
    assert_eq!(server.logout_everywhere("erin").await, 204);
    let answered = now();
    let entries = feed_entries(&server).await;
    let before = entries[0]["before"].as_i64().unwrap();
    // tokens.clock_skew defaults to 2 s: tokens a replica 2 s ahead minted before the logout are covered.
    assert!((asked + 2..=answered + 2).contains(&before), "before {before}, asked {asked}, answered {answered}");
    assert!(answered > before, "the answer comes once the covered instant has passed");
    assert!(!server.active(earlier["access_token"].as_str().unwrap()).await);
    // The password-change flow: a new session right after the answer lives.
    let fresh = server.web_session("erin").await;
    assert!(server.active(fresh["access_token"].as_str().unwrap()).await);
}
