//! The `tessera` command line: `serve`, `keys …`, `clients …`,
//! `token inspect`, one file per subcommand. Each command loads the same
//! configuration the server would, so `keys list` shows exactly the
//! timeline the server follows.

mod clients;
mod config_file;
mod healthcheck;
mod keys;
mod serve;
mod token;

use crate::config::{Config, Loaded};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `tessera --version`: the release and the git revision it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BUILD_GIT_REVISION"), ")");

#[derive(Debug, Parser)]
#[command(name = "tessera", version = VERSION, about = "A stateless JWT token service")]
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
    /// Exit 0 when the running server answers 200 on its management
    /// listener (for container health checks).
    Healthcheck {
        /// The management path to ask: /readyz (readiness) or /healthz (liveness).
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logging's format is a setting: read the configuration first, set up
    // logging, then log what reading it noticed.
    let loaded = load_config(cli.config.clone());
    let _telemetry = crate::telemetry::init(loaded.as_ref().map(|loaded| loaded.config.log_format).unwrap_or_default());
    let result = loaded.and_then(|loaded| {
        loaded.notes.iter().for_each(crate::config::Note::log);
        run(cli, loaded.config)
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config file `--config` names, else `./tessera.toml` when it exists.
fn config_path(path: Option<PathBuf>) -> Option<PathBuf> {
    path.or_else(|| {
        let default = PathBuf::from("tessera.toml");
        default.exists().then_some(default)
    })
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Loaded> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    Ok(Config::read(config_path(path).as_deref(), &env)?)
}

fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { dev, accept_new_store } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let source = crate::app::reload::Source { file: config_path(cli.config), env: std::env::vars().collect() };
            runtime.block_on(serve::serve(
                Config { accept_new_store: config.accept_new_store || accept_new_store, ..config },
                dev,
                source,
            ))?;
        }
        Command::Keys(command) => keys::run(&config, command)?,
        Command::Clients(command) => clients::run(&config, config_path(cli.config), command)?,
        Command::Token(command) => return token::run(&config, command),
        Command::Healthcheck { path } => return healthcheck::run(&config, &path),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("tessera").chain(args.iter().copied()))
            .unwrap_or_else(|error| panic!("{args:?}: {error}"))
            .command
    }

    /// Key ids are RFC 7638 thumbprints and client ids are free text: one in
    /// 64 thumbprints begins with `-`, and the command must still take it.
    #[test]
    fn identifiers_that_begin_with_a_hyphen_are_values_not_flags() {
        let Command::Keys(keys::KeysCommand::Revoke { kid }) = parse(&["keys", "revoke", "-8Dq1x"]) else { panic!() };
        assert_eq!(kid, "-8Dq1x");
        let Command::Keys(keys::KeysCommand::Retire { kid }) = parse(&["keys", "retire", "--x"]) else { panic!() };
        assert_eq!(kid, "--x");
        let Command::Clients(clients::ClientsCommand::Remove { id }) = parse(&["clients", "remove", "--id", "-svc"]) else { panic!() };
        assert_eq!(id, "-svc");
        let Command::Clients(clients::ClientsCommand::RotateSecret { id, json, .. }) =
            parse(&["clients", "rotate-secret", "--id", "-svc", "--json"])
        else {
            panic!()
        };
        assert_eq!((id.as_str(), json), ("-svc", true));
        let Command::Token(token::TokenCommand::Inspect { token, json }) = parse(&["token", "inspect", "-abc.def", "--json"]) else {
            panic!()
        };
        assert_eq!((token.as_deref(), json), (Some("-abc.def"), true));
    }

    /// Taking hyphenated values must not swallow the command's own flags.
    #[test]
    fn flags_are_still_flags() {
        let Command::Token(token::TokenCommand::Inspect { token, json }) = parse(&["token", "inspect", "--json"]) else { panic!() };
        assert_eq!((token, json), (None, true));
        let Command::Token(token::TokenCommand::Inspect { token, json }) = parse(&["token", "inspect", "--json", "-"]) else { panic!() };
        assert_eq!((token.as_deref(), json), (Some("-"), true));
        let help = Cli::try_parse_from(["tessera", "keys", "revoke", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
