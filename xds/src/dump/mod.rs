//! `/config_dump`: the resources the host accepted, in Envoy's `envoy.admin.v3.ConfigDump`
//! JSON shape, with each resource's version and last-updated time, private keys redacted as
//! Envoy redacts them, and Envoy's `?resource=` and `?mask=` selections.
//!
//! The resources are kept as they arrived (the bootstrap as parsed, each accepted xDS
//! resource as its `Any`), so the dump shows exactly what the control plane sent, and the
//! dump is produced here, where the protos are: the host only gets JSON.

mod transform;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3 as admin;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, SerializeOptions};

use crate::config::ResourceKind;
use crate::translate::reflect::pool;

/// The bootstrap as it was parsed, before the host cleared what it does not use.
#[derive(Clone, Debug)]
pub struct BootstrapSource {
    proto: Arc<Bootstrap>,
    loaded: SystemTime,
}

impl BootstrapSource {
    pub(crate) fn new(bootstrap: &Bootstrap) -> Self {
        Self {
            proto: Arc::new(bootstrap.clone()),
            loaded: SystemTime::now(),
        }
    }
}

/// One xDS resource as the control plane sent it, when the host accepted it.
#[derive(Clone, Debug)]
pub struct AcceptedResource {
    pub(crate) name: String,
    pub(crate) resource: Arc<Any>,
    pub(crate) version: String,
    pub(crate) last_updated: SystemTime,
    /// A listener or cluster waiting for its RDS or EDS resources.
    pub(crate) warming: bool,
}

/// Every accepted xDS resource, by kind, with the last accepted version of each kind.
#[derive(Clone, Debug, Default)]
pub struct AcceptedResources {
    pub(crate) kinds: BTreeMap<ResourceKind, Vec<AcceptedResource>>,
    pub(crate) versions: BTreeMap<ResourceKind, String>,
}

/// What a `/config_dump` request asks for.
#[derive(Clone, Debug, Default)]
pub struct DumpQuery {
    /// `?resource=`: one repeated field of the dumps (`dynamic_active_clusters`,
    /// `static_listeners`, ...), each element its own entry of `configs`.
    pub resource: Option<String>,
    /// `?mask=`: field mask paths applied to each entry (comma-separated in the query).
    pub mask: Vec<String>,
}

/// Why no dump was produced.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// `?resource=` names no repeated field of any dump (Envoy answers 404).
    #[error("The resource {0} in the config dump was not found")]
    ResourceNotFound(String),
    /// The descriptors or a resource could not be read; a build defect.
    #[error("cannot build the config dump: {0}")]
    Build(String),
}

/// The `envoy.admin.v3.ConfigDump` of `bootstrap` and `dynamic`, as Envoy's admin serves it
/// (proto field names, typed `Any` with `@type`). `extra` entries (already JSON, each with
/// its own `@type`) are appended to `configs` when no `resource` is asked for.
pub fn config_dump(
    bootstrap: Option<&BootstrapSource>,
    dynamic: &AcceptedResources,
    query: &DumpQuery,
    extra: Vec<serde_json::Value>,
) -> Result<serde_json::Value, DumpError> {
    let mut configs = Vec::new();
    if let Some(bootstrap) = bootstrap {
        configs.push(to_any(&admin::BootstrapConfigDump {
            bootstrap: Some(Bootstrap::clone(&bootstrap.proto)),
            last_updated: Some(timestamp(bootstrap.loaded)),
        }));
    }
    let statics = Statics::of(bootstrap);
    configs.push(to_any(&clusters_dump(&statics, dynamic)));
    configs.push(to_any(&endpoints_dump(&statics, dynamic)));
    configs.push(to_any(&listeners_dump(&statics, dynamic)));
    configs.push(to_any(&routes_dump(&statics, dynamic)));
    configs.push(to_any(&secrets_dump(&statics, dynamic)));
    let dump = admin::ConfigDump { configs };

    let pool = pool().map_err(|e| DumpError::Build(e.to_owned()))?;
    let descriptor = pool
        .get_message_by_name(&admin::ConfigDump::full_name())
        .ok_or_else(|| DumpError::Build("no ConfigDump descriptor".to_owned()))?;
    let mut message = DynamicMessage::decode(descriptor, dump.encode_to_vec().as_slice())
        .map_err(|e| DumpError::Build(e.to_string()))?;
    transform::redact(&mut message, pool);
    let selected = match &query.resource {
        Some(resource) => {
            let selected = transform::select_resource(&message, resource, pool)?;
            if selected.is_empty() && !transform::has_resource_field(&message, resource, pool) {
                return Err(DumpError::ResourceNotFound(resource.clone()));
            }
            transform::replace_configs(&mut message, selected);
            false
        }
        None => true,
    };
    if !query.mask.is_empty() {
        transform::mask_configs(&mut message, &query.mask, pool);
    }
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut json = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| DumpError::Build(e.to_string()))?;
    if selected && let Some(list) = json.get_mut("configs").and_then(|c| c.as_array_mut()) {
        list.extend(extra);
    }
    if json.get("configs").is_none() {
        json = serde_json::json!({ "configs": [] });
    }
    Ok(json)
}

