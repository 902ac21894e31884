//! Upstream clusters (CDS or static).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::endpoint::LoadAssignment;
use super::tls::UpstreamTls;

/// Envoy's `config.cluster.v3.Cluster` (supported subset).
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Resource name.
    pub name: String,
    /// How endpoints are found.
    pub discovery: Discovery,
    /// Load-balancing policy.
    pub lb_policy: LbPolicy,
    /// TCP connect timeout (Envoy default 5 s).
    pub connect_timeout: Duration,
    /// HTTP protocol towards the upstream.
    pub protocol: UpstreamProtocol,
    /// Upstream TLS, if any.
    pub tls: Option<UpstreamTls>,
    /// Circuit-breaker thresholds of the default priority.
    pub circuit_breakers: CircuitBreakers,
    /// Outlier detection, if enabled.
    pub outlier_detection: Option<OutlierDetection>,
    /// `metadata.filter_metadata`, by filter name (for example `mesh-host.grpc`).
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Inline endpoints (STATIC and DNS clusters).
    pub load_assignment: Option<Arc<LoadAssignment>>,
}

impl Cluster {
    /// The EDS resource this cluster needs, if it is an EDS cluster.
    pub fn eds_service_name(&self) -> Option<&str> {
        match &self.discovery {
            Discovery::Eds { service_name } => Some(service_name),
            _ => None,
        }
    }
}

/// Envoy's cluster discovery type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Endpoints are listed in the cluster.
    Static,
    /// Every address the DNS names resolve to is an endpoint.
    StrictDns,
    /// One address of the DNS name is used per connection.
    LogicalDns,
    /// Endpoints come from EDS under this name (the cluster name when unset).
    Eds {
        /// The `ClusterLoadAssignment` name.
        service_name: String,
    },
}

/// Envoy's `Cluster.LbPolicy` (supported subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Least outstanding requests (power of two choices).
    LeastRequest,
    /// Random.
    Random,
}

/// Which HTTP version the upstream connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (Envoy's default).
    Http1,
    /// HTTP/2 (prior knowledge, or ALPN over TLS).
    Http2,
    /// The downstream request's version.
    UseDownstream,
    /// ALPN-negotiated over TLS, HTTP/1.1 otherwise.
    Auto,
}

/// Envoy's circuit-breaker thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitBreakers {
    /// Maximum connections (default 1024).
    pub max_connections: u32,
    /// Maximum requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Maximum concurrent requests (default 1024).
    pub max_requests: u32,
    /// Maximum concurrent retries (default 3); ignored when `retry_budget`
    /// is set.
    pub max_retries: u32,
    /// Concurrent retries as a share of active and pending requests.
    pub retry_budget: Option<RetryBudget>,
}

/// Envoy's `Thresholds.RetryBudget`: the retries a cluster may have in
/// flight grow with its traffic instead of being a fixed number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// Active retries allowed, in percent of active plus pending requests
    /// (default 20).
    pub budget_percent: f64,
    /// The allowance never drops below this many retries (default 3).
    pub min_retry_concurrency: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
        }
    }
}

/// Envoy's `config.cluster.v3.OutlierDetection` (supported subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (default 5).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 before ejection (default 5).
    pub consecutive_gateway_failure: u32,
    /// Analysis interval (default 10 s).
    pub interval: Duration,
    /// Base ejection time (default 30 s).
    pub base_ejection_time: Duration,
    /// Maximum percentage of ejected hosts (default 10).
    pub max_ejection_percent: u32,
}
