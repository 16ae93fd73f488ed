//! Modelgate control plane: the source of truth for teams and keys, the policy snapshots
//! filters poll, the usage they report, the admin gRPC API and the `modelgate` CLI.
//!
//! Lint policy: the workspace's (`[workspace.lints]`): no `unsafe`, no unwrap/expect/panic
//! outside tests.

pub mod cli;
pub mod clock;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod master_key;
pub mod server;
pub mod snapshot;
pub mod store;

use cli::{Cli, CliError, Command};
use server::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Cli(#[from] CliError),
}

/// Runs one invocation of the `modelgate` binary.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Serve(args) => {
            server::serve(args.into_config(&cli.global), server::shutdown_signal()).await?;
        }
        Command::Team(command) => cli::run_team(&cli.global, command).await?,
        Command::Key(command) => cli::run_key(&cli.global, command).await?,
    }
    Ok(())
}

/// Logs go to stderr (stdout carries command output and the "listening" lines). `RUST_LOG`
/// overrides the default level: `info` for the server, `warn` for admin commands.
pub fn init_tracing(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = if command.is_serve() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
