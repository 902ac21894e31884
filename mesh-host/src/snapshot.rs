//! One version of the configuration as requests see it: the listeners' route tables and HTTP
//! filter chains, the egress route table and the upstream clusters and endpoints, built
//! together from one xDS snapshot and published together. A request loads the snapshot once
//! when it arrives and finishes on it, whatever is published meanwhile, so it is never routed
//! by one version and sent to the clusters of another.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use mesh_xds::config::{
    GrpcServiceTarget, HttpConnectionManager, Listener, MeshConfig, RequestNormalization,
    RouteSource, TrafficDirection,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::access_log::AccessLogs;
use crate::egress::Egress;
use crate::filters::{ClusterChannel, FilterChain};
use crate::routing::RouteTable;
use crate::trace::{CollectorClient, ExportError, SpanExporters, Tracer};

/// A configuration snapshot, compiled for requests.
pub struct Snapshot {
    /// The configuration it was built from.
    pub config: Arc<MeshConfig>,
    /// Per listener, one entry per filter chain in `Listener::all_filter_chains` order (the
    /// index the front end reports as `RequestMeta::filter_chain`). A chain whose RDS route
    /// configuration has not arrived, or whose routes or filters cannot be used, has none and
    /// serves nothing.
    listeners: HashMap<String, Vec<Option<Arc<ListenerChain>>>>,
    /// The egress listener's name and first filter chain (outbound requests are matched by
    /// authority, there is no SNI). `None`: nothing may leave.
    egress_chain: Option<(String, Arc<ListenerChain>)>,
    /// The upstream clusters and endpoints.
    pub upstream: Egress,
}

/// What one filter chain of a listener serves with: its connection manager's routes and
/// HTTP filters.
pub struct ListenerChain {
    /// The listener's configured address (what RBAC's `destination_port` sees of a request
    /// delivered in-process).
    pub address: SocketAddr,
    /// The route table.
    pub routes: Arc<RouteTable>,
    /// The HTTP filters, run before the router.
    pub filters: FilterChain,
    /// The connection manager's request normalisation.
    pub normalization: RequestNormalization,
    /// The connection manager's access logs.
    pub access_logs: Arc<AccessLogs>,
    /// The connection manager's `stat_prefix`, the scope of its downstream stats.
    pub stat_prefix: String,
    /// The connection manager's tracing, if it has any.
    pub tracer: Option<Arc<Tracer>>,
    /// The router's `suppress_envoy_headers`.
    pub suppress_envoy_headers: bool,
}

/// Whether `listener` is the egress listener: the one named in the host's settings, else one
/// with `traffic_direction: OUTBOUND`.
pub fn is_egress(listener: &Listener, named: Option<&str>) -> bool {
    match named {
        Some(name) => listener.name == name,
        None => listener.traffic_direction == TrafficDirection::Outbound,
    }
}

impl Snapshot {
    /// A snapshot with nothing in it.
    pub fn empty() -> Snapshot {
        Snapshot {
            config: Arc::default(),
            listeners: HashMap::new(),
            egress_chain: None,
            upstream: Egress::new(),
        }
    }

    /// Compiles `config`; connection pools and cluster state that did not change are taken
    /// over from `previous`. Tracing connection managers send their spans to `exporters`.
    pub fn build(
        config: Arc<MeshConfig>,
        egress_listener: Option<&str>,
        previous: &Snapshot,
        exporters: &SpanExporters,
    ) -> Snapshot {
        let mut listeners = HashMap::new();
        let mut by_route_name: HashMap<String, Option<Arc<RouteTable>>> = HashMap::new();
        for (name, listener) in &config.listeners {
            let chains: Vec<Option<Arc<ListenerChain>>> = listener
                .all_filter_chains()
                .map(|chain| {
                    let routes = match &chain.http.route {
                        RouteSource::Inline(route_config) => compile(route_config.clone()),
                        RouteSource::Rds { route_config_name } => by_route_name
                            .entry(route_config_name.clone())
                            .or_insert_with(|| {
                                config
                                    .route_configs
                                    .get(route_config_name)
                                    .cloned()
                                    .and_then(compile)
                            })
                            .clone(),
                    }?;
                    let filters = filters(name, &chain.http)?;
                    Some(Arc::new(ListenerChain {
                        address: listener.address,
                        routes,
                        filters,
                        normalization: chain.http.normalization,
                        access_logs: Arc::new(AccessLogs::open(&chain.http.access_logs)),
                        stat_prefix: chain.http.stat_prefix.clone(),
                        tracer: chain.http.tracing.as_ref().map(|tracing| {
                            Arc::new(Tracer::new(tracing, listener.traffic_direction, exporters))
                        }),
                        suppress_envoy_headers: chain.http.suppress_envoy_headers,
                    }))
                })
                .collect();
            listeners.insert(name.clone(), chains);
        }
        let mut egress_listeners = config
            .listeners
            .values()
            .filter(|listener| is_egress(listener, egress_listener));
        let egress_chain = egress_listeners.next().and_then(|listener| {
            let chain = listeners.get(&listener.name)?.first()?.clone()?;
            Some((listener.name.clone(), chain))
        });
        if let Some(ignored) = egress_listeners.next() {
            tracing::warn!(
                listener = %ignored.name,
                "more than one OUTBOUND listener; only the first (by name) routes egress"
            );
        }
        let upstream = Egress::build(&config, &previous.upstream);
        Snapshot {
            config,
            listeners,
            egress_chain,
            upstream,
        }
    }

