//! Stats as samples, and the two texts the admin serves from them: Prometheus text format
//! 0.0.4 (Envoy's `/stats/prometheus`) and Envoy's plain `/stats`.
//!
//! prometheus-client only writes OpenMetrics, which appends `_total` to every counter's
//! name; Envoy's counters (`envoy_cluster_upstream_rq_xx`) carry no such suffix, and the
//! tools built for Envoy look them up by those names, so the text is written here.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ClusterLive, ResponseCounts, WorkloadCounters, WorkloadReason, XdsUpdates};

/// Whether a stat only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Any value.
    Gauge,
}

/// One value of one stat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The Prometheus family name.
    pub family: String,
    /// What it counts.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Prometheus labels, in order.
    pub labels: Vec<(&'static str, String)>,
    /// Envoy's dotted name for `/stats`.
    pub plain: String,
    /// The value.
    pub value: u64,
}

/// Whose responses a set of counts describes.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    Downstream,
    Upstream,
}

pub(super) fn responses(
    out: &mut Vec<Sample>,
    counts: &[(String, Arc<ResponseCounts>)],
    scope: Scope,
) {
    let (family, stat, label, plain_scope, help) = match scope {
        Scope::Downstream => (
            "envoy_http_downstream_rq",
            "downstream_rq",
            "envoy_http_conn_manager_prefix",
            "http",
            "Requests answered downstream by a connection manager",
        ),
        Scope::Upstream => (
            "envoy_cluster_upstream_rq",
            "upstream_rq",
            "envoy_cluster_name",
            "cluster",
            "Responses received from a cluster's endpoints",
        ),
    };
    for (name, count) in counts {
        out.push(Sample {
            family: format!("{family}_total"),
            help,
            kind: Kind::Counter,
            labels: vec![(label, name.clone())],
            plain: format!("{plain_scope}.{name}.{stat}_total"),
            value: count.total.load(Ordering::Relaxed),
        });
    }
    for (name, count) in counts {
        for (index, class) in count.classes.iter().enumerate() {
            let value = class.load(Ordering::Relaxed);
            if value == 0 {
                continue;
            }
            let digit = index + 1;
            out.push(Sample {
                family: format!("{family}_xx"),
                help,
                kind: Kind::Counter,
                labels: vec![
                    ("envoy_response_code_class", digit.to_string()),
                    (label, name.clone()),
                ],
                plain: format!("{plain_scope}.{name}.{stat}_{digit}xx"),
                value,
            });
        }
    }
}

/// A stat's name, help text and how to read it from its source.
type Stat<T> = (&'static str, &'static str, fn(&T) -> u64);

pub(super) fn clusters(out: &mut Vec<Sample>, clusters: &[ClusterLive]) {
    let stats: [Stat<ClusterLive>; 5] = [
        (
            "upstream_cx_active",
            "Open connections to the cluster's endpoints",
            |c| c.cx_active,
        ),
        (
            "upstream_rq_active",
            "Requests in flight to the cluster",
            |c| c.rq_active,
        ),
        ("membership_total", "Endpoints of the cluster", |c| {
            c.membership_total
        }),
        (
            "membership_healthy",
            "Endpoints that are healthy and not ejected",
            |c| c.membership_healthy,
        ),
        (
            "outlier_detection.ejections_active",
            "Endpoints ejected by outlier detection",
            |c| c.ejections_active,
        ),
    ];
    for (stat, help, value) in stats {
        for cluster in clusters {
            out.push(Sample {
                family: format!("envoy_cluster_{}", stat.replace('.', "_")),
                help,
                kind: Kind::Gauge,
                labels: vec![("envoy_cluster_name", cluster.name.clone())],
                plain: format!("cluster.{}.{stat}", cluster.name),
                value: value(cluster),
            });
        }
    }
}

