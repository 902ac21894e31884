//! Envoy v3 bootstrap files (YAML or JSON): node identity, static resources, ADS source.

// Deprecated process settings (`watchdog`, `tracing`) still appear in bootstraps and are cleared.
#![allow(deprecated)]

mod connection_limits;
mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::bootstrap::v3 as bootstrap;
use envoy_types::pb::envoy::config::core::v3 as core;

use crate::config::{Cluster, HostPort, MeshConfig, Secret, SecretSource, UpstreamTls};
use crate::dump::BootstrapSource;
use crate::secrets::{ResolveError, SecretSet, resolve_cluster};
use crate::translate::reflect::reject_unsupported;
use crate::translate::{
    FieldError, FieldPath, struct_to_json, translate_cluster, translate_listener, translate_secret,
};

pub use connection_limits::ConnectionLimits;
pub use parse::Format;

/// Why a bootstrap file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML or JSON.
    #[error("{file}: not valid {format}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// YAML or JSON.
        format: Format,
        /// The parser's message.
        message: String,
    },
    /// The document does not fit the `envoy.config.bootstrap.v3.Bootstrap` schema.
    #[error("{file}: {path}: {message}")]
    Schema {
        /// The file.
        file: String,
        /// Where in the document (for example `static_resources.clusters[1].connect_timeout`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A field is unsupported, missing or invalid.
    #[error("{file}: {error}")]
    Invalid {
        /// The file.
        file: String,
        /// The field and the problem.
        error: FieldError,
    },
}

/// The identity this host presents to the control plane (`node` in the bootstrap).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeIdentity {
    /// Node id (Istio: `sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local`).
    pub id: String,
    /// Service cluster.
    pub cluster: String,
    /// Opaque metadata for the control plane.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Client name (default `mesh-host`).
    pub user_agent_name: String,
}

/// Which ADS variant to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdsApi {
    /// State of the world: `StreamAggregatedResources` (`api_type: GRPC`).
    #[default]
    StateOfTheWorld,
    /// Incremental: `DeltaAggregatedResources` (`api_type: DELTA_GRPC`).
    Delta,
}

/// The control plane named by `dynamic_resources.ads_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdsSource {
    /// The ADS variant.
    pub api: AdsApi,
    /// The static cluster that reaches the control plane.
    pub cluster_name: String,
    /// Its first endpoint.
    pub endpoint: HostPort,
    /// TLS towards the control plane, if the cluster has it.
    pub tls: Option<UpstreamTls>,
}

/// A loaded bootstrap.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// Node identity.
    pub node: NodeIdentity,
    /// Static listeners and clusters (the base layer of every published snapshot); their
    /// TLS contexts may name SDS secrets, put in place when a snapshot is published.
    pub static_config: MeshConfig,
    /// `static_resources.secrets`, by name.
    pub static_secrets: BTreeMap<String, Arc<Secret>>,
    /// The control plane, when the bootstrap has `dynamic_resources.ads_config`.
    pub ads: Option<AdsSource>,
    /// `admin.address` when it is a socket address: where the host serves its admin
    /// endpoint unless told otherwise.
    pub admin: Option<SocketAddr>,
    /// The file as parsed, for `/config_dump`.
    pub source: BootstrapSource,
    /// Downstream connection caps from the overload manager and the runtime.
    pub connection_limits: ConnectionLimits,
}

impl Bootstrap {
    /// Reads and validates a bootstrap file; the format comes from the extension or the content.
    pub fn load(path: &Path) -> Result<Self, BootstrapError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, Format::detect(path, &text), &file)
    }

    /// Parses and validates bootstrap text; `file` names it in errors.
    pub fn parse(text: &str, format: Format, file: &str) -> Result<Self, BootstrapError> {
        let proto = parse::to_proto(text, format, file)?;
        from_proto(proto).map_err(|error| BootstrapError::Invalid {
            file: file.to_owned(),
            error,
        })
    }
}

fn from_proto(mut b: bootstrap::Bootstrap) -> Result<Bootstrap, FieldError> {
    let root = FieldPath::root();
    let source = BootstrapSource::new(&b);
    let admin = admin_address(b.admin.as_ref(), &root.field("admin"))?;
    let node = node_identity(b.node.take());
    let (static_config, static_secrets) =
        static_resources(b.static_resources.take().unwrap_or_default(), &root)?;
    let ads = match b.dynamic_resources.take() {
        Some(d) => dynamic_resources(
            d,
            &static_config,
            &static_secrets,
            &root.field("dynamic_resources"),
        )?,
        None => None,
    };
    let connection_limits = connection_limits::connection_limits(&b, &root)?;
    tolerate_process_settings(&mut b);
    reject_unsupported(&b, &root)?;
    Ok(Bootstrap {
        node,
        static_config,
        static_secrets,
        ads,
        admin,
        source,
        connection_limits,
    })
}

