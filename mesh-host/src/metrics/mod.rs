//! The host's metrics, served by the admin endpoint: Envoy's stat names where Envoy has the
//! concept (`downstream_rq_xx`, `upstream_rq_xx`, `upstream_cx_active`, `membership_healthy`,
//! `update_success` ...), so dashboards and tools built for Envoy read them, and
//! `mesh_host_*` series per workload for what only a component host sees (instantiations,
//! reuses, traps, deadline interruptions, memory high-water mark, egress denials).
//!
//! Counted values live here; values that are states rather than counts (active connections,
//! healthy endpoints, xDS updates) are read at scrape time from a [`LiveStats`] source.

mod exposition;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use exposition::Sample;

use crate::shared::WorkloadId;

/// The counters of one workload, shared with its instance pool.
#[derive(Clone, Debug, Default)]
pub struct WorkloadCounters {
    /// Instances created.
    pub instantiations: Counter,
    /// Requests handed to the component.
    pub requests: Counter,
    /// Requests served by an instance that had served before.
    pub reuses: Counter,
    /// Requests that failed because the component trapped.
    pub traps: Counter,
    /// Requests whose guest was interrupted at its deadline.
    pub deadline_interruptions: Counter,
    /// The largest linear memory one instance of the workload reached, in bytes.
    pub memory_high_water_bytes: Gauge<u64, AtomicU64>,
}

/// Responses counted by status class, as Envoy's `*_rq_total` and `*_rq_<n>xx`.
#[derive(Debug, Default)]
struct ResponseCounts {
    total: AtomicU64,
    classes: [AtomicU64; 5],
}

impl ResponseCounts {
    fn record(&self, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.classes.get(i as usize))
        {
            class.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One upstream cluster as it is right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterLive {
    /// The cluster.
    pub name: String,
    /// Open connections (`upstream_cx_active`).
    pub cx_active: u64,
    /// Requests in flight (`upstream_rq_active`).
    pub rq_active: u64,
    /// Endpoints (`membership_total`).
    pub membership_total: u64,
    /// Endpoints that are healthy and not ejected (`membership_healthy`).
    pub membership_healthy: u64,
    /// Endpoints ejected by outlier detection (`outlier_detection.ejections_active`).
    pub ejections_active: u64,
}

/// How the control plane's responses of one xDS type fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsUpdates {
    /// The type's stat scope (`cluster_manager.cds`, `listener_manager.lds`, `rds`, `eds`).
    pub scope: &'static str,
    /// Responses received.
    pub attempt: u64,
    /// Responses accepted.
    pub success: u64,
    /// Responses rejected.
    pub rejected: u64,
}

/// Where scrape-time values come from: the configuration and upstream state in force.
pub trait LiveStats: Send + Sync {
    /// Every upstream cluster.
    fn clusters(&self) -> Vec<ClusterLive>;
    /// Every xDS type's update counts (empty without a control plane).
    fn xds_updates(&self) -> Vec<XdsUpdates>;
}

/// A workload (empty: the host itself) and a reason label.
type WorkloadReason = (String, String);

/// The host's counters, and the source of its scrape-time values.
#[derive(Default)]
pub struct Metrics {
    workloads: RwLock<Vec<(String, WorkloadCounters)>>,
    failures: RwLock<HashMap<WorkloadReason, Counter>>,
    egress_denied: RwLock<HashMap<WorkloadReason, Counter>>,
    downstream: RwLock<HashMap<String, Arc<ResponseCounts>>>,
    upstream: RwLock<HashMap<String, Arc<ResponseCounts>>>,
    access_log_dropped: Counter,
    spans_dropped: Counter,
    live: OnceLock<Arc<dyn LiveStats>>,
    // Serialises creation so two first requests cannot register the same workload twice.
    create: Mutex<()>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn counter_in(map: &RwLock<HashMap<WorkloadReason, Counter>>, a: &str, b: &str) -> Counter {
    let key = (a.to_owned(), b.to_owned());
    if let Some(counter) = read(map).get(&key) {
        return counter.clone();
    }
    map.write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

fn responses_in(
    map: &RwLock<HashMap<String, Arc<ResponseCounts>>>,
    name: &str,
) -> Arc<ResponseCounts> {
    if let Some(counts) = read(map).get(name) {
        return counts.clone();
    }
    map.write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(name.to_owned())
        .or_default()
        .clone()
}

impl Metrics {
    /// No counts yet, and no scrape-time source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads cluster and xDS states from `live` at every scrape; the first source set stays.
    pub fn set_live(&self, live: Arc<dyn LiveStats>) {
        let _ = self.live.set(live);
    }

    /// The counters of `workload`, created on first use.
    pub fn workload(&self, workload: &WorkloadId) -> WorkloadCounters {
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let name = workload.to_string();
        if let Some((_, counters)) = read(&self.workloads).iter().find(|(n, _)| *n == name) {
            return counters.clone();
        }
        let counters = WorkloadCounters::default();
        self.workloads
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, counters.clone()));
        counters
    }

    /// Counts a request the host failed itself.
    pub fn failure(&self, workload: &str, reason: &str) {
        counter_in(&self.failures, workload, reason).inc();
    }

    /// Counts a refused outbound request and why (`policy`, `no_route`, ...).
    pub fn egress_denied(&self, workload: &WorkloadId, reason: &str) {
        counter_in(&self.egress_denied, workload.as_str(), reason).inc();
    }

