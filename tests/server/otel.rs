//! Traces (`--features otel`): a request's W3C `traceparent` arrives in the
//! spans tessera exports over OTLP/HTTP, received here by a small in-process
//! collector that decodes the protobuf export requests.

use crate::helpers::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One exported span: its name, trace id and parent span id (hex).
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    parent: String,
    span_id: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP trace receiver on a free loopback port.
async fn collector() -> (String, Arc<Mutex<Vec<Exported>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
                let mut sink = sink.lock().unwrap();
                for span in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
                    sink.push(Exported {
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        parent: hex(&span.parent_span_id),
                        span_id: hex(&span.span_id),
                    });
                }
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), received)
}

#[tokio::test]
async fn a_traceparent_sent_in_arrives_in_the_exported_spans() {
    let (endpoint, received) = collector().await;
    let server = TestServer::start_with(
        &default_config(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let session = server.web_session("alice").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .post(server.url("/oauth2/token"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .form(&[("grant_type", "refresh_token"), ("client_id", "web"), ("refresh_token", session["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", json!(response.text().await.unwrap()));

    let deadline = Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let spans: Vec<Exported> = received.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        if ["http", "grant", "sign", "store"].iter().all(|name| names.contains(name)) {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans of the trace so far: {spans:?}; logs:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = spans.iter().find(|s| s.name == "http").unwrap();
    assert_eq!(http.parent, caller_span, "the request span is a child of the caller's span");
    let grant = spans.iter().find(|s| s.name == "grant").unwrap();
    assert_eq!(grant.parent, http.span_id, "the grant runs inside the request");
    assert!(spans.iter().any(|s| s.name == "store" && s.parent == grant.span_id), "the store call runs inside the grant: {spans:?}");
}
