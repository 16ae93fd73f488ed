//! `modelgate`: the control plane server (`modelgate serve`) and its admin CLI.

use std::process::ExitCode;

use clap::Parser;
use modelgate_control_plane::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    modelgate_control_plane::init_tracing(&cli.command);
    match modelgate_control_plane::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
