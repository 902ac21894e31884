//! `envoy.filters.network.tcp_proxy` and `envoy.filters.network.connection_limit` -> [`TcpProxy`].

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy as Proto, tcp_proxy,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::access_log::access_logs;
use super::common::timeout;
use super::error::{FieldError, FieldResult};
use super::extensions::decode_any;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{TcpCluster, TcpProxy};
use crate::field_policy::tolerate_fields;

/// Envoy's `idle_timeout` default for TCP proxies.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Whether `type_url` is the TCP proxy's.
pub(crate) fn is_tcp_proxy(type_url: &str) -> bool {
    type_url == Proto::type_url()
}

/// Whether `type_url` is the connection limit filter's.
pub(crate) fn is_connection_limit(type_url: &str) -> bool {
    type_url == ConnectionLimit::type_url()
}

/// Translates a TCP proxy network filter, with the `max_connections` of a connection limit
/// filter before it.
pub(crate) fn tcp_proxy(
    any: &Any,
    max_connections: Option<u64>,
    path: &FieldPath<'_>,
) -> FieldResult<TcpProxy> {
    use tcp_proxy::ClusterSpecifier;
    let mut proto: Proto = decode_any(any)
        .map_err(|e| FieldError::invalid(path, format!("cannot decode TcpProxy: {e}")))?;
    let cluster = match proto.cluster_specifier.take() {
        Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => TcpCluster::Single(name),
        Some(ClusterSpecifier::WeightedClusters(weighted)) => {
            let weighted_path = path.field("weighted_clusters");
            let at = weighted_path.field("clusters");
            let mut clusters = Vec::new();
            for (i, mut cluster) in weighted.clusters.into_iter().enumerate() {
                if cluster.metadata_match.take().is_some() {
                    return Err(FieldError::unsupported(
                        &at.index(i).field("metadata_match"),
                    ));
                }
                if cluster.weight > 0 {
                    clusters.push((cluster.name, cluster.weight));
                }
            }
            if clusters.is_empty() {
                return Err(FieldError::invalid(&at, "no cluster has a weight above 0"));
            }
            TcpCluster::Weighted(clusters)
        }
        _ => return Err(FieldError::missing(&path.field("cluster"))),
    };
    let idle_timeout = timeout(
        proto.idle_timeout.take().as_ref(),
        Some(DEFAULT_IDLE_TIMEOUT),
        &path.field("idle_timeout"),
    )?;
    let access_logs = access_logs(
        std::mem::take(&mut proto.access_log),
        &path.field("access_log"),
    )?;
    let stat_prefix = std::mem::take(&mut proto.stat_prefix);
    tolerate_fields!(proto, "TcpProxy":
        access_log_flush_interval,
        flush_access_log_on_connected,
        access_log_options,
    );
    reject_unsupported(&proto, path)?;
    Ok(TcpProxy {
        stat_prefix,
        cluster,
        idle_timeout,
        access_logs,
        max_connections,
    })
}

/// The `max_connections` of a connection limit filter.
pub(crate) fn connection_limit(any: &Any, path: &FieldPath<'_>) -> FieldResult<u64> {
    let mut proto: ConnectionLimit = decode_any(any)
        .map_err(|e| FieldError::invalid(path, format!("cannot decode ConnectionLimit: {e}")))?;
    let max = proto
        .max_connections
        .take()
        .map(|m| m.value)
        .filter(|&m| m > 0)
        .ok_or_else(|| FieldError::missing(&path.field("max_connections")))?;
    proto.stat_prefix.clear();
    // Closing at once or after `delay` both refuse the connection; the delay only slows a
    // client down.
    tolerate_fields!(proto, "ConnectionLimit": delay);
    reject_unsupported(&proto, path)?;
    Ok(max)
}