/// Reads `json` as the Envoy message `message` (`envoy.admin.v3.ConfigDump`,
/// `envoy.admin.v3.ServerInfo`, ...) with the protobuf JSON parser of Envoy's descriptors,
/// unknown fields refused: what a client of Envoy's admin would do with the text.
pub fn check_json(message: &str, json: &serde_json::Value) -> Result<(), String> {
    let pool = pool().map_err(str::to_owned)?;
    let descriptor = pool
        .get_message_by_name(message)
        .ok_or_else(|| format!("no message {message} in the Envoy descriptors"))?;
    DynamicMessage::deserialize_with_options(
        descriptor,
        json,
        &prost_reflect::DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map(drop)
    .map_err(|error| format!("not a {message}: {error}"))
}

fn to_any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn any_of<M: Message + Name>(message: &M) -> Arc<Any> {
    Arc::new(to_any(message))
}

fn timestamp(at: SystemTime) -> Timestamp {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// The static resources of the bootstrap, as `Any`s: listeners and clusters, the route
/// configurations inline in the listeners' connection managers, the load assignments inline
/// in the clusters.
#[derive(Default)]
struct Statics {
    loaded: Option<SystemTime>,
    listeners: Vec<Arc<Any>>,
    clusters: Vec<Arc<Any>>,
    route_configs: Vec<Arc<Any>>,
    load_assignments: Vec<Arc<Any>>,
    /// `static_resources.secrets`, by name.
    secrets: Vec<(String, Arc<Any>)>,
}

impl Statics {
    fn of(bootstrap: Option<&BootstrapSource>) -> Self {
        let Some(source) = bootstrap else {
            return Self::default();
        };
        let Some(resources) = &source.proto.static_resources else {
            return Self {
                loaded: Some(source.loaded),
                ..Self::default()
            };
        };
        let mut statics = Self {
            loaded: Some(source.loaded),
            ..Self::default()
        };
        for listener in &resources.listeners {
            statics.listeners.push(any_of(listener));
            let chains = listener
                .filter_chains
                .iter()
                .chain(listener.default_filter_chain.as_ref());
            statics
                .route_configs
                .extend(chains.flat_map(inline_route_configs));
        }
        for secret in &resources.secrets {
            statics.secrets.push((secret.name.clone(), any_of(secret)));
        }
        for cluster in &resources.clusters {
            statics.clusters.push(any_of(cluster));
            if let Some(assignment) = &cluster.load_assignment {
                let mut assignment = assignment.clone();
                if assignment.cluster_name.is_empty() {
                    assignment.cluster_name = cluster.name.clone();
                }
                statics.load_assignments.push(any_of(&assignment));
            }
        }
        statics
    }

    fn last_updated(&self) -> Option<Timestamp> {
        self.loaded.map(timestamp)
    }
}

fn inline_route_configs(chain: &FilterChain) -> Vec<Arc<Any>> {
    chain
        .filters
        .iter()
        .filter_map(|Filter { config_type, .. }| match config_type {
            Some(filter::ConfigType::TypedConfig(any))
                if any.type_url == HttpConnectionManager::type_url() =>
            {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|manager| match manager.route_specifier {
            Some(RouteSpecifier::RouteConfig(routes)) => Some(any_of(&routes)),
            _ => None,
        })
        .collect()
}

fn accepted(dynamic: &AcceptedResources, kind: ResourceKind) -> &[AcceptedResource] {
    dynamic.kinds.get(&kind).map_or(&[], Vec::as_slice)
}

fn version(dynamic: &AcceptedResources, kind: ResourceKind) -> String {
    dynamic.versions.get(&kind).cloned().unwrap_or_default()
}

fn clusters_dump(statics: &Statics, dynamic: &AcceptedResources) -> admin::ClustersConfigDump {
    use admin::clusters_config_dump::{DynamicCluster, StaticCluster};
    let (warming, active): (Vec<&AcceptedResource>, Vec<&AcceptedResource>) =
        accepted(dynamic, ResourceKind::Cluster)
            .iter()
            .partition(|r| r.warming);
    let dynamic_cluster = |r: &AcceptedResource| DynamicCluster {
        version_info: r.version.clone(),
        cluster: Some(Any::clone(&r.resource)),
        last_updated: Some(timestamp(r.last_updated)),
        ..Default::default()
    };
    admin::ClustersConfigDump {
        version_info: version(dynamic, ResourceKind::Cluster),
        static_clusters: statics
            .clusters
            .iter()
            .map(|cluster| StaticCluster {
                cluster: Some(Any::clone(cluster)),
                last_updated: statics.last_updated(),
            })
            .collect(),
        dynamic_active_clusters: active.into_iter().map(dynamic_cluster).collect(),
        dynamic_warming_clusters: warming.into_iter().map(dynamic_cluster).collect(),
    }
}

fn endpoints_dump(statics: &Statics, dynamic: &AcceptedResources) -> admin::EndpointsConfigDump {
    use admin::endpoints_config_dump::{DynamicEndpointConfig, StaticEndpointConfig};
    admin::EndpointsConfigDump {
        static_endpoint_configs: statics
            .load_assignments
            .iter()
            .map(|assignment| StaticEndpointConfig {
                endpoint_config: Some(Any::clone(assignment)),
                last_updated: statics.last_updated(),
            })
            .collect(),
        dynamic_endpoint_configs: accepted(dynamic, ResourceKind::LoadAssignment)
            .iter()
            .map(|r| DynamicEndpointConfig {
                version_info: r.version.clone(),
                endpoint_config: Some(Any::clone(&r.resource)),
                last_updated: Some(timestamp(r.last_updated)),
                ..Default::default()
            })
            .collect(),
    }
}

fn listeners_dump(statics: &Statics, dynamic: &AcceptedResources) -> admin::ListenersConfigDump {
    use admin::listeners_config_dump::{DynamicListener, DynamicListenerState, StaticListener};
    admin::ListenersConfigDump {
        version_info: version(dynamic, ResourceKind::Listener),
        static_listeners: statics
            .listeners
            .iter()
            .map(|listener| StaticListener {
                listener: Some(Any::clone(listener)),
                last_updated: statics.last_updated(),
            })
            .collect(),
        dynamic_listeners: accepted(dynamic, ResourceKind::Listener)
            .iter()
            .map(|r| {
                let state = DynamicListenerState {
                    version_info: r.version.clone(),
                    listener: Some(Any::clone(&r.resource)),
                    last_updated: Some(timestamp(r.last_updated)),
                };
                let (active_state, warming_state) = if r.warming {
                    (None, Some(state))
                } else {
                    (Some(state), None)
                };
                DynamicListener {
                    name: r.name.clone(),
                    active_state,
                    warming_state,
                    ..Default::default()
                }
            })
            .collect(),
    }
}

fn routes_dump(statics: &Statics, dynamic: &AcceptedResources) -> admin::RoutesConfigDump {
    use admin::routes_config_dump::{DynamicRouteConfig, StaticRouteConfig};
    admin::RoutesConfigDump {
        static_route_configs: statics
            .route_configs
            .iter()
            .map(|routes| StaticRouteConfig {
                route_config: Some(Any::clone(routes)),
                last_updated: statics.last_updated(),
            })
            .collect(),
        dynamic_route_configs: accepted(dynamic, ResourceKind::RouteConfig)
            .iter()
            .map(|r| DynamicRouteConfig {
                version_info: r.version.clone(),
                route_config: Some(Any::clone(&r.resource)),
                last_updated: Some(timestamp(r.last_updated)),
                ..Default::default()
            })
            .collect(),
    }
}

/// Static and ADS secrets as Envoy dumps them; their private keys are redacted with every
/// other sensitive field of the dump.
fn secrets_dump(statics: &Statics, dynamic: &AcceptedResources) -> admin::SecretsConfigDump {
    use admin::secrets_config_dump::{DynamicSecret, StaticSecret};
    admin::SecretsConfigDump {
        static_secrets: statics
            .secrets
            .iter()
            .map(|(name, secret)| StaticSecret {
                name: name.clone(),
                last_updated: statics.last_updated(),
                secret: Some(Any::clone(secret)),
            })
            .collect(),
        dynamic_active_secrets: accepted(dynamic, ResourceKind::Secret)
            .iter()
            .map(|r| DynamicSecret {
                name: r.name.clone(),
                version_info: r.version.clone(),
                last_updated: Some(timestamp(r.last_updated)),
                secret: Some(Any::clone(&r.resource)),
                ..Default::default()
            })
            .collect(),
        dynamic_warming_secrets: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
