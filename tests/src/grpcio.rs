//! Runs the Python grpcio client (`tests/grpc/client.py`) and parses what it saw.

use std::collections::BTreeMap;

use tokio::process::Command;

/// The outcome of one grpcio call.
#[derive(Debug)]
pub struct GrpcioOutcome {
    /// The status code name as grpcio reports it (`OK`, `UNIMPLEMENTED`, ...).
    pub code: String,
    /// The status message.
    pub message: String,
    /// Reply messages (`message` of HelloReply, `name` of Features).
    pub replies: Vec<String>,
    /// Trailing metadata.
    pub trailers: BTreeMap<String, String>,
}

/// Calls `client.py` with `args` (for example `--target 127.0.0.1:8080
/// --name world`).
pub async fn call(args: &[&str]) -> GrpcioOutcome {
    assert!(
        crate::peers::require_python_module("grpc_tools"),
        "grpcio-tools is required"
    );
    let script = crate::workspace_root().join("tests/grpc/client.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("run python3");
    assert!(
        output.status.success(),
        "grpcio client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("client.py prints JSON");
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    GrpcioOutcome {
        code: text("code"),
        message: text("message"),
        replies: value["replies"]
            .as_array()
            .map(|replies| {
                replies
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        trailers: value["trailers"]
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
