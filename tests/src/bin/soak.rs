//! `soak --duration 30m`: runs the soak harness ([`mesh_host_tests::soak`]) and prints its
//! report as Markdown; exits non-zero when a request failed unexpectedly, memory grew by
//! 5 % or more after the warm-up, or a fault did not happen.

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: soak [--duration 30m]  (humantime: 90s, 30m, 1h; at least 1m)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let duration = match args.as_slice() {
        [flag, value] if flag == "--duration" => humantime::parse_duration(value).ok(),
        [] => Some(Duration::from_secs(30 * 60)),
        _ => None,
    };
    let Some(duration) = duration else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let report = mesh_host_tests::soak::run(duration).await;
    println!("{}", report.markdown());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
