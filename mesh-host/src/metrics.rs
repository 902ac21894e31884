//! Prometheus metrics of the host, served by the admin endpoint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::shared::WorkloadId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabel {
    workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    workload: String,
    reason: String,
}

/// The host's metric families.
pub struct Metrics {
    registry: Registry,
    instantiations: Family<WorkloadLabel, Counter>,
    requests: Family<WorkloadLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    egress_denied: Family<WorkloadLabel, Counter>,
    access_log_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The counters of one workload, shared with its instance pool.
#[derive(Clone, Debug)]
pub struct WorkloadCounters {
    /// Instances created.
    pub instantiations: Counter,
    /// Requests handed to the component.
    pub requests: Counter,
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mesh_host");
        let instantiations = Family::default();
        registry.register(
            "instantiations",
            "Component instances created, per workload",
            instantiations.clone(),
        );
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests handed to a component, per workload",
            requests.clone(),
        );
        let failures = Family::default();
        registry.register(
            "request_failures",
            "Requests the host answered itself, per workload and reason",
            failures.clone(),
        );
        let egress_denied = Family::default();
        registry.register(
            "egress_denied",
            "Outbound requests refused, per workload",
            egress_denied.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_lines_dropped",
            "Access log lines dropped because their writer was behind",
            access_log_dropped.clone(),
        );
        Self {
            registry,
            instantiations,
            requests,
            failures,
            egress_denied,
            access_log_dropped,
        }
    }

    /// The counters of `workload`, created on first use.
    pub fn workload(&self, workload: &WorkloadId) -> WorkloadCounters {
        let label = WorkloadLabel {
            workload: workload.to_string(),
        };
        WorkloadCounters {
            instantiations: self.instantiations.get_or_create(&label).clone(),
            requests: self.requests.get_or_create(&label).clone(),
        }
    }

    /// Counts a request the host failed itself.
    pub fn failure(&self, workload: &str, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                workload: workload.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a refused outbound request.
    pub fn egress_denied(&self, workload: &WorkloadId) {
        self.egress_denied
            .get_or_create(&WorkloadLabel {
                workload: workload.to_string(),
            })
            .inc();
    }

    /// Counts an access log line dropped because its writer's queue was full.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