/// `admin.address.socket_address` as an address; a named or pipe address is refused by path.
fn admin_address(
    admin: Option<&bootstrap::Admin>,
    path: &FieldPath<'_>,
) -> Result<Option<SocketAddr>, FieldError> {
    use core::address::Address;
    use core::socket_address::PortSpecifier;
    let Some(address) = admin.and_then(|admin| admin.address.as_ref()) else {
        return Ok(None);
    };
    let at = path.field("address");
    match &address.address {
        Some(Address::SocketAddress(socket)) => {
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(port)) => u16::try_from(port).map_err(|_| {
                    FieldError::invalid(
                        &at.field("socket_address").field("port_value"),
                        "not a port",
                    )
                })?,
                _ => 0,
            };
            let ip = socket.address.parse().map_err(|_| {
                FieldError::invalid(
                    &at.field("socket_address").field("address"),
                    format!("{:?} is not an IP address", socket.address),
                )
            })?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        Some(_) => Err(FieldError::invalid(
            &at,
            "only a socket_address is supported",
        )),
        None => Ok(None),
    }
}

/// Clears the parts of a bootstrap that configure Envoy's process (admin, stats, runtime,
/// overload, watchdogs, tracing) rather than traffic; the host has its own equivalents.
fn tolerate_process_settings(b: &mut bootstrap::Bootstrap) {
    b.admin = None;
    b.stats_sinks.clear();
    b.stats_config = None;
    b.stats_flush_interval = None;
    b.stats_flush = None;
    b.layered_runtime = None;
    b.overload_manager = None;
    b.watchdog = None;
    b.watchdogs = None;
    b.tracing = None;
    b.cluster_manager = None;
    b.flags_path.clear();
    b.enable_dispatcher_stats = false;
    b.stats_server_version_override = None;
    b.application_log_config = None;
    b.deferred_stat_options = None;
}

fn node_identity(node: Option<core::Node>) -> NodeIdentity {
    let node = node.unwrap_or_default();
    let metadata = node
        .metadata
        .map(|s| match struct_to_json(s) {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        })
        .unwrap_or_default();
    NodeIdentity {
        id: node.id,
        cluster: node.cluster,
        metadata,
        user_agent_name: if node.user_agent_name.is_empty() {
            "mesh-host".to_owned()
        } else {
            node.user_agent_name
        },
    }
}

type StaticResources = (MeshConfig, BTreeMap<String, Arc<Secret>>);

fn static_resources(
    mut s: bootstrap::bootstrap::StaticResources,
    root: &FieldPath<'_>,
) -> Result<StaticResources, FieldError> {
    let at = root.field("static_resources");
    let mut config = MeshConfig::default();
    let mut secrets = BTreeMap::new();
    let secrets_path = at.field("secrets");
    for (i, secret) in std::mem::take(&mut s.secrets).into_iter().enumerate() {
        let prefix = secrets_path.index(i).to_string();
        let secret = translate_secret(secret, &FieldPath::prefixed(&prefix))?;
        if secrets.contains_key(&secret.name) {
            return Err(FieldError::invalid(
                &FieldPath::prefixed(&prefix),
                format!("duplicate secret name \"{}\"", secret.name),
            ));
        }
        secrets.insert(secret.name.clone(), Arc::new(secret));
    }
    let listeners_path = at.field("listeners");
    for (i, l) in std::mem::take(&mut s.listeners).into_iter().enumerate() {
        let prefix = listeners_path.index(i).to_string();
        let listener = translate_listener(l, &FieldPath::prefixed(&prefix))?;
        if config.listeners.contains_key(&listener.name) {
            return Err(FieldError::invalid(
                &FieldPath::prefixed(&prefix),
                format!("duplicate listener name \"{}\"", listener.name),
            ));
        }
        config
            .listeners
            .insert(listener.name.clone(), Arc::new(listener));
    }
    let clusters_path = at.field("clusters");
    for (i, c) in std::mem::take(&mut s.clusters).into_iter().enumerate() {
        let prefix = clusters_path.index(i).to_string();
        let cluster = translate_cluster(c, &FieldPath::prefixed(&prefix))?;
        if config.clusters.contains_key(&cluster.name) {
            return Err(FieldError::invalid(
                &FieldPath::prefixed(&prefix),
                format!("duplicate cluster name \"{}\"", cluster.name),
            ));
        }
        config
            .clusters
            .insert(cluster.name.clone(), Arc::new(cluster));
    }
    reject_unsupported(&s, &at)?;
    check_static_secret_refs(&config, &secrets, &at)?;
    Ok((config, secrets))
}

