//! `Cluster` -> [`Cluster`].

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::clusters::dns::v3::DnsCluster;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstreams_http;
use prost::Name;

use envoy_types::pb::google::protobuf::UInt32Value;

use super::common::{duration, metadata, u32_or};
use super::endpoint::load_assignment;
use super::error::{FieldError, FieldResult, TranslateError};
use super::extensions::{HTTP_PROTOCOL_OPTIONS_KEY, decode_any};
use super::health_check::health_checks;
use super::lb_policy::load_balancing;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use super::tls::upstream_transport_socket;
use crate::config::{
    CircuitBreakers, Cluster, Discovery, HealthCheck, HealthCheckKind, OutlierDetection,
    ResourceKind, RetryBudget, UpstreamProtocol,
};
use crate::field_policy::tolerate_fields;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl TryFrom<cluster::Cluster> for Cluster {
    type Error = TranslateError;

    fn try_from(proto: cluster::Cluster) -> Result<Self, TranslateError> {
        let name = proto.name.clone();
        translate_cluster(proto, &FieldPath::root())
            .map_err(|e| TranslateError::new(ResourceKind::Cluster, &name, e))
    }
}

/// Translates a cluster found at `path` (CDS root or a bootstrap static cluster).
pub(crate) fn translate_cluster(
    mut c: cluster::Cluster,
    path: &FieldPath<'_>,
) -> FieldResult<Cluster> {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    let name = std::mem::take(&mut c.name);
    if name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    let discovery = match c.cluster_discovery_type.take() {
        None => Discovery::Static,
        Some(ClusterDiscoveryType::Type(t)) => match DiscoveryType::try_from(t) {
            Ok(DiscoveryType::Static) => Discovery::Static,
            Ok(DiscoveryType::StrictDns) => Discovery::StrictDns,
            Ok(DiscoveryType::LogicalDns) => Discovery::LogicalDns,
            Ok(DiscoveryType::Eds) => {
                let config = c.eds_cluster_config.take().unwrap_or_default();
                eds_config_source(
                    config.eds_config,
                    &path.field("eds_cluster_config").field("eds_config"),
                )?;
                let service_name = if config.service_name.is_empty() {
                    name.clone()
                } else {
                    config.service_name
                };
                Discovery::Eds { service_name }
            }
            Ok(DiscoveryType::OriginalDst) => {
                return Err(FieldError::unsupported(
                    &path.field("type").field("ORIGINAL_DST"),
                ));
            }
            Err(_) => return Err(FieldError::invalid(&path.field("type"), "unknown value")),
        },
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            custom_cluster_type(custom, &path.field("cluster_type"))?
        }
    };
    let balancing = load_balancing(&mut c, path)?;
    let connect_timeout = match c.connect_timeout.take() {
        Some(d) => duration(&d, &path.field("connect_timeout"))?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let protocol = protocol(&mut c, path)?;
    let tls = match c.transport_socket.take() {
        Some(socket) => upstream_transport_socket(socket, &path.field("transport_socket"))?,
        None => None,
    };
    let circuit_breakers = match c.circuit_breakers.take() {
        Some(cb) => circuit_breakers(cb, &path.field("circuit_breakers"))?,
        None => CircuitBreakers::default(),
    };
    let outlier_detection = c
        .outlier_detection
        .take()
        .map(|o| outlier_detection(o, &path.field("outlier_detection")))
        .transpose()?;
    let health_check = health_checks(
        std::mem::take(&mut c.health_checks),
        &path.field("health_checks"),
    )?;
    let ignore_health_on_host_removal = std::mem::take(&mut c.ignore_health_on_host_removal);
    // Envoy refuses gRPC health checks on a cluster that does not speak HTTP/2.
    if let Some(HealthCheck {
        kind: HealthCheckKind::Grpc { .. },
        ..
    }) = &health_check
        && protocol != UpstreamProtocol::Http2
    {
        return Err(FieldError::invalid(
            &path
                .field("health_checks")
                .index(0)
                .field("grpc_health_check"),
            "the cluster must speak HTTP/2 for gRPC health checks",
        ));
    }
    let load_assignment = match (c.load_assignment.take(), &discovery) {
        (Some(_), Discovery::Eds { .. }) => {
            return Err(FieldError::invalid(
                &path.field("load_assignment"),
                "an EDS cluster gets its endpoints from EDS",
            ));
        }
        (Some(la), _) => Some(Arc::new(load_assignment(
            la,
            &path.field("load_assignment"),
        )?)),
        (None, Discovery::Eds { .. }) => None,
        (None, _) => return Err(FieldError::missing(&path.field("load_assignment"))),
    };
    let metadata = metadata(c.metadata.take());
    tolerate_cluster_tuning(&mut c);
    reject_unsupported(&c, path)?;
    Ok(Cluster {
        name,
        discovery,
        lb_policy: balancing.policy,
        locality_weighted: balancing.locality_weighted,
        healthy_panic_threshold: balancing.healthy_panic_threshold,
        connect_timeout,
        protocol,
        tls,
        circuit_breakers,
        outlier_detection,
        health_check,
        ignore_health_on_host_removal,
        metadata,
        load_assignment,
    })
}

