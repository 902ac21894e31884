//! Envoy's `/clusters` text: per cluster its thresholds and whether it came from the control
//! plane, per endpoint its counters, health flags, weight and priority, one
//! `cluster::host::stat::value` line each.

use std::fmt::Write;

use mesh_xds::config::HealthStatus;

use super::Admin;
use crate::egress::{ClusterStatus, HostStatus};

/// The `/clusters` text of every upstream cluster of the configuration in force.
pub(super) fn render(admin: &Admin) -> String {
    let Some(mesh) = &admin.mesh else {
        return String::new();
    };
    let base = mesh.store.base();
    let mut out = String::new();
    for cluster in mesh.handler.clusters() {
        let added_via_api = !base.clusters.contains_key(&cluster.name);
        cluster_lines(&mut out, &cluster, added_via_api);
    }
    out
}

fn cluster_lines(out: &mut String, cluster: &ClusterStatus, added_via_api: bool) {
    let name = &cluster.name;
    let limits = &cluster.thresholds;
    // Writing into a String cannot fail.
    let _ = writeln!(out, "{name}::observability_name::{name}");
    for (stat, value) in [
        ("max_connections", limits.max_connections),
        ("max_pending_requests", limits.max_pending_requests),
        ("max_requests", limits.max_requests),
        ("max_retries", limits.max_retries),
    ] {
        let _ = writeln!(out, "{name}::default_priority::{stat}::{value}");
    }
    if cluster.outlier_detection {
        let _ = writeln!(out, "{name}::outlier::success_rate_average::-1");
        let _ = writeln!(out, "{name}::outlier::success_rate_ejection_threshold::-1");
    }
    let _ = writeln!(out, "{name}::added_via_api::{added_via_api}");
    for host in &cluster.hosts {
        host_lines(out, name, host);
    }
}

fn host_lines(out: &mut String, cluster: &str, host: &HostStatus) {
    let prefix = format!("{cluster}::{}", host.address);
    let success = host.rq_total.saturating_sub(host.rq_error + host.rq_active);
    let lines: [(&str, String); 9] = [
        ("rq_active", host.rq_active.to_string()),
        ("rq_error", host.rq_error.to_string()),
        ("rq_success", success.to_string()),
        ("rq_total", host.rq_total.to_string()),
        ("hostname", String::new()),
        ("health_flags", health_flags(host)),
        ("weight", host.weight.to_string()),
        ("priority", host.priority.to_string()),
        ("success_rate", "-1".to_owned()),
    ];
    for (stat, value) in lines {
        let _ = writeln!(out, "{prefix}::{stat}::{value}");
    }
}

/// Envoy's health flags: `healthy`, or each reason the host takes no traffic, each with a
/// leading `/` (`/failed_outlier_check/failed_eds_health`).
fn health_flags(host: &HostStatus) -> String {
    let mut flags = String::new();
    if host.failed_active_hc {
        flags.push_str("/failed_active_hc");
    }
    if host.ejected {
        flags.push_str("/failed_outlier_check");
    }
    match host.health {
        HealthStatus::Unhealthy | HealthStatus::Timeout => flags.push_str("/failed_eds_health"),
        HealthStatus::Draining => flags.push_str("/failed_eds_health/eds_status_draining"),
        HealthStatus::Degraded => flags.push_str("/degraded_eds_health"),
        HealthStatus::Unknown | HealthStatus::Healthy => {}
    }
    if flags.is_empty() {
        "healthy".to_owned()
    } else {
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ejected: bool, health: HealthStatus) -> HostStatus {
        HostStatus {
            address: mesh_xds::config::HostPort {
                host: "127.0.0.1".into(),
                port: 8080,
            },
            weight: 1,
            priority: 0,
            health,
            ejected,
            failed_active_hc: false,
            rq_active: 1,
            rq_total: 5,
            rq_error: 2,
        }
    }

    #[test]
    fn flags_name_every_reason_as_envoy_does() {
        assert_eq!(health_flags(&host(false, HealthStatus::Healthy)), "healthy");
        assert_eq!(
            health_flags(&host(true, HealthStatus::Unhealthy)),
            "/failed_outlier_check/failed_eds_health"
        );
        assert_eq!(
            health_flags(&host(false, HealthStatus::Degraded)),
            "/degraded_eds_health"
        );
    }

    #[test]
    fn host_lines_count_requests() {
        let mut out = String::new();
        host_lines(&mut out, "backend", &host(true, HealthStatus::Healthy));
        for line in [
            "backend::127.0.0.1:8080::rq_total::5",
            "backend::127.0.0.1:8080::rq_error::2",
            "backend::127.0.0.1:8080::rq_success::2",
            "backend::127.0.0.1:8080::health_flags::/failed_outlier_check",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
