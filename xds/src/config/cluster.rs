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
    /// Pick a locality by its weight first, then an endpoint in it
    /// (`locality_weighted_lb_config`).
    pub locality_weighted: bool,
    /// Below this percentage of usable endpoints in a priority, balance over all of them
    /// (Envoy's panic mode; default 50).
    pub healthy_panic_threshold: f64,
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
    /// Active health checking, if configured.
    pub health_check: Option<HealthCheck>,
    /// With active health checks, an endpoint removed by discovery goes at once instead of
    /// staying while it passes its checks.
    pub ignore_health_on_host_removal: bool,
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

/// Envoy's load-balancing policies (the `lb_policy` enum or the `load_balancing_policy`
/// extensions), with their settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Least outstanding requests.
    LeastRequest {
        /// Random candidates compared per pick (default 2).
        choice_count: u32,
        /// How strongly active requests count against the weight when weights differ
        /// (default 1.0).
        active_request_bias: f64,
        /// Compare every endpoint instead of random candidates.
        full_scan: bool,
    },
    /// Weighted random.
    Random,
    /// Consistent hashing on a ring of points (the route's hash policy gives the key).
    RingHash {
        /// Smallest ring (default 1024).
        minimum_ring_size: u64,
        /// Largest ring (default 8M).
        maximum_ring_size: u64,
    },
    /// Consistent hashing with a maglev lookup table.
    Maglev {
        /// Table size, a prime (default 65537).
        table_size: u64,
    },
}

impl LbPolicy {
    /// Least request with Envoy's defaults.
    pub const LEAST_REQUEST: Self = Self::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
        full_scan: false,
    };
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
    /// Maximum connections to any one endpoint (`per_host_thresholds`), if limited.
    pub per_host_max_connections: Option<u32>,
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
            per_host_max_connections: None,
        }
    }
}

/// Envoy's `config.cluster.v3.OutlierDetection` (consecutive-failure ejection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (default 5).
    pub consecutive_5xx: u32,
    /// Percentage of such ejections enforced (default 100).
    pub enforcing_consecutive_5xx: u32,
    /// Consecutive 502/503/504 before ejection (default 5).
    pub consecutive_gateway_failure: u32,
    /// Percentage of such ejections enforced (default 0: off).
    pub enforcing_consecutive_gateway_failure: u32,
    /// Count connect failures, resets and timeouts apart from upstream 5xx.
    pub split_external_local_origin_errors: bool,
    /// Consecutive local-origin failures before ejection when split (default 5).
    pub consecutive_local_origin_failure: u32,
    /// Percentage of such ejections enforced (default 100).
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Analysis interval (default 10 s).
    pub interval: Duration,
    /// Base ejection time (default 30 s).
    pub base_ejection_time: Duration,
    /// Longest ejection (default 300 s).
    pub max_ejection_time: Duration,
    /// Maximum percentage of ejected hosts (default 10).
    pub max_ejection_percent: u32,
}

/// Envoy's `config.core.v3.HealthCheck`: active checks of every endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time allowed for one check.
    pub timeout: Duration,
    /// Time between checks.
    pub interval: Duration,
    /// Random extra time added to each interval, up to this.
    pub interval_jitter: Duration,
    /// Random extra time added to each interval, up to this percentage of it.
    pub interval_jitter_percent: u32,
    /// Random delay before the first check, up to this.
    pub initial_jitter: Duration,
    /// Failures in a row that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes in a row that make an unhealthy endpoint healthy (one at start).
    pub healthy_threshold: u32,
    /// Interval while the cluster has had no traffic (default 60 s).
    pub no_traffic_interval: Duration,
    /// Interval for healthy endpoints while the cluster has had no traffic.
    pub no_traffic_healthy_interval: Option<Duration>,
    /// Interval for unhealthy endpoints (default `interval`).
    pub unhealthy_interval: Option<Duration>,
    /// Interval right after an endpoint became unhealthy (default `unhealthy_interval`).
    pub unhealthy_edge_interval: Option<Duration>,
    /// Interval right after an endpoint became healthy (default `interval`).
    pub healthy_edge_interval: Option<Duration>,
    /// What a check is.
    pub kind: HealthCheckKind,
}

/// The protocol of a health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// An HTTP request whose status must be expected.
    Http {
        /// `:authority` (the cluster name when unset).
        host: Option<String>,
        /// Path.
        path: String,
        /// Method (default GET).
        method: String,
        /// Healthy statuses, `[start, end)` ranges (default 200 only).
        expected_statuses: Vec<(u16, u16)>,
        /// Statuses that count as a failure towards the threshold instead of failing the
        /// endpoint at once.
        retriable_statuses: Vec<(u16, u16)>,
        /// Speak HTTP/2 (prior knowledge, or ALPN over TLS).
        http2: bool,
        /// Headers added to the check request.
        request_headers_to_add: Vec<super::route::HeaderValueOption>,
        /// Headers removed from the check request.
        request_headers_to_remove: Vec<String>,
    },
    /// `grpc.health.v1.Health/Check`; healthy when the service is SERVING.
    Grpc {
        /// The service asked about (empty: the server as a whole).
        service_name: String,
        /// `:authority` (the cluster name when unset).
        authority: Option<String>,
    },
    /// A TCP connection, optionally sending bytes and expecting bytes back.
    Tcp {
        /// Sent after connecting.
        send: Vec<u8>,
        /// Expected in the reply, in order.
        receive: Vec<Vec<u8>>,
    },
}
