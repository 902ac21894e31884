//! `soak --duration 30m`: runs the soak harness ([`mesh_host_tests::soak`]) and prints its
//! report as Markdown; exits non-zero when a request failed unexpectedly or memory grew
//! by 5 % or more after the warm-up.

use std::process::ExitCode;
use std::time::Duration;

/// `90s`, `30m`, `1h` or a number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let count: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "" | "s" => count,
        "m" => count * 60,
        "h" => count * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let duration = match args.as_slice() {
        [flag, value] if flag == "--duration" => parse_duration(value),
        [] => Some(Duration::from_secs(30 * 60)),
        _ => None,
    };
    let Some(duration) = duration else {
        eprintln!("usage: soak [--duration 30m]  (s, m or h; at least 1m)");
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