    /// A listener's filter chain, if it can serve.
    pub fn chain(&self, listener: &str, filter_chain: usize) -> Option<&Arc<ListenerChain>> {
        self.listeners.get(listener)?.get(filter_chain)?.as_ref()
    }

    /// The egress listener's name and the filter chain that routes components' requests.
    pub fn egress_chain(&self) -> Option<(&str, &ListenerChain)> {
        self.egress_chain
            .as_ref()
            .map(|(name, chain)| (name.as_str(), chain.as_ref()))
    }

    /// The filter chains of the inbound listeners (not the egress one), by listener name.
    pub fn inbound_chains<'a>(
        &'a self,
        egress_listener: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<ListenerChain>> + 'a {
        let mut names: Vec<&String> = self
            .config
            .listeners
            .values()
            .filter(move |listener| !is_egress(listener, egress_listener))
            .map(|listener| &listener.name)
            .collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter_map(|name| self.listeners.get(name))
            .flatten()
            .flatten()
    }
}

/// Sends OTLP exports through the upstream client of the snapshot in force when each batch
/// leaves, so a collector's cluster follows configuration updates like any other.
pub struct SnapshotCollector {
    snapshot: Weak<ArcSwap<Snapshot>>,
}

impl SnapshotCollector {
    /// Exports through the snapshots published in `snapshot`; once it is gone, nothing is
    /// sent.
    pub fn new(snapshot: Weak<ArcSwap<Snapshot>>) -> SnapshotCollector {
        SnapshotCollector { snapshot }
    }
}

impl CollectorClient for SnapshotCollector {
    fn export(
        &self,
        collector: &GrpcServiceTarget,
        request: ExportTraceServiceRequest,
    ) -> BoxFuture<'static, Result<(), ExportError>> {
        let Some(current) = self.snapshot.upgrade() else {
            return Box::pin(async { Err(ExportError::Closed) });
        };
        let snapshot = current.load_full();
        let collector = collector.clone();
        Box::pin(async move {
            let authority = collector
                .authority
                .parse()
                .map_err(|_| ExportError::Authority(collector.authority.clone()))?;
            let channel = ClusterChannel::new(
                &snapshot.upstream,
                &collector.cluster,
                authority,
                collector.timeout,
            );
            let mut call = tonic::Request::new(request);
            if let Some(timeout) = collector.timeout {
                call.set_timeout(timeout);
            }
            for (key, value) in &collector.initial_metadata {
                if let (Ok(key), Ok(value)) = (
                    key.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                    value.parse(),
                ) {
                    call.metadata_mut().insert(key, value);
                }
            }
            TraceServiceClient::new(channel)
                .export(call)
                .await
                .map(drop)
                .map_err(|status| ExportError::Call(status.to_string()))
        })
    }
}

fn compile(route_config: Arc<mesh_xds::config::RouteConfig>) -> Option<Arc<RouteTable>> {
    let name = route_config.name.clone();
    match RouteTable::new(route_config) {
        Ok(table) => Some(Arc::new(table)),
        Err(error) => {
            tracing::error!(route_config = %name, "route configuration not usable: {error}");
            None
        }
    }
}

fn filters(listener: &str, manager: &HttpConnectionManager) -> Option<FilterChain> {
    match FilterChain::compile(&manager.http_filters) {
        Ok(chain) => Some(chain),
        Err(error) => {
            tracing::error!(%listener, "HTTP filters not usable, the filter chain serves nothing: {error}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_xds::bootstrap::{Bootstrap, Format};

    use super::*;
    use crate::routing::Decision;

    /// Two chains told apart by SNI and a default chain, each answering with
    /// its own direct response; the second chain's routes come from RDS.
    const BOOTSTRAP: &str = r#"
static_resources:
  listeners:
  - name: sni
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filter_chain_match: { server_names: [a.test] }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: a
          route_config:
            virtual_hosts:
            - { name: a, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 201 } }] }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
    - filter_chain_match: { server_names: [b.test] }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: b
          rds: { route_config_name: not-yet-arrived, config_source: { ads: {} } }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
    default_filter_chain:
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: default
          route_config:
            virtual_hosts:
            - { name: d, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 203 } }] }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
"#;

    fn status(table: &RouteTable) -> Option<u16> {
        let (parts, ()) = http::Request::get("http://any.test/")
            .body(())
            .expect("request")
            .into_parts();
        match table.select(&parts, 0) {
            Decision::DirectResponse { status, .. } => Some(status),
            _ => None,
        }
    }

    #[test]
    fn each_filter_chain_has_its_own_route_table_the_default_last() {
        let bootstrap =
            Bootstrap::parse(BOOTSTRAP, Format::Yaml, "test.yaml").expect("valid bootstrap");
        let exporters = SpanExporters::new(
            Arc::new(SnapshotCollector::new(Weak::new())),
            Default::default(),
        );
        let snapshot = Snapshot::build(
            Arc::new(bootstrap.static_config),
            None,
            &Snapshot::empty(),
            &exporters,
        );
        let chain = |index| snapshot.chain("sni", index).and_then(|c| status(&c.routes));
        assert_eq!(chain(0), Some(201));
        assert_eq!(chain(1), None, "its RDS configuration has not arrived");
        assert_eq!(chain(2), Some(203), "the default chain comes last");
        assert!(snapshot.chain("sni", 3).is_none());
        assert!(snapshot.chain("other", 0).is_none());
    }
}
