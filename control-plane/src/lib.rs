//! Modelgate control plane: the source of truth for teams, keys, users, model routes and
//! budgets, the policy snapshots filters poll, the usage they report, the admin APIs (gRPC and
//! LiteLLM-compatible REST) and the `modelgate` CLI.
//!
//! Lint policy: the workspace's (`[workspace.lints]`): no `unsafe`, no unwrap/expect/panic
//! outside tests.
//!
//! Where things live:
//! - [`domain`]: teams, keys, users, model routes, usage, the rules for valid input and for
//!   applying changes; [`limits`] (rate limits, budgets, a key only narrowing its team),
//!   [`budget`] (rolling and calendar windows), [`allowlist`] (segment-safe wildcards);
//!   [`keys`] mints and hashes virtual keys and parses expiry; [`assertion`] marks service
//!   keys that may name their end user (Open WebUI); [`clock`] has timestamps and
//!   `30d`-style durations.
//! - [`store`]: one trait per concern (`TeamStore`, `KeyStore`, `UserStore`, `ModelStore`,
//!   `SpendStore`, `UsageStore`, `PolicyStore`), SQL written once in `store/sql.rs` and run by
//!   SQLite and PostgreSQL, migrations per backend in `store/migrations/`. A new policy table
//!   or column: add migration `000N_…` for both backends, extend a trait and the shared SQL,
//!   bump the version in the same transaction, then add a case to `tests/store.rs` (it runs
//!   against both backends).
//! - [`spend`]: each budget's spend in its current window, followed from the usage records;
//!   resets windows on time and bumps the policy version when a budget's state changes.
//! - [`snapshot`]: the `PolicySnapshot` filters poll, built once per policy version.
//! - [`admin`]: the admin operations behind both [`grpc`]'s `AdminService` and [`rest`].
//! - [`dataplane`]: the tokens Envoys present to `PolicyService`, minted and revoked by admins.
//! - [`authz`]: the caller of an admin call, the roles and the one authorization rule;
//!   [`admin_key`]: the per-person admin credentials (`mgak-…`) that carry a role.
//! - [`grpc`]: `AdminService` and `AuditService` (admin keys or the master key, by role) and
//!   `PolicyService` (data plane), reflection.
//! - [`server`] (`modelgate serve`), [`http`] (`/ready`, `/healthz`, the REST API), [`cli`]
//!   (admin commands); [`tls`] (the listeners' TLS and mTLS, the CLI's TLS connection, the
//!   process's rustls provider).

pub mod admin;
pub mod admin_key;
/// The allowlist rules the filter enforces, shared with it.
pub use modelgate_allowlist as allowlist;
pub mod assertion;
pub mod audit;
pub mod authz;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod dataplane;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod master_key;
pub mod named_budget;
pub mod rest;
pub mod review;
pub mod server;
pub mod snapshot;
pub mod spend;
pub mod store;
pub mod tls;

use cli::{AuditCliError, Cli, CliError, Command};
use server::ServeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(transparent)]
    Redact(#[from] cli::redact::RedactError),
    #[error(transparent)]
    Audit(#[from] AuditCliError),
}

/// Runs one invocation of the `modelgate` binary.
pub async fn run(cli: Cli) -> Result<(), Error> {
    // Before any library (sqlx, reqwest) asks rustls for its provider.
    tls::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => {
            server::serve(args.into_config(&cli.global), server::shutdown_signal()).await?;
        }
        Command::Team(command) => cli::run_team(&cli.global, command).await?,
        Command::Key(command) => cli::run_key(&cli.global, command).await?,
        Command::User(command) => cli::run_user(&cli.global, command).await?,
        Command::Model(command) => cli::run_model(&cli.global, command).await?,
        Command::Budget(command) => cli::run_budget(&cli.global, command).await?,
        Command::Spend(args) => cli::run_spend(&cli.global, args).await?,
        Command::Idp(command) => cli::run_idp(&cli.global, command).await?,
        Command::Redact(args) => cli::redact::run(args)?,
        Command::Audit(command) => cli::run_audit(&cli.global, command).await?,
        Command::Dataplane(command) => cli::run_dataplane(&cli.global, command).await?,
        Command::AdminKey(command) => cli::run_admin_key(&cli.global, command).await?,
        Command::Review(args) => cli::run_review(&cli.global, args).await?,
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
