//! What a workload's outbound requests carry of the trace they belong to.

use serde::Deserialize;

/// `tracing: { inject_traceparent }` of a workload's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingPolicy {
    /// The host writes `traceparent` (and `tracestate`) into each outbound request the
    /// component makes, naming the request's client span as the parent, replacing any copy
    /// the component made (default). `false` leaves the component's headers exactly as it
    /// wrote them; the client span is still recorded.
    pub inject_traceparent: bool,
}

impl Default for TracingPolicy {
    fn default() -> Self {
        Self {
            inject_traceparent: true,
        }
    }
}