/// Clears fields that tune resources, DNS refresh or statistics without changing which
/// upstream a request reaches or how it is spoken to.
fn tolerate_cluster_tuning(c: &mut cluster::Cluster) {
    tolerate_fields!(c, "Cluster":
        alt_stat_name,
        stats_matcher,
        per_connection_buffer_limit_bytes,
        dns_refresh_rate,
        dns_jitter,
        dns_failure_refresh_rate,
        respect_dns_ttl,
        dns_lookup_family,
        use_tcp_for_dns_lookups,
        upstream_connection_options,
        common_http_protocol_options,
        http_protocol_options,
        max_requests_per_connection,
        wait_for_warm_on_init,
        cleanup_interval,
        track_cluster_stats,
        track_timeout_budgets,
    );
}

/// `cluster_type`: the DNS cluster extension, as STRICT_DNS or LOGICAL_DNS.
fn custom_cluster_type(
    custom: cluster::cluster::CustomClusterType,
    path: &FieldPath<'_>,
) -> FieldResult<Discovery> {
    let at = path.field("typed_config");
    let Some(any) = custom.typed_config else {
        return Err(FieldError::missing(&at));
    };
    if any.type_url != DnsCluster::type_url() {
        return Err(FieldError::invalid(
            &at,
            format!("cluster type {} is not supported", any.type_url),
        ));
    }
    let mut dns: DnsCluster =
        decode_any(&any).map_err(|e| FieldError::invalid(&at, format!("cannot decode: {e}")))?;
    let discovery = if std::mem::take(&mut dns.all_addresses_in_single_endpoint) {
        Discovery::LogicalDns
    } else {
        Discovery::StrictDns
    };
    tolerate_fields!(dns, "DnsCluster":
        dns_refresh_rate,
        dns_failure_refresh_rate,
        respect_dns_ttl,
        dns_jitter,
        dns_lookup_family,
        dns_min_refresh_rate,
    );
    reject_unsupported(&dns, &at)?;
    Ok(discovery)
}

/// EDS resources must come over the same ADS stream.
fn eds_config_source(source: Option<core::ConfigSource>, path: &FieldPath<'_>) -> FieldResult<()> {
    use core::config_source::ConfigSourceSpecifier;
    match source.and_then(|s| s.config_source_specifier) {
        None | Some(ConfigSourceSpecifier::Ads(_)) | Some(ConfigSourceSpecifier::Self_(_)) => {
            Ok(())
        }
        Some(_) => Err(FieldError::invalid(path, "only `ads: {}` is supported")),
    }
}

