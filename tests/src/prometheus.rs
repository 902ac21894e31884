//! Prometheus text read by the reference parser (Python's `prometheus_client`), so a test
//! sees the exposition as a scraper does, not as a regular expression does.

use std::io::Write;
use std::process::{Command, Stdio};

/// One sample: its name, its labels (sorted by name) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name (a counter's carries `_total`).
    pub name: String,
    /// `(label, value)` pairs, sorted by label.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type})
print(json.dumps(out))
"#;

/// Every sample of `text`, parsed by `prometheus_client`; panics with the parser's error when
/// the text is not valid exposition. `None` only when a missing parser may be skipped.
pub fn parse(text: &str) -> Option<Vec<Sample>> {
    if !crate::peers::require_python_module("prometheus_client") {
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write exposition");
    let output = child.wait_with_output().expect("python3 output");
    assert!(
        output.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("parser output");
    Some(
        parsed
            .into_iter()
            .map(|sample| {
                let mut labels: Vec<(String, String)> = sample["labels"]
                    .as_object()
                    .map(|labels| {
                        labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.sort();
                Sample {
                    name: sample["name"].as_str().unwrap_or_default().to_owned(),
                    labels,
                    value: sample["value"].as_f64().unwrap_or(f64::NAN),
                }
            })
            .collect(),
    )
}

/// The value of the sample `name` whose labels include every pair of `labels`; `None` when
/// there is none.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|sample| sample.value)
}
