//! The `mesh-host` binary.

use std::process::ExitCode;

use clap::Parser;
use mesh_host::cli::{Cli, Command};

/// Every request allocates dozens of small blocks across wasmtime, wasi-http
/// and hyper, often freed on another thread than the one that allocated
/// them; glibc's malloc spent 17% of a hello request's instructions on them
/// (benches/load/PROFILE.md). jemalloc cut that by more than half without
/// the resident-memory growth mimalloc showed here.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = mesh_host::app::init_logging();
    let result = match cli.command {
        Command::Run(args) => mesh_host::app::run(*args, logging),
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