fn protocol(c: &mut cluster::Cluster, path: &FieldPath<'_>) -> FieldResult<UpstreamProtocol> {
    let legacy_http2 = c.http2_protocol_options.take().is_some();
    c.http_protocol_options = None;
    let selection = cluster::cluster::ClusterProtocolSelection::try_from(std::mem::take(
        &mut c.protocol_selection,
    ));
    let mut protocol = match (legacy_http2, selection) {
        (_, Ok(cluster::cluster::ClusterProtocolSelection::UseDownstreamProtocol)) => {
            UpstreamProtocol::UseDownstream
        }
        (true, _) => UpstreamProtocol::Http2,
        (false, _) => UpstreamProtocol::Http1,
    };
    let options_path = path.field("typed_extension_protocol_options");
    for (key, any) in std::mem::take(&mut c.typed_extension_protocol_options) {
        let at = options_path.key(&key);
        if key != HTTP_PROTOCOL_OPTIONS_KEY {
            return Err(FieldError::unsupported(&at));
        }
        let options: upstreams_http::HttpProtocolOptions = decode_any(&any)
            .map_err(|e| FieldError::invalid(&at, format!("cannot decode: {e}")))?;
        protocol = protocol_options(options, protocol, &at)?;
    }
    Ok(protocol)
}

/// The protocol chosen by an `HttpProtocolOptions` extension (`current` when it chooses none).
fn protocol_options(
    mut options: upstreams_http::HttpProtocolOptions,
    current: UpstreamProtocol,
    path: &FieldPath<'_>,
) -> FieldResult<UpstreamProtocol> {
    use upstreams_http::http_protocol_options::UpstreamProtocolOptions as Choice;
    use upstreams_http::http_protocol_options::explicit_http_config::ProtocolConfig;
    let protocol = match options.upstream_protocol_options.take() {
        None => current,
        Some(Choice::ExplicitHttpConfig(explicit)) => match explicit.protocol_config {
            Some(ProtocolConfig::Http2ProtocolOptions(_)) => UpstreamProtocol::Http2,
            Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                return Err(FieldError::unsupported(
                    &path
                        .field("explicit_http_config")
                        .field("http3_protocol_options"),
                ));
            }
            Some(ProtocolConfig::HttpProtocolOptions(_)) | None => UpstreamProtocol::Http1,
        },
        Some(Choice::UseDownstreamProtocolConfig(_)) => UpstreamProtocol::UseDownstream,
        Some(Choice::AutoConfig(_)) => UpstreamProtocol::Auto,
    };
    // Idle timeouts, connection limits and automatic SNI/SAN settings tune the connection.
    options.common_http_protocol_options = None;
    options.upstream_http_protocol_options = None;
    reject_unsupported(&options, path)?;
    Ok(protocol)
}

fn circuit_breakers(
    mut cb: cluster::CircuitBreakers,
    path: &FieldPath<'_>,
) -> FieldResult<CircuitBreakers> {
    let defaults = CircuitBreakers::default();
    let mut result = defaults;
    let thresholds_path = path.field("thresholds");
    for (i, mut t) in std::mem::take(&mut cb.thresholds).into_iter().enumerate() {
        let at = thresholds_path.index(i);
        // Only the default priority is modelled; HIGH priority routes are not supported.
        if t.priority != core::RoutingPriority::Default as i32 {
            continue;
        }
        result = CircuitBreakers {
            per_host_max_connections: result.per_host_max_connections,
            max_connections: u32_or(t.max_connections.take(), defaults.max_connections),
            max_pending_requests: u32_or(
                t.max_pending_requests.take(),
                defaults.max_pending_requests,
            ),
            max_requests: u32_or(t.max_requests.take(), defaults.max_requests),
            max_retries: u32_or(t.max_retries.take(), defaults.max_retries),
            retry_budget: t
                .retry_budget
                .take()
                .map(|budget| retry_budget(budget, &at.field("retry_budget")))
                .transpose()?,
        };
        t.track_remaining = false;
        reject_unsupported(&t, &at)?;
    }
    let per_host_path = path.field("per_host_thresholds");
    for (i, mut t) in std::mem::take(&mut cb.per_host_thresholds)
        .into_iter()
        .enumerate()
    {
        let at = per_host_path.index(i);
        if t.priority != core::RoutingPriority::Default as i32 {
            continue;
        }
        // Envoy reads only max_connections per host.
        result.per_host_max_connections = t.max_connections.take().map(|v| v.value);
        t.track_remaining = false;
        reject_unsupported(&t, &at)?;
    }
    reject_unsupported(&cb, path)?;
    Ok(result)
}