    /// Counts an access log line dropped because its writer's queue was full.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The counter of spans dropped because their exporter's queue was full.
    pub fn spans_dropped(&self) -> Counter {
        self.spans_dropped.clone()
    }

    /// Counts a response sent downstream by the connection manager with stat prefix `prefix`.
    pub fn downstream_response(&self, prefix: &str, status: u16) {
        responses_in(&self.downstream, prefix).record(status);
    }

    /// Counts a response an upstream cluster sent.
    pub fn upstream_response(&self, cluster: &str, status: u16) {
        responses_in(&self.upstream, cluster).record(status);
    }

    /// Every stat, in a stable order: Envoy's first, then the host's own.
    fn samples(&self) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut downstream: Vec<(String, Arc<ResponseCounts>)> = read(&self.downstream)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        downstream.sort_by(|a, b| a.0.cmp(&b.0));
        exposition::responses(&mut samples, &downstream, exposition::Scope::Downstream);
        let mut upstream: Vec<(String, Arc<ResponseCounts>)> = read(&self.upstream)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        upstream.sort_by(|a, b| a.0.cmp(&b.0));
        exposition::responses(&mut samples, &upstream, exposition::Scope::Upstream);
        if let Some(live) = self.live.get() {
            exposition::clusters(&mut samples, &live.clusters());
            exposition::xds(&mut samples, &live.xds_updates());
        }
        exposition::workloads(&mut samples, &read(&self.workloads));
        let sorted = |map: &RwLock<HashMap<WorkloadReason, Counter>>| {
            let mut all: Vec<(WorkloadReason, u64)> = read(map)
                .iter()
                .map(|(k, v)| (k.clone(), v.get()))
                .collect();
            all.sort();
            all
        };
        exposition::labelled(&mut samples, &sorted(&self.failures), exposition::FAILURES);
        exposition::labelled(
            &mut samples,
            &sorted(&self.egress_denied),
            exposition::EGRESS_DENIED,
        );
        samples.push(exposition::Sample {
            family: "mesh_host_access_log_lines_dropped_total".to_owned(),
            help: "Access log lines dropped because their writer was behind",
            kind: exposition::Kind::Counter,
            labels: Vec::new(),
            plain: "mesh_host.access_log.lines_dropped".to_owned(),
            value: self.access_log_dropped.get(),
        });
        samples.push(exposition::Sample {
            family: "mesh_host_tracing_spans_dropped_total".to_owned(),
            help: "Spans dropped because their exporter's queue was full",
            kind: exposition::Kind::Counter,
            labels: Vec::new(),
            plain: "mesh_host.tracing.spans_dropped".to_owned(),
            value: self.spans_dropped.get(),
        });
        samples
    }

    /// The Prometheus text exposition (format 0.0.4, as Envoy's `/stats/prometheus`).
    pub fn encode(&self) -> String {
        exposition::prometheus(&self.samples())
    }

    /// Envoy's plain `/stats` text: `name: value` per line, sorted.
    pub fn encode_plain(&self) -> String {
        exposition::plain(&self.samples())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneCluster;

    impl LiveStats for OneCluster {
        fn clusters(&self) -> Vec<ClusterLive> {
            vec![ClusterLive {
                name: "backend".into(),
                cx_active: 2,
                rq_active: 1,
                membership_total: 3,
                membership_healthy: 2,
                ejections_active: 1,
            }]
        }
        fn xds_updates(&self) -> Vec<XdsUpdates> {
            vec![XdsUpdates {
                scope: "cluster_manager.cds",
                attempt: 3,
                success: 2,
                rejected: 1,
            }]
        }
    }

    #[test]
    fn envoy_names_and_workload_series_in_both_formats() {
        let metrics = Metrics::new();
        metrics.set_live(Arc::new(OneCluster));
        metrics.downstream_response("ingress_http", 200);
        metrics.downstream_response("ingress_http", 503);
        metrics.upstream_response("backend", 204);
        let id = WorkloadId::new("hello").expect("id");
        metrics.workload(&id).instantiations.inc();
        metrics.workload(&id).requests.inc();
        metrics.egress_denied(&id, "no_route");
        let text = metrics.encode();
        for line in [
            "# TYPE envoy_http_downstream_rq_xx counter",
            "envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"ingress_http\"} 1",
            "envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\",envoy_http_conn_manager_prefix=\"ingress_http\"} 1",
            "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_http\"} 2",
            "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"backend\"} 1",
            "# TYPE envoy_cluster_upstream_cx_active gauge",
            "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"backend\"} 2",
            "envoy_cluster_membership_healthy{envoy_cluster_name=\"backend\"} 2",
            "envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name=\"backend\"} 1",
            "envoy_cluster_manager_cds_update_rejected 1",
            "mesh_host_instantiations_total{workload=\"hello\"} 1",
            "mesh_host_egress_denied_total{workload=\"hello\",reason=\"no_route\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let plain = metrics.encode_plain();
        for line in [
            "http.ingress_http.downstream_rq_2xx: 1",
            "cluster.backend.upstream_rq_total: 1",
            "cluster.backend.membership_total: 3",
            "cluster_manager.cds.update_success: 2",
            "mesh_host.workload.hello.instantiations: 1",
        ] {
            assert!(
                plain.lines().any(|l| l == line),
                "{line} missing from\n{plain}"
            );
        }
    }
}
