//! `Listener` -> [`Listener`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;

use super::common::{socket_address, timeout};
use super::error::{FieldError, FieldResult, TranslateError};
use super::hcm::http_connection_manager;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use super::tcp_proxy::{connection_limit, is_connection_limit, is_tcp_proxy, tcp_proxy};
use super::tls::downstream_transport_socket;
use crate::config::{FilterChain, Listener, ResourceKind, TcpProxy, TrafficDirection};
use crate::field_policy::tolerate_fields;

/// Envoy's `listener_filters_timeout` default.
const DEFAULT_LISTENER_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);

const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Listener filters that only inspect the connection to feed filter-chain matching.
const INSPECTOR_FILTERS: &[&str] = &[
    "envoy.filters.listener.tls_inspector",
    "envoy.filters.listener.http_inspector",
];

impl TryFrom<listener::Listener> for Listener {
    type Error = TranslateError;

    fn try_from(proto: listener::Listener) -> Result<Self, TranslateError> {
        let name = proto.name.clone();
        translate_listener(proto, &FieldPath::root())
            .map_err(|e| TranslateError::new(ResourceKind::Listener, &name, e))
    }
}

/// Translates a listener found at `path` (LDS root or a bootstrap static listener).
pub(crate) fn translate_listener(
    mut l: listener::Listener,
    path: &FieldPath<'_>,
) -> FieldResult<Listener> {
    let name = std::mem::take(&mut l.name);
    if name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    let address_path = path.field("address");
    let host_port = socket_address(l.address.take(), &address_path)?;
    let ip: IpAddr = host_port.host.parse().map_err(|_| {
        FieldError::invalid(
            &address_path.field("socket_address").field("address"),
            format!("\"{}\" is not an IP address", host_port.host),
        )
    })?;
    let traffic_direction =
        match core::TrafficDirection::try_from(std::mem::take(&mut l.traffic_direction)) {
            Ok(core::TrafficDirection::Unspecified) => TrafficDirection::Unspecified,
            Ok(core::TrafficDirection::Inbound) => TrafficDirection::Inbound,
            Ok(core::TrafficDirection::Outbound) => TrafficDirection::Outbound,
            Err(_) => {
                return Err(FieldError::invalid(
                    &path.field("traffic_direction"),
                    "unknown value",
                ));
            }
        };
    let bind_to_port = l.bind_to_port.take().map(|b| b.value);
    let tcp_proxy = tcp_proxy_chain(&mut l, path)?;
    let chains_path = path.field("filter_chains");
    let filter_chains = std::mem::take(&mut l.filter_chains)
        .into_iter()
        .enumerate()
        .map(|(i, c)| filter_chain(c, &chains_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let default_filter_chain = l
        .default_filter_chain
        .take()
        .map(|c| filter_chain(c, &path.field("default_filter_chain")))
        .transpose()?;
    if filter_chains.is_empty() && default_filter_chain.is_none() && tcp_proxy.is_none() {
        return Err(FieldError::missing(&path.field("filter_chains")));
    }
    reject_same_matching_rules(&filter_chains, &chains_path)?;
    let filters_path = path.field("listener_filters");
    let mut inspects_tls = filter_chains
        .iter()
        .any(|chain: &FilterChain| !chain.server_names.is_empty());
    for (i, f) in std::mem::take(&mut l.listener_filters)
        .into_iter()
        .enumerate()
    {
        inspects_tls |= f.name == "envoy.filters.listener.tls_inspector";
        if !INSPECTOR_FILTERS.contains(&f.name.as_str()) {
            return Err(FieldError::invalid(
                &filters_path.index(i),
                format!("listener filter {} is not supported", f.name),
            ));
        }
    }
    let listener_filters_timeout = timeout(
        l.listener_filters_timeout.take().as_ref(),
        Some(DEFAULT_LISTENER_FILTERS_TIMEOUT),
        &path.field("listener_filters_timeout"),
    )?;
    let continue_on_listener_filters_timeout =
        std::mem::take(&mut l.continue_on_listener_filters_timeout);
    let ignore_global_conn_limit = std::mem::take(&mut l.ignore_global_conn_limit);
    tolerate_listener_tuning(&mut l);
    reject_unsupported(&l, path)?;
    Ok(Listener {
        name,
        address: SocketAddr::new(ip, host_port.port),
        traffic_direction,
        bind_to_port,
        filter_chains,
        default_filter_chain,
        inspects_tls,
        tcp_proxy,
        listener_filters_timeout,
        continue_on_listener_filters_timeout,
        ignore_global_conn_limit,
    })
}

/// The TCP proxy of a listener whose filter chain ends in `envoy.filters.network.tcp_proxy`,
/// taking that chain out of `l`. Such a listener has that one plaintext chain, matching every
/// connection; a chain may put `connection_limit` filters before the proxy.
fn tcp_proxy_chain(
    l: &mut listener::Listener,
    path: &FieldPath<'_>,
) -> FieldResult<Option<TcpProxy>> {
    use listener::filter::ConfigType;
    let is_tcp = |chain: &listener::FilterChain| {
        chain.filters.iter().any(|f| {
            matches!(&f.config_type, Some(ConfigType::TypedConfig(any)) if is_tcp_proxy(&any.type_url))
        })
    };
    let chains_path = path.field("filter_chains");
    let default_path = path.field("default_filter_chain");
    if !l
        .filter_chains
        .iter()
        .chain(l.default_filter_chain.as_ref())
        .any(is_tcp)
    {
        return Ok(None);
    }
    if l.filter_chains.len() + usize::from(l.default_filter_chain.is_some()) != 1 {
        return Err(FieldError::invalid(
            &chains_path,
            "a listener with envoy.filters.network.tcp_proxy has exactly one filter chain",
        ));
    }
    let first_path = chains_path.index(0);
    let (mut chain, at) = match l.filter_chains.pop() {
        Some(chain) => (chain, &first_path),
        None => match l.default_filter_chain.take() {
            Some(chain) => (chain, &default_path),
            None => return Ok(None),
        },
    };
    if let Some(mut m) = chain.filter_chain_match.take() {
        // `raw_buffer` restates that the chain is plaintext.
        if m.transport_protocol == "raw_buffer" {
            m.transport_protocol.clear();
        }
        reject_unsupported(&m, &at.field("filter_chain_match"))?;
    }
    if chain.transport_socket.is_some() {
        return Err(FieldError::unsupported(&at.field("transport_socket")));
    }
    let filters_path = at.field("filters");
    let filters = std::mem::take(&mut chain.filters);
    let last = filters.len().saturating_sub(1);
    let mut max_connections = None;
    let mut proxy = None;
    for (i, f) in filters.into_iter().enumerate() {
        let filter_path = filters_path.index(i);
        let any = match f.config_type {
            Some(ConfigType::TypedConfig(any)) => any,
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(FieldError::unsupported(
                    &filter_path.field("config_discovery"),
                ));
            }
            None => return Err(FieldError::missing(&filter_path.field("typed_config"))),
        };
        let config_path = filter_path.field("typed_config");
        if is_tcp_proxy(&any.type_url) && i == last {
            proxy = Some(tcp_proxy(&any, max_connections, &config_path)?);
        } else if is_connection_limit(&any.type_url) && i != last {
            let max = connection_limit(&any, &config_path)?;
            max_connections = Some(max_connections.map_or(max, |m: u64| m.min(max)));
        } else {
            return Err(FieldError::invalid(
                &filter_path,
                format!(
                    "network filter {} is not supported here (a TCP chain is connection_limit filters, then tcp_proxy last)",
                    any.type_url
                ),
            ));
        }
    }
    chain.name.clear();
    tolerate_fields!(chain, "FilterChain": metadata, transport_socket_connect_timeout);
    reject_unsupported(&chain, at)?;
    Ok(proxy)
}

/// Clears socket tuning and telemetry that do not change how requests are handled.
fn tolerate_listener_tuning(l: &mut listener::Listener) {
    tolerate_fields!(l, "Listener":
        stat_prefix,
        stats_matcher,
        metadata,
        per_connection_buffer_limit_bytes,
        drain_type,
        socket_options,
        tcp_fast_open_queue_length,
        connection_balance_config,
        reuse_port,
        enable_reuse_port,
        access_log,
        tcp_backlog_size,
        max_connections_to_accept_per_socket_event,
        bypass_overload_manager,
        tcp_keepalive,
    );
    // `use_original_dst: false` is the default spelled out; `true` stays and is rejected.
    l.use_original_dst = l.use_original_dst.take().filter(|b| b.value);
}

/// Envoy refuses a listener whose filter chains have the same matching rules, since the
/// connection could go to either. Here the rules are the server names (none: every name) and,
/// because `transport_protocol` is taken to restate the transport socket, TLS or not.
fn reject_same_matching_rules(chains: &[FilterChain], path: &FieldPath<'_>) -> FieldResult<()> {
    let mut seen: HashMap<(String, bool), usize> = HashMap::new();
    for (i, chain) in chains.iter().enumerate() {
        let tls = chain.tls.is_some();
        let names: Vec<String> = if chain.server_names.is_empty() {
            vec![String::new()]
        } else {
            chain
                .server_names
                .iter()
                .map(|name| name.to_ascii_lowercase())
                .collect()
        };
        for name in names {
            match seen.insert((name.clone(), tls), i) {
                Some(other) if other != i => {
                    let what = if name.is_empty() {
                        "no server_names".to_owned()
                    } else {
                        format!("server name {name}")
                    };
                    return Err(FieldError::invalid(
                        &path.index(i).field("filter_chain_match"),
                        format!(
                            "multiple filter chains with the same matching rules: \
                             filter_chains[{other}] also matches {what}"
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn filter_chain(mut c: listener::FilterChain, path: &FieldPath<'_>) -> FieldResult<FilterChain> {
    use listener::filter::ConfigType;
    let server_names = match c.filter_chain_match.take() {
        Some(mut m) => {
            let names = std::mem::take(&mut m.server_names);
            // `tls`/`raw_buffer` only restate whether a transport socket is configured.
            m.transport_protocol.clear();
            reject_unsupported(&m, &path.field("filter_chain_match"))?;
            names
        }
        None => Vec::new(),
    };
    let filters_path = path.field("filters");
    let filters = std::mem::take(&mut c.filters);
    if filters.len() != 1 {
        return Err(FieldError::invalid(
            &filters_path,
            "exactly one network filter (envoy.filters.network.http_connection_manager) is supported",
        ));
    }
    let mut http = None;
    for (i, f) in filters.into_iter().enumerate() {
        let at = filters_path.index(i);
        match f.config_type {
            Some(ConfigType::TypedConfig(any)) if any.type_url == HCM_TYPE_URL => {
                http = Some(http_connection_manager(&any, &at.field("typed_config"))?);
            }
            Some(ConfigType::TypedConfig(any)) => {
                return Err(FieldError::invalid(
                    &at,
                    format!("network filter {} is not supported", any.type_url),
                ));
            }
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(FieldError::unsupported(&at.field("config_discovery")));
            }
            None => return Err(FieldError::missing(&at.field("typed_config"))),
        }
    }
    let http = http.ok_or_else(|| FieldError::missing(&filters_path))?;
    let tls = match c.transport_socket.take() {
        Some(socket) => downstream_transport_socket(socket, &path.field("transport_socket"))?,
        None => None,
    };
    let name = std::mem::take(&mut c.name);
    tolerate_fields!(c, "FilterChain": metadata, transport_socket_connect_timeout);
    reject_unsupported(&c, path)?;
    Ok(FilterChain {
        name,
        server_names,
        tls,
        http,
    })
}
