//! Size, time, concurrency and memory limits of a workload, and the gRPC
//! deadline rules.
//!
//! YAML takes human-friendly values: sizes as `"10MiB"`, `"64KiB"`,
//! `"1.5GB"` or a plain number of bytes; durations as `"30s"`, `"500ms"`,
//! `"5m"` (parsed by the `bytesize` and `humantime` crates).

mod grpc_timeout;

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use grpc_timeout::{GrpcTimeoutError, effective_deadline, parse_grpc_timeout};

use crate::PolicyConfigErrors;

/// Default largest request body: 10 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Default largest request head (all header lines): 64 KiB.
pub const DEFAULT_MAX_REQUEST_HEADER_BYTES: u64 = 64 * 1024;
/// Default request timeout: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a client's `grpc-timeout`: 5 min.
pub const DEFAULT_MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of requests a workload handles at once: 1000.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 1000;
/// Default linear memory per component instance: 128 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;

/// A workload's limits, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger bodies are refused with 413.
    pub max_request_body_bytes: u64,
    /// Largest request head (request line and headers) accepted.
    pub max_request_header_bytes: u64,
    /// Time a request may take when its route sets no timeout.
    pub request_timeout: Duration,
    /// Cap on the client's `grpc-timeout`.
    pub max_request_timeout: Duration,
    /// Requests handled at once; more wait or are shed by the host.
    pub max_concurrent_requests: u32,
    /// Memory per component instance.
    pub memory_bytes: u64,
    /// The workload's share of the host's memory budget: linear memory all
    /// its instances together may hold. `None`: only the host's budget.
    pub memory_budget_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_request_header_bytes: DEFAULT_MAX_REQUEST_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_timeout: DEFAULT_MAX_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            memory_budget_bytes: None,
        }
    }
}

impl Limits {
    /// The deadline of one request: the route's timeout (or
    /// `request_timeout`), or the client's `grpc-timeout` capped at
    /// `max_request_timeout`. See [`effective_deadline`].
    pub fn deadline(
        &self,
        route_timeout: Option<Duration>,
        grpc_timeout: Option<Duration>,
    ) -> Duration {
        effective_deadline(
            route_timeout.unwrap_or(self.request_timeout),
            grpc_timeout,
            self.max_request_timeout,
        )
    }

    /// Validates raw configuration, reporting every bad entry under `limits`.
    pub fn from_config(config: &LimitsConfig) -> Result<Limits, PolicyConfigErrors> {
        let mut errors = PolicyConfigErrors::default();
        let limits = config.compile("limits", &mut errors);
        errors.into_result(limits)
    }
}

/// A size or duration as written: a number or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HumanValue {
    /// A bare number (bytes, for sizes; refused for durations).
    Number(i64),
    /// Text with a unit, such as `"10MiB"` or `"30s"`.
    Text(String),
}

/// The `limits` section of a workload policy, as written. Omitted keys
/// keep their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body, for example `"10MiB"`.
    pub max_request_body_bytes: Option<HumanValue>,
    /// Largest request head, for example `"64KiB"`.
    pub max_request_header_bytes: Option<HumanValue>,
    /// Default request timeout, for example `"30s"`.
    pub request_timeout: Option<HumanValue>,
    /// Cap on a client's `grpc-timeout`, for example `"5m"`.
    pub max_request_timeout: Option<HumanValue>,
    /// Requests handled at once.
    pub max_concurrent_requests: Option<i64>,
    /// Memory per component instance, for example `"128MiB"`.
    #[serde(alias = "memory_bytes")]
    pub memory: Option<HumanValue>,
    /// Memory all the workload's instances may hold at once, for example
    /// `"512MiB"`: its share of the host's `--memory-budget`.
    pub memory_budget: Option<HumanValue>,
}

impl LimitsConfig {
    pub(crate) fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> Limits {
        let d = Limits::default();
        let at = |key: &str| format!("{path}.{key}");
        let mut limits = Limits {
            max_request_body_bytes: size(
                self.max_request_body_bytes.as_ref(),
                &at("max_request_body_bytes"),
                errors,
            )
            .unwrap_or(d.max_request_body_bytes),
            max_request_header_bytes: size(
                self.max_request_header_bytes.as_ref(),
                &at("max_request_header_bytes"),
                errors,
            )
            .unwrap_or(d.max_request_header_bytes),
            request_timeout: duration(
                self.request_timeout.as_ref(),
                &at("request_timeout"),
                errors,
            )
            .unwrap_or(d.request_timeout),
            max_request_timeout: duration(
                self.max_request_timeout.as_ref(),
                &at("max_request_timeout"),
                errors,
            )
            .unwrap_or(d.max_request_timeout),
            max_concurrent_requests: d.max_concurrent_requests,
            memory_bytes: size(self.memory.as_ref(), &at("memory"), errors)
                .unwrap_or(d.memory_bytes),
            memory_budget_bytes: size(self.memory_budget.as_ref(), &at("memory_budget"), errors),
        };
        if let Some(n) = self.max_concurrent_requests {
            match u32::try_from(n) {
                Ok(n) if n > 0 => limits.max_concurrent_requests = n,
                _ => errors.push(
                    at("max_concurrent_requests"),
                    format!("{n} is not a positive number of requests"),
                ),
            }
        }
        if limits.request_timeout > limits.max_request_timeout {
            errors.push(
                at("request_timeout"),
                format!(
                    "request_timeout ({}) is longer than max_request_timeout ({}); raise max_request_timeout or lower request_timeout",
                    humantime::format_duration(limits.request_timeout),
                    humantime::format_duration(limits.max_request_timeout),
                ),
            );
        }
        limits
    }
}

