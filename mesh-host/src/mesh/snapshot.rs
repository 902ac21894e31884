use std::collections::HashMap;
use std::sync::Arc;

use mesh_xds::config::{Listener, MeshConfig, RouteSource, TrafficDirection};

use crate::routing::RouteTable;

/// One immutable view of the configuration, with route tables compiled once:
/// a request loads it at its start and finishes on it, whatever is published
/// meanwhile.
pub(super) struct MeshSnapshot {
    pub(super) config: Arc<MeshConfig>,
    /// Route tables by listener name, one per filter chain in
    /// `Listener::all_filter_chains` order (the index the front end reports
    /// as `RequestMeta::filter_chain`). A chain whose RDS route
    /// configuration has not arrived has none (it routes nothing).
    tables: HashMap<String, Vec<Option<Arc<RouteTable>>>>,
    /// The egress listener's name and route table (its first filter chain:
    /// outbound requests are matched by authority, there is no SNI): how
    /// components' outbound requests are routed. `None`: there is no egress
    /// path, all is denied.
    pub(super) egress: Option<(String, Arc<RouteTable>)>,
}

/// Whether `listener` is the egress listener: the one named in the host's
/// settings, else one with `traffic_direction: OUTBOUND`.
pub(super) fn is_egress(listener: &Listener, named: Option<&str>) -> bool {
    match named {
        Some(name) => listener.name == name,
        None => listener.traffic_direction == TrafficDirection::Outbound,
    }
}

impl MeshSnapshot {
    pub(super) fn build(config: Arc<MeshConfig>, egress_listener: Option<&str>) -> Self {
        let mut tables = HashMap::new();
        let mut by_route_name: HashMap<String, Arc<RouteTable>> = HashMap::new();
        for (name, listener) in &config.listeners {
            let chains: Vec<Option<Arc<RouteTable>>> = listener
                .all_filter_chains()
                .map(|chain| match &chain.http.route {
                    RouteSource::Inline(route_config) => compile(route_config.clone()),
                    RouteSource::Rds { route_config_name } => {
                        if let Some(table) = by_route_name.get(route_config_name) {
                            Some(table.clone())
                        } else {
                            let compiled = config
                                .route_configs
                                .get(route_config_name)
                                .cloned()
                                .and_then(compile);
                            if let Some(table) = &compiled {
                                by_route_name.insert(route_config_name.clone(), table.clone());
                            }
                            compiled
                        }
                    }
                })
                .collect();
            tables.insert(name.clone(), chains);
        }
        let mut egress_listeners = config
            .listeners
            .values()
            .filter(|listener| is_egress(listener, egress_listener));
        let egress = egress_listeners.next().and_then(|listener| {
            let table = tables.get(&listener.name)?.first()?.clone()?;
            Some((listener.name.clone(), table))
        });
        if let Some(ignored) = egress_listeners.next() {
            tracing::warn!(
                listener = %ignored.name,
                "more than one OUTBOUND listener; only the first (by name) routes egress"
            );
        }
        Self {
            config,
            tables,
            egress,
        }
    }

    /// The route table of a listener's filter chain, if it has one.
    pub(super) fn table(&self, listener: &str, filter_chain: usize) -> Option<&Arc<RouteTable>> {
        self.tables.get(listener)?.get(filter_chain)?.as_ref()
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
        let snapshot = MeshSnapshot::build(Arc::new(bootstrap.static_config), None);
        let chain = |index| snapshot.table("sni", index).and_then(|t| status(t));
        assert_eq!(chain(0), Some(201));
        assert_eq!(chain(1), None, "its RDS configuration has not arrived");
        assert_eq!(chain(2), Some(203), "the default chain comes last");
        assert!(snapshot.table("sni", 3).is_none());
        assert!(snapshot.table("other", 0).is_none());
    }
}
