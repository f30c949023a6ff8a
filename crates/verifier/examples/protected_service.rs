//! A microservice that accepts only tessera access tokens.
//!
//! ```text
//! cargo run -p tessera-verifier --example protected_service -- http://127.0.0.1:8080 orders-api
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:3000/orders
//! ```
//!
//! Arguments (or `ISSUER_URL`, `AUDIENCE`, `LISTEN` in the environment):
//! the issuer URL, the audience this service answers to, and the loopback
//! address to listen on (default 127.0.0.1:3000). `GET /orders` needs the
//! scope `orders:read`, `POST /orders` `orders:write`; `GET /healthz` is
//! open. Tokens are verified offline with the issuer's JWKS, and revocations
//! arrive through its feed — which tessera serves only to a confidential
//! client with the `read_revocations` permission unless `feed.public =
//! true`: set `FEED_CLIENT_ID` and `FEED_CLIENT_SECRET` to read it as one.

use axum::Router;
use axum::handler::Handler;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_verifier::{RequireBearer, VerifiedToken, Verifier};

fn setting(position: usize, name: &str, default: Option<&str>) -> Result<String, String> {
    std::env::args()
        .nth(position)
        .or_else(|| std::env::var(name).ok())
        .or_else(|| default.map(str::to_string))
        .ok_or_else(|| format!("usage: protected_service <issuer-url> <audience> [listen] (or set {name})"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = setting(1, "ISSUER_URL", None)?;
    let audience = setting(2, "AUDIENCE", None)?;
    let listen = setting(3, "LISTEN", Some("127.0.0.1:3000"))?;

    let mut builder = Verifier::builder().issuer(&issuer).audience(&audience);
    if let (Ok(id), Ok(secret)) = (std::env::var("FEED_CLIENT_ID"), std::env::var("FEED_CLIENT_SECRET")) {
        builder = builder.feed_credentials(id, secret);
    }
    let verifier = builder.build().await?;
    let read = RequireBearer::new(verifier.clone()).scopes(&["orders:read"]);
    let write = RequireBearer::new(verifier).scopes(&["orders:write"]);
    let app = Router::new()
        .route("/orders", get(list_orders.layer(read)).post(create_order.layer(write)))
        .route("/healthz", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("protected_service listening on http://{} (issuer {issuer}, audience {audience})", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn list_orders(VerifiedToken(claims): VerifiedToken) -> axum::Json<Value> {
    axum::Json(json!({ "sub": claims.sub, "client_id": claims.client_id, "orders": [] }))
}

async fn create_order(VerifiedToken(claims): VerifiedToken) -> (axum::http::StatusCode, axum::Json<Value>) {
    (axum::http::StatusCode::CREATED, axum::Json(json!({ "created_by": claims.sub })))
}
