//! What the admin endpoint shows of the upstream clusters (`/clusters`, cluster gauges): each
//! endpoint's health, ejection and requests, each cluster's connections and thresholds. Read
//! without taking any request path lock longer than one endpoint's detector.

use std::sync::atomic::Ordering;
use std::time::Instant;

use mesh_xds::config::{CircuitBreakers, HealthStatus, HostPort};

use super::Egress;

/// One cluster as it is right now.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// The cluster.
    pub name: String,
    /// Its circuit breaker thresholds.
    pub thresholds: CircuitBreakers,
    /// Whether it has outlier detection.
    pub outlier_detection: bool,
    /// Connections open to its endpoints.
    pub cx_active: u64,
    /// Requests in flight.
    pub rq_active: u64,
    /// Its endpoints.
    pub hosts: Vec<HostStatus>,
}

/// One endpoint as it is right now.
#[derive(Debug, Clone)]
pub struct HostStatus {
    /// Its address.
    pub address: HostPort,
    /// Its load-balancing weight.
    pub weight: u32,
    /// Its priority.
    pub priority: u32,
    /// Its health as EDS reported it.
    pub health: HealthStatus,
    /// Whether outlier detection has ejected it.
    pub ejected: bool,
    /// Whether the cluster's active health check finds it failing.
    pub failed_active_hc: bool,
    /// Requests in flight.
    pub rq_active: u64,
    /// Tries sent to it.
    pub rq_total: u64,
    /// Tries that failed (5xx or no response).
    pub rq_error: u64,
}

impl Egress {
    /// Every cluster of this snapshot, in name order.
    pub fn status(&self) -> Vec<ClusterStatus> {
        let now = Instant::now();
        self.clusters
            .all()
            .into_iter()
            .map(|cluster| ClusterStatus {
                name: cluster.config.name.clone(),
                thresholds: *cluster.limits.thresholds(),
                outlier_detection: cluster.config.outlier_detection.is_some(),
                cx_active: cluster.limits.open_connections(),
                rq_active: cluster.limits.active_requests(),
                hosts: cluster
                    .hosts
                    .iter()
                    .map(|host| HostStatus {
                        address: host.address.clone(),
                        weight: host.weight,
                        priority: host.priority,
                        health: host.health,
                        ejected: host.state.outlier.is_ejected(now),
                        failed_active_hc: host.state.failed_active_hc(),
                        rq_active: u64::from(host.state.active()),
                        rq_total: host.state.rq_total.load(Ordering::Relaxed),
                        rq_error: host.state.rq_error.load(Ordering::Relaxed),
                    })
                    .collect(),
            })
            .collect()
    }
}
