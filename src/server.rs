//! Starting and stopping the service: make sure keys exist, load them,
//! bind, say where everything is, serve until SIGTERM/SIGINT, then drain.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::http::{self, AppState};
use crate::keys::{KeyDirectory, Keyring};
use anyhow::Context;
use std::sync::Arc;

/// Run the server until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    crate::keys::provider::install();
    let clock: SharedClock = Arc::new(SystemClock);
    let lifetimes = config.token_lifetimes();
    let directory = KeyDirectory::new(&config.keys_dir);
    let created = directory
        .ensure_keys(config.tokens.algorithm, lifetimes, clock.now())
        .with_context(|| format!("preparing key directory {}", config.keys_dir.display()))?;
    let keyring = Arc::new(
        Keyring::open(directory, lifetimes, clock.clone())
            .with_context(|| format!("loading key directory {}", config.keys_dir.display()))?,
    );

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let issuer = config.issuer_for(addr);
    for meta in &created {
        println!("created {} key {} ({})", if meta.alg == "HS256" { "refresh MAC" } else { "signing" }, meta.kid, meta.alg);
    }
    println!("tessera listening on http://{addr}");
    println!("issuer:   {issuer}");
    println!("keys:     {}", config.keys_dir.display());
    println!("clients:  {}", config.clients.len());
    println!("jwks:     {issuer}/.well-known/jwks.json");

    keyring.clone().spawn_reloader(config.keys.reload_interval);
    let state = AppState::new(config, issuer, keyring);
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
