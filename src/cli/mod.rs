//! The `tessera` command line: `serve`, `keys …`, `clients …`,
//! `token inspect`, one file per subcommand. Each command loads the same
//! configuration the server would, so `keys list` shows exactly the
//! timeline the server follows.

mod clients;
mod keys;
mod serve;
mod token;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "A stateless JWT token service")]
struct Cli {
    /// Config file (TOML). Default: ./tessera.toml when it exists, else built-in defaults.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the token service.
    Serve {
        /// Development mode: serve the demo page at /demo (with a public
        /// `demo` client) and, on an http://localhost issuer, relax the
        /// refresh cookie's Secure flag and prefix. Never in production.
        #[arg(long)]
        dev: bool,
        /// Start on a store other than the one the key directory worked
        /// with (it was lost or replaced): every token issued before the new
        /// store was created is refused, and users sign in again.
        #[arg(long)]
        accept_new_store: bool,
    },
    /// Manage the key directory.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Look inside tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let path = path.or_else(|| {
        let default = PathBuf::from("tessera.toml");
        default.exists().then_some(default)
    });
    Ok(Config::load(path.as_deref())?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = load_config(cli.config)?;
    match cli.command {
        Command::Serve { dev, accept_new_store } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve::serve(Config { accept_new_store: config.accept_new_store || accept_new_store, ..config }, dev))?;
        }
        Command::Keys(command) => keys::run(&config, command)?,
        Command::Clients(command) => clients::run(&config, command)?,
        Command::Token(command) => return token::run(&config, command),
    }
    Ok(ExitCode::SUCCESS)
}
