//! What produced a response, recorded as response extensions by whoever produced it so the
//! access log can name it without the pipeline threading it through every call.

use std::sync::Arc;

use super::WorkloadId;

/// Envoy's response flag for a response the host answered itself (`NR`, `UF`, `UAEX`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFlag(pub &'static str);

/// Envoy's response code details of a response (`via_upstream`, `direct_response`, or the
/// reason of a local reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseDetails(pub &'static str);

/// The upstream endpoint (`host:port`) that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHost(pub Arc<str>);

/// The local workload (component) that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedBy(pub WorkloadId);
