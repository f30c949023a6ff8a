//! The revocation feed under load and abuse: who may read it, documents in
//! pages signed once per change, a verifier that starts on a list longer
//! than a page ([`streams`]: the event stream's memory, caps and slow
//! readers).
//!
//! Large lists are written straight into the server's store file before it
//! starts ([`prefilled`]), tens of thousands of entries in a second, where
//! logging that many sessions out over HTTP would take minutes.

mod streams;

use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tessera::revocations::{Covers, Revocation};
use tessera::store::Store;
use tessera::store::embedded::EmbeddedStore;
use tessera_verifier::{RevocationKind, Verifier, VerifyError};

/// A server directory whose store holds `count` session revocations, each
/// good for a day.
pub async fn prefilled(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(tessera::metrics::Metrics::new(&[]));
    let store = EmbeddedStore::open(&dir.path().join("data/tessera.redb"), metrics, Arc::new(tessera::clock::SystemClock)).unwrap();
    let until = chrono::Utc::now().timestamp() + 86_400;
    let sids: Vec<String> = (0..count).map(|i| format!("prefilled-{i:08}")).collect();
    for chunk in sids.chunks(10_000) {
        let batch = chunk.iter().map(|sid| Revocation::new(Covers::Session { sid: sid.clone() }, until)).collect();
        assert_eq!(store.revoke(batch).await.unwrap().len(), chunk.len());
    }
    drop(store);
    // The writer thread lets go of the file as soon as its queue closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    dir
}

/// The claims of a compact JWS, unverified.
fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// GET a feed document as the login backend (which may read the feed).
async fn get_document(server: &TestServer, query: &str) -> reqwest::Response {
    let url = server.url(&format!("/v1/revocations{query}"));
    reqwest::Client::new().get(url).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).send().await.unwrap()
}

/// A count from the Prometheus text, 0 when the series is absent.
fn counter(metrics: &str, series: &str) -> u64 {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn the_feed_is_private_by_default_and_needs_the_read_revocations_permission() {
    let server = TestServer::start_with(&config_with_feed(""), &[]).await;
    let client = reqwest::Client::new();
    for path in ["/v1/revocations", "/v1/revocations/stream"] {
        let anonymous = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert!(anonymous.headers().contains_key("www-authenticate"));
        let unpermitted = client.get(server.url(path)).basic_auth(SERVICE_ID, Some(SERVICE_SECRET)).send().await.unwrap();
        assert_eq!(unpermitted.status(), 403, "{path}");
        let body: Value = unpermitted.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains("read_revocations"), "{body}");
        let permitted = client.get(server.url(path)).basic_auth(BACKEND_ID, Some(BACKEND_SECRET)).send().await.unwrap();
        assert_eq!(permitted.status(), 200, "{path}");
    }
    assert_eq!(get_document(&server, "").await.headers()["cache-control"], "private, no-store");
}

#[tokio::test]
async fn pages_hold_every_entry_once_in_order_and_link_to_the_next() {
    let dir = prefilled(250).await;
    let server = TestServer::start_in(dir, &config_with_feed(""), &[]).await;
    let mut seqs: Vec<u64> = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    let mut logged_out = None;
    loop {
        let response = get_document(&server, &format!("?after={cursor}&limit=40")).await;
        assert_eq!(response.status(), 200);
        let link = response.headers().get("link").map(|v| v.to_str().unwrap().to_string());
        let claims = claims_of(&response.text().await.unwrap());
        let entries = claims["revocations"].as_array().unwrap();
        assert!(entries.len() <= 40, "a page holds at most `limit` entries");
        assert_eq!(claims["after"], cursor);
        let next = claims["cursor"].as_u64().unwrap();
        let more = claims["more"].as_bool().expect("every page says whether more follow");
        assert!(next >= cursor, "the cursor never moves back");
        seqs.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
        pages += 1;
        if more {
            assert_eq!(entries.len(), 40, "only the last page is short");
            assert_eq!(next, seqs[seqs.len() - 1], "a full page resumes after its last entry");
            assert_eq!(link, Some(format!("<{}/v1/revocations?after={next}&limit=40>; rel=\"next\"", server.base)));
        } else {
            assert_eq!(link, None, "the last page links nowhere");
        }
        if pages == 2 {
            // Recorded while the list is being read: a later page brings it.
            let session = server.web_session("paged").await;
            assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
            logged_out = Some(session["session_id"].as_str().unwrap().to_string());
        }
        cursor = next;
        if !more {
            let last = entries.last().unwrap();
            assert_eq!(last["sid"].as_str(), logged_out.as_deref(), "the entry recorded meanwhile ends the last page");
            break;
        }
    }
    assert_eq!(seqs.len(), 251, "every entry, the one recorded meanwhile included");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    assert_eq!(pages, 7);
    let past = claims_of(&get_document(&server, &format!("?after={cursor}")).await.text().await.unwrap());
    assert_eq!((past["revocations"].as_array().unwrap().len(), past["more"].as_bool()), (0, Some(false)));
}