fn retry_budget(
    mut budget: cluster::circuit_breakers::thresholds::RetryBudget,
    path: &FieldPath<'_>,
) -> FieldResult<RetryBudget> {
    let defaults = RetryBudget::default();
    let budget_percent = match budget.budget_percent.take() {
        None => defaults.budget_percent,
        Some(percent) if (0.0..=100.0).contains(&percent.value) => percent.value,
        Some(percent) => {
            return Err(FieldError::invalid(
                &path.field("budget_percent").field("value"),
                format!("{} is not a percentage between 0 and 100", percent.value),
            ));
        }
    };
    let min_retry_concurrency = u32_or(
        budget.min_retry_concurrency.take(),
        defaults.min_retry_concurrency,
    );
    reject_unsupported(&budget, path)?;
    Ok(RetryBudget {
        budget_percent,
        min_retry_concurrency,
    })
}

fn outlier_detection(
    mut o: cluster::OutlierDetection,
    path: &FieldPath<'_>,
) -> FieldResult<OutlierDetection> {
    let percent = |value: Option<UInt32Value>, default: u32, field: &str| -> FieldResult<u32> {
        let value = u32_or(value, default);
        if value > 100 {
            return Err(FieldError::invalid(
                &path.field(field),
                format!("{value} is not a percentage"),
            ));
        }
        Ok(value)
    };
    let result = OutlierDetection {
        consecutive_5xx: u32_or(o.consecutive_5xx.take(), 5),
        enforcing_consecutive_5xx: percent(
            o.enforcing_consecutive_5xx.take(),
            100,
            "enforcing_consecutive_5xx",
        )?,
        consecutive_gateway_failure: u32_or(o.consecutive_gateway_failure.take(), 5),
        enforcing_consecutive_gateway_failure: percent(
            o.enforcing_consecutive_gateway_failure.take(),
            0,
            "enforcing_consecutive_gateway_failure",
        )?,
        split_external_local_origin_errors: std::mem::take(
            &mut o.split_external_local_origin_errors,
        ),
        consecutive_local_origin_failure: u32_or(o.consecutive_local_origin_failure.take(), 5),
        enforcing_consecutive_local_origin_failure: percent(
            o.enforcing_consecutive_local_origin_failure.take(),
            100,
            "enforcing_consecutive_local_origin_failure",
        )?,
        interval: o.interval.take().map_or(Ok(Duration::from_secs(10)), |d| {
            duration(&d, &path.field("interval"))
        })?,
        base_ejection_time: o
            .base_ejection_time
            .take()
            .map_or(Ok(Duration::from_secs(30)), |d| {
                duration(&d, &path.field("base_ejection_time"))
            })?,
        max_ejection_time: o
            .max_ejection_time
            .take()
            .map_or(Ok(Duration::from_secs(300)), |d| {
                duration(&d, &path.field("max_ejection_time"))
            })?,
        max_ejection_percent: u32_or(o.max_ejection_percent.take(), 10).min(100),
    };
    // Success-rate and failure-percentage ejection are off unless enforced: Istio spells
    // out `enforcing_success_rate: 0`; a non-zero enforcement stays and is refused.
    for enforcing in [
        &mut o.enforcing_success_rate,
        &mut o.enforcing_local_origin_success_rate,
        &mut o.enforcing_failure_percentage,
        &mut o.enforcing_failure_percentage_local_origin,
    ] {
        if enforcing.as_ref().is_some_and(|p| p.value == 0) {
            *enforcing = None;
        }
    }
    reject_unsupported(&o, path)?;
    Ok(result)
}
