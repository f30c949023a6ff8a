//! `tessera serve`: bind the listener, build the app, say where everything
//! is, serve until SIGTERM/SIGINT, then drain; SIGHUP reloads the
//! configuration (see [`crate::app::reload`]).

use crate::app::reload::{self, Source};
use crate::app::{App, Options};
use crate::config::Config;
use anyhow::Context;

/// Run the server until a shutdown signal.
pub async fn serve(config: Config, dev: bool, source: Source) -> anyhow::Result<()> {
    // Caught from the start: SIGHUP's default action would end the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("catching SIGHUP")?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let management = tokio::net::TcpListener::bind(config.management_listen)
        .await
        .with_context(|| format!("binding the management listener {} (management.listen)", config.management_listen))?;
    let management_addr = management.local_addr()?;
    let keys_dir = config.keys_dir.clone();
    let app = App::build(config, Options { dev, bound: Some(addr), ..Options::default() }).await?;
    for meta in &app.created_keys {
        println!("created {} key {} ({})", if meta.alg == "HS256" { "refresh MAC" } else { "signing" }, meta.kid, meta.alg);
    }
    let state = app.state();
    let issuer = state.issuer().to_string();
    println!("tessera listening on http://{addr}");
    println!("issuer:   {issuer}");
    println!("keys:     {}", keys_dir.display());
    println!("store:    {}", state.authority.describe_store());
    println!("clients:  {}", state.config().clients.len());
    println!("jwks:     {issuer}/.well-known/jwks.json");
    println!("management on http://{management_addr} (/metrics, /readyz, /healthz)");
    if dev {
        println!("demo:     {issuer}/demo  (development mode: never expose this)");
        if crate::http::browser::is_local_http(&issuer) {
            tracing::warn!(
                "development mode on http://localhost: the refresh cookie is sent without Secure and without the __Secure- prefix"
            );
        }
    }
    let reloader = tokio::spawn(reload::on_hangup(state.clone(), source, hangups));
    app.serve(listener, management, shutdown_signal()).await;
    reloader.abort();
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