pub(super) fn xds(out: &mut Vec<Sample>, updates: &[XdsUpdates]) {
    for update in updates {
        for (stat, value) in [
            ("update_attempt", update.attempt),
            ("update_success", update.success),
            ("update_rejected", update.rejected),
        ] {
            out.push(Sample {
                family: format!("envoy_{}_{stat}", update.scope.replace('.', "_")),
                help: "Control plane responses of this type: received, accepted, rejected",
                kind: Kind::Counter,
                labels: Vec::new(),
                plain: format!("{}.{stat}", update.scope),
                value,
            });
        }
    }
}

pub(super) fn workloads(out: &mut Vec<Sample>, workloads: &[(String, WorkloadCounters)]) {
    let stats: [(Kind, Stat<WorkloadCounters>); 6] = [
        (
            Kind::Counter,
            ("instantiations", "Component instances created", |c| {
                c.instantiations.get()
            }),
        ),
        (
            Kind::Counter,
            ("requests", "Requests handed to the component", |c| {
                c.requests.get()
            }),
        ),
        (
            Kind::Counter,
            (
                "reuses",
                "Requests served by an instance that had served before",
                |c| c.reuses.get(),
            ),
        ),
        (
            Kind::Counter,
            ("traps", "Requests failed by a trap of the component", |c| {
                c.traps.get()
            }),
        ),
        (
            Kind::Counter,
            (
                "deadline_interruptions",
                "Requests whose component was interrupted at its deadline",
                |c| c.deadline_interruptions.get(),
            ),
        ),
        (
            Kind::Gauge,
            (
                "memory_high_water_bytes",
                "Largest linear memory one instance reached",
                |c| c.memory_high_water_bytes.get(),
            ),
        ),
    ];
    for (kind, (stat, help, value)) in stats {
        for (name, counters) in workloads {
            let family = match kind {
                Kind::Counter => format!("mesh_host_{stat}_total"),
                Kind::Gauge => format!("mesh_host_{stat}"),
            };
            out.push(Sample {
                family,
                help,
                kind,
                labels: vec![("workload", name.clone())],
                plain: format!("mesh_host.workload.{name}.{stat}"),
                value: value(counters),
            });
        }
    }
}

/// A family of counters with a workload and a reason label.
pub(super) struct Labelled {
    stat: &'static str,
    help: &'static str,
}

pub(super) const FAILURES: Labelled = Labelled {
    stat: "request_failures",
    help: "Requests the host answered itself, per workload and reason",
};
pub(super) const EGRESS_DENIED: Labelled = Labelled {
    stat: "egress_denied",
    help: "Outbound requests refused, per workload and reason",
};

pub(super) fn labelled(out: &mut Vec<Sample>, counts: &[(WorkloadReason, u64)], family: Labelled) {
    for ((workload, reason), value) in counts {
        let shown = if workload.is_empty() {
            "host"
        } else {
            workload
        };
        out.push(Sample {
            family: format!("mesh_host_{}_total", family.stat),
            help: family.help,
            kind: Kind::Counter,
            labels: vec![("workload", workload.clone()), ("reason", reason.clone())],
            plain: format!("mesh_host.workload.{shown}.{}.{reason}", family.stat),
            value: *value,
        });
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text format 0.0.4: each family once, with its HELP and TYPE, then its samples.
pub(super) fn prometheus(samples: &[Sample]) -> String {
    let mut families: Vec<(&str, Vec<&Sample>)> = Vec::new();
    for sample in samples {
        match families.iter_mut().find(|(name, _)| *name == sample.family) {
            Some((_, members)) => members.push(sample),
            None => families.push((&sample.family, vec![sample])),
        }
    }
    let mut out = String::new();
    for (name, members) in families {
        let first = members[0];
        let kind = match first.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing into a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {}", first.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in members {
            out.push_str(name);
            if !sample.labels.is_empty() {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", sample.value);
        }
    }
    out
}

/// Envoy's `/stats`: `name: value`, sorted by name.
pub(super) fn plain(samples: &[Sample]) -> String {
    let mut lines: Vec<String> = samples
        .iter()
        .map(|sample| format!("{}: {}", sample.plain, sample.value))
        .collect();
    lines.sort();
    lines.dedup();
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