#[tokio::test]
async fn a_limit_out_of_range_is_refused_and_the_configured_page_size_applies() {
    let server = TestServer::start_in(prefilled(30).await, &config_with_feed("page_size = 12"), &[]).await;
    for limit in ["0", "10001", "ten", "-1"] {
        let response = get_document(&server, &format!("?limit={limit}")).await;
        assert_eq!(response.status(), 400, "limit={limit}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body: Value = response.json().await.unwrap();
        assert_eq!((body["code"].as_str(), body["field"].as_str()), (Some("invalid_limit"), Some("limit")), "{body}");
    }
    let first = claims_of(&get_document(&server, "").await.text().await.unwrap());
    assert_eq!(first["revocations"].as_array().unwrap().len(), 12);
    assert_eq!(first["more"], true);
    let whole = claims_of(&get_document(&server, "?limit=10000").await.text().await.unwrap());
    assert_eq!(whole["revocations"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn an_unchanged_list_is_served_as_the_same_signed_bytes_until_it_changes() {
    let server = TestServer::start_in(prefilled(20).await, &config_with_feed(""), &[]).await;
    let first = get_document(&server, "?limit=50").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let first = first.text().await.unwrap();
    // Past a second boundary, a fresh signature would carry another iat.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = get_document(&server, "?limit=50").await.text().await.unwrap();
    assert_eq!(second, first, "the page was not signed again: same bytes, iat included");
    let (_, claims) = verify_with_ring(&first, &server.jwks().await);
    assert_eq!(claims["iss"], server.base);

    let revalidated = reqwest::Client::new()
        .get(server.url("/v1/revocations?limit=50"))
        .basic_auth(BACKEND_ID, Some(BACKEND_SECRET))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    let session = server.web_session("changes-the-list").await;
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    let changed = get_document(&server, "?limit=50").await;
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag, "a new entry, a new tag");
    let changed = changed.text().await.unwrap();
    assert_ne!(changed, first);
    assert_eq!(claims_of(&changed)["revocations"].as_array().unwrap().len(), 21);
    assert_eq!(get_document(&server, "?limit=50").await.text().await.unwrap(), changed, "and signed once for that change");
}

#[tokio::test]
async fn a_verifier_refused_a_stream_starts_from_the_pages_of_a_long_list_and_sees_its_last_entry() {
    let dir = prefilled(2_500).await;
    let config = config_with_feed("public = true\nmax_streams_per_peer = 1");
    let server = TestServer::start_in(dir, &config, &[]).await;
    let session = server.session(json!({"sub": "last-page", "aud": "backend-api"})).await;
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(server.logout(session["session_id"].as_str().unwrap()).await, 204);
    // This address's one stream is taken, so the verifier must page.
    let _held = streams::RawStream::open(&server, "127.0.0.1", None, None).await;

    let verifier = Verifier::builder()
        .issuer(&server.base)
        .audience("backend-api")
        .feed_page_size(100)
        .build()
        .await
        .expect("a verifier starts on a list longer than a page");
    assert_eq!(verifier.verify(token).await.unwrap_err(), VerifyError::Revoked(RevocationKind::Session));

    let metrics = server.metrics().await;
    let refused = counter(&metrics, r#"tessera_http_requests_total{method="GET",route="/v1/revocations/stream",status="4xx"}"#);
    let pages = counter(&metrics, r#"tessera_http_requests_total{method="GET",route="/v1/revocations",status="2xx"}"#);
    assert!(refused >= 1, "the verifier's stream was refused:\n{metrics}");
    assert!(pages >= 26, "2 501 entries in pages of 100 take 26 documents, {pages} were read");
}
