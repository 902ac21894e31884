//! The `mesh-host` binary.

use std::process::ExitCode;

use clap::Parser;
use mesh_host::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    mesh_host::app::init_logging();
    let result = match cli.command {
        Command::Run(args) => mesh_host::app::run(*args),
        Command::Validate(args) => mesh_host::app::validate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