/// Parses a positive size: bytes as a number, or text like `"10MiB"`.
fn size(value: Option<&HumanValue>, path: &str, errors: &mut PolicyConfigErrors) -> Option<u64> {
    let bytes = match value? {
        HumanValue::Number(n) => u64::try_from(*n).ok(),
        HumanValue::Text(text) => text.parse::<ByteSize>().ok().map(|b| b.as_u64()),
    };
    match bytes {
        Some(b) if b > 0 => Some(b),
        _ => {
            let shown = match value? {
                HumanValue::Number(n) => n.to_string(),
                HumanValue::Text(t) => format!("{t:?}"),
            };
            errors.push(path, format!("{shown} is not a positive size; write bytes or a size with a unit, for example \"10MiB\" or \"64KiB\""));
            None
        }
    }
}

/// Parses a positive duration with a unit, like `"30s"` or `"500ms"`.
pub(crate) fn duration(
    value: Option<&HumanValue>,
    path: &str,
    errors: &mut PolicyConfigErrors,
) -> Option<Duration> {
    match value? {
        HumanValue::Number(n) => {
            errors.push(
                path,
                format!("{n} has no unit; write a duration such as \"{n}s\" or \"{n}ms\""),
            );
            None
        }
        HumanValue::Text(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                errors.push(path, "must be longer than zero");
                None
            }
            Err(e) => {
                errors.push(path, format!("{text:?} is not a duration ({e}); write for example \"30s\", \"500ms\" or \"5m\""));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Limits, PolicyConfigErrors> {
        Limits::from_config(&serde_yaml::from_str(yaml).expect("valid yaml"))
    }

    #[test]
    fn limits_have_documented_defaults() {
        let l = parse("{}").expect("valid");
        assert_eq!(l, Limits::default());
        assert_eq!(l.max_request_body_bytes, 10 * 1024 * 1024);
        assert_eq!(l.max_request_header_bytes, 64 * 1024);
        assert_eq!(l.request_timeout, Duration::from_secs(30));
        assert_eq!(l.max_request_timeout, Duration::from_secs(300));
        assert_eq!(l.max_concurrent_requests, 1000);
        assert_eq!(l.memory_bytes, 128 * 1024 * 1024);
        assert_eq!(l.memory_budget_bytes, None);
    }

    #[test]
    fn a_memory_budget_is_a_positive_size() {
        let l = parse("{ memory_budget: \"512MiB\" }").expect("valid");
        assert_eq!(l.memory_budget_bytes, Some(512 * 1024 * 1024));
        assert!(parse("{ memory_budget: 0 }").is_err());
    }

    #[test]
    fn limits_accept_human_friendly_values() {
        let l = parse(
            "{ max_request_body_bytes: \"1MiB\", max_request_header_bytes: 8192, request_timeout: \"500ms\", \
             max_request_timeout: \"2m\", max_concurrent_requests: 10, memory: \"64 MiB\" }",
        )
        .expect("valid");
        assert_eq!(l.max_request_body_bytes, 1024 * 1024);
        assert_eq!(l.max_request_header_bytes, 8192);
        assert_eq!(l.request_timeout, Duration::from_millis(500));
        assert_eq!(l.max_request_timeout, Duration::from_secs(120));
        assert_eq!(l.max_concurrent_requests, 10);
        assert_eq!(l.memory_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn decimal_units_are_powers_of_ten() {
        let l =
            parse("{ max_request_body_bytes: \"10MB\", memory_bytes: \"1GiB\" }").expect("valid");
        assert_eq!(l.max_request_body_bytes, 10_000_000);
        assert_eq!(l.memory_bytes, 1 << 30);
    }

    #[test]
    fn every_bad_limit_is_reported_with_its_path() {
        let err = parse(
            "{ max_request_body_bytes: \"10 parsecs\", max_request_header_bytes: 0, request_timeout: 30, \
             max_request_timeout: \"soon\", max_concurrent_requests: -1, memory: \"0B\" }",
        )
        .expect_err("invalid");
        let paths: Vec<_> = err.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "limits.max_request_body_bytes",
                "limits.max_request_header_bytes",
                "limits.request_timeout",
                "limits.max_request_timeout",
                "limits.memory",
                "limits.max_concurrent_requests",
            ]
        );
    }

    #[test]
    fn request_timeout_may_not_exceed_its_cap() {
        let err = parse("{ request_timeout: \"10m\" }").expect_err("invalid");
        assert_eq!(err.errors[0].path, "limits.request_timeout");
        assert!(err.errors[0].message.contains("max_request_timeout"));
    }

    #[test]
    fn unknown_limit_keys_are_rejected() {
        assert!(serde_yaml::from_str::<LimitsConfig>("{ max_body: 1 }").is_err());
    }

    #[test]
    fn deadline_uses_route_then_default_then_capped_grpc_timeout() {
        let l = Limits::default();
        assert_eq!(l.deadline(None, None), Duration::from_secs(30));
        assert_eq!(
            l.deadline(Some(Duration::from_secs(5)), None),
            Duration::from_secs(5)
        );
        assert_eq!(
            l.deadline(None, Some(Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
    }
}
