//! Runs the Python OTLP/gRPC trace receiver (`tests/otlp/receiver.py`) and reads the spans
//! it received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One span as the receiver wrote it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Lower-case hex.
    pub trace_id: String,
    /// Lower-case hex.
    pub span_id: String,
    /// Lower-case hex, empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `SERVER`, `INTERNAL`, `CLIENT`, ...
    pub kind: String,
    /// Attributes (strings and integers).
    pub attributes: serde_json::Map<String, Value>,
    /// Whether its status is ERROR.
    pub error: bool,
    /// The resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    /// A text attribute, if present.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.attributes.get(key)?.as_str()
    }
}

/// The receiver process; killed on drop.
pub struct OtlpReceiver {
    child: Child,
    /// The port it serves gRPC on (127.0.0.1).
    pub port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl OtlpReceiver {
    /// Starts the receiver and waits until it listens; `None` only when a missing
    /// `opentelemetry-proto` may be skipped (see [`crate::peers`]).
    pub fn start() -> Option<OtlpReceiver> {
        if !crate::peers::require_python_module("grpc")
            || !crate::peers::require_python_module("opentelemetry.proto")
        {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("spans.jsonl");
        let script = crate::workspace_root().join("tests/otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("receiver output");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("receiver did not start: {line:?}"));
        Some(OtlpReceiver {
            child,
            port,
            out,
            _dir: dir,
        })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let Ok(text) = std::fs::read_to_string(&self.out) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("a JSON line");
                let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
                ReceivedSpan {
                    trace_id: text("trace_id"),
                    span_id: text("span_id"),
                    parent_span_id: text("parent_span_id"),
                    name: text("name"),
                    kind: text("kind"),
                    attributes: value["attributes"].as_object().cloned().unwrap_or_default(),
                    error: value["error"].as_bool().unwrap_or(false),
                    service: text("service"),
                }
            })
            .collect()
    }

    /// Waits until at least `count` spans have arrived (or `within` has passed) and returns
    /// them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<ReceivedSpan> {
        let until = Instant::now() + within;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