/// Every reference to a static secret must name one of the bootstrap's, as Envoy requires.
fn check_static_secret_refs(
    config: &MeshConfig,
    secrets: &BTreeMap<String, Arc<Secret>>,
    at: &FieldPath<'_>,
) -> Result<(), FieldError> {
    let listeners = config.listeners.values().flat_map(|l| {
        l.secret_refs()
            .map(move |r| (("listeners", l.name.as_str()), r))
    });
    let clusters = config.clusters.values().flat_map(|c| {
        c.secret_refs()
            .map(move |r| (("clusters", c.name.as_str()), r))
    });
    for ((list, name), reference) in listeners.chain(clusters) {
        if reference.source == SecretSource::Static && !secrets.contains_key(&reference.name) {
            return Err(FieldError::invalid(
                &at.field(list),
                format!(
                    "\"{name}\": {}: no static secret \"{}\"",
                    reference.field, reference.name
                ),
            ));
        }
    }
    Ok(())
}

fn dynamic_resources(
    mut d: bootstrap::bootstrap::DynamicResources,
    static_config: &MeshConfig,
    static_secrets: &BTreeMap<String, Arc<Secret>>,
    path: &FieldPath<'_>,
) -> Result<Option<AdsSource>, FieldError> {
    for (field, source) in [
        ("lds_config", d.lds_config.take()),
        ("cds_config", d.cds_config.take()),
    ] {
        use core::config_source::ConfigSourceSpecifier;
        match source.and_then(|s| s.config_source_specifier) {
            None | Some(ConfigSourceSpecifier::Ads(_)) => {}
            Some(_) => {
                return Err(FieldError::invalid(
                    &path.field(field),
                    "only `ads: {}` is supported",
                ));
            }
        }
    }
    let ads = match d.ads_config.take() {
        Some(api) => Some(ads_source(
            api,
            static_config,
            static_secrets,
            &path.field("ads_config"),
        )?),
        None => None,
    };
    reject_unsupported(&d, path)?;
    Ok(ads)
}

fn ads_source(
    mut api: core::ApiConfigSource,
    static_config: &MeshConfig,
    static_secrets: &BTreeMap<String, Arc<Secret>>,
    path: &FieldPath<'_>,
) -> Result<AdsSource, FieldError> {
    use core::api_config_source::ApiType;
    use core::grpc_service::TargetSpecifier;
    let api_kind = match ApiType::try_from(std::mem::take(&mut api.api_type)) {
        Ok(ApiType::Grpc | ApiType::AggregatedGrpc) => AdsApi::StateOfTheWorld,
        Ok(ApiType::DeltaGrpc | ApiType::AggregatedDeltaGrpc) => AdsApi::Delta,
        _ => {
            return Err(FieldError::invalid(
                &path.field("api_type"),
                "must be GRPC or DELTA_GRPC",
            ));
        }
    };
    let services_path = path.field("grpc_services");
    let services = std::mem::take(&mut api.grpc_services);
    let cluster_name = match services.into_iter().next().and_then(|s| s.target_specifier) {
        Some(TargetSpecifier::EnvoyGrpc(g)) => g.cluster_name,
        Some(TargetSpecifier::GoogleGrpc(_)) => {
            return Err(FieldError::unsupported(
                &services_path.index(0).field("google_grpc"),
            ));
        }
        None => return Err(FieldError::missing(&services_path)),
    };
    let service_path = services_path.index(0);
    let envoy_grpc_path = service_path.field("envoy_grpc");
    let cluster_path = envoy_grpc_path.field("cluster_name");
    let cluster = static_config.clusters.get(&cluster_name).ok_or_else(|| {
        FieldError::invalid(
            &cluster_path,
            format!("\"{cluster_name}\" is not a static cluster"),
        )
    })?;
    // The control plane's own TLS can only come from static secrets: the ADS stream that
    // would deliver the others needs it first.
    let no_secrets = BTreeMap::new();
    let secrets = SecretSet {
        statics: static_secrets,
        dynamic: &no_secrets,
    };
    let cluster: Arc<Cluster> = resolve_cluster(cluster, secrets).map_err(|e| {
        let why = match e {
            ResolveError::Missing { field, .. } => {
                format!("{field}: the ADS cluster's secrets must be static secrets")
            }
            other => other.to_string(),
        };
        FieldError::invalid(&cluster_path, format!("cluster \"{cluster_name}\": {why}"))
    })?;
    let endpoint = cluster
        .load_assignment
        .as_ref()
        .and_then(|la| la.all_endpoints().next())
        .map(|e| e.address.clone())
        .ok_or_else(|| {
            FieldError::invalid(
                &cluster_path,
                format!("cluster \"{cluster_name}\" has no endpoint"),
            )
        })?;
    // Envoy options with no meaning for a single ADS stream to a known endpoint.
    api.transport_api_version = 0;
    api.set_node_on_first_message_only = false;
    api.rate_limit_settings = None;
    reject_unsupported(&api, path)?;
    Ok(AdsSource {
        api: api_kind,
        cluster_name,
        endpoint,
        tls: cluster.tls.clone(),
    })
}
