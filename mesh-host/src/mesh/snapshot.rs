use std::collections::HashMap;
use std::sync::Arc;

use mesh_xds::config::{Listener, MeshConfig, RouteSource, TrafficDirection};

use crate::routing::RouteTable;

/// One immutable view of the configuration, with route tables compiled once:
/// a request loads it at its start and finishes on it, whatever is published
/// meanwhile.
pub(super) struct MeshSnapshot {
    pub(super) config: Arc<MeshConfig>,
    /// Route table of each listener, by listener name. A listener whose RDS
    /// route configuration has not arrived has none (it routes nothing).
    pub(super) tables: HashMap<String, Arc<RouteTable>>,
    /// The egress listener's name and route table: how components' outbound
    /// requests are routed. `None`: there is no egress path, all is denied.
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
            // Filter chain selection by SNI is not modelled: the first chain
            // (or the default one) carries the listener's HTTP settings.
            let Some(chain) = listener.all_filter_chains().next() else {
                continue;
            };
            let table = match &chain.http.route {
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
            };
            if let Some(table) = table {
                tables.insert(name.clone(), table);
            }
        }
        let mut egress_listeners = config
            .listeners
            .values()
            .filter(|listener| is_egress(listener, egress_listener));
        let egress = egress_listeners.next().and_then(|listener| {
            let table = tables.get(&listener.name)?;
            Some((listener.name.clone(), table.clone()))
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
