//! Publication of configuration snapshots to the data plane.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::bootstrap::Bootstrap;
use crate::config::{
    Cluster, Listener, LoadAssignment, MeshConfig, ResourceKind, RouteConfig, Secret,
};
use crate::dump::{AcceptedResources, BootstrapSource, DumpError, DumpQuery, config_dump};
use crate::secrets::{ResolveError, SecretSet, resolve_cluster, resolve_listener};

/// The resources received from the control plane, layered over the static bootstrap config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DynamicResources {
    /// Listeners (LDS).
    pub listeners: BTreeMap<String, Arc<Listener>>,
    /// Route configurations (RDS).
    pub route_configs: BTreeMap<String, Arc<RouteConfig>>,
    /// Clusters (CDS).
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// Load assignments (EDS).
    pub load_assignments: BTreeMap<String, Arc<LoadAssignment>>,
    /// Secrets (SDS), put in place of their names when a snapshot is published.
    pub secrets: BTreeMap<String, Arc<Secret>>,
    /// Last accepted version per kind.
    pub resource_versions: BTreeMap<ResourceKind, String>,
}

/// Holds the current [`MeshConfig`]: readers load it without locking; a watch channel tells
/// them when a new snapshot is published.
#[derive(Debug)]
pub struct ConfigStore {
    base: MeshConfig,
    /// The bootstrap's `static_resources.secrets`.
    static_secrets: BTreeMap<String, Arc<Secret>>,
    current: ArcSwap<MeshConfig>,
    /// Serialises publishers so versions stay monotonic.
    publish_lock: Mutex<()>,
    notify: watch::Sender<u64>,
    bootstrap: Option<BootstrapSource>,
    accepted: ArcSwap<AcceptedResources>,
    updates: BTreeMap<ResourceKind, UpdateCounters>,
}

/// How the control plane's responses of one kind fared, as Envoy counts them
/// (`update_attempt`, `update_success`, `update_rejected`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateCounts {
    /// Responses received.
    pub attempt: u64,
    /// Responses accepted (ACKed).
    pub success: u64,
    /// Responses rejected (NACKed).
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct UpdateCounters {
    success: AtomicU64,
    rejected: AtomicU64,
}

impl ConfigStore {
    /// A store whose base layer (and first snapshot, version 1) is `base`, usually the
    /// bootstrap's static resources.
    pub fn new(base: MeshConfig) -> Self {
        Self::with_secrets(base, BTreeMap::new())
    }

    fn with_secrets(base: MeshConfig, static_secrets: BTreeMap<String, Arc<Secret>>) -> Self {
        let first = assemble(1, &base, DynamicResources::default(), &static_secrets);
        let (notify, _) = watch::channel(first.version);
        Self {
            base,
            static_secrets,
            current: ArcSwap::from_pointee(first),
            publish_lock: Mutex::new(()),
            notify,
            bootstrap: None,
            accepted: ArcSwap::default(),
            updates: ResourceKind::ALL
                .into_iter()
                .map(|kind| (kind, UpdateCounters::default()))
                .collect(),
        }
    }

    /// A store whose base layer is the bootstrap's static resources; its config dump shows
    /// the bootstrap as it was written.
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Self {
        Self {
            bootstrap: Some(bootstrap.source.clone()),
            ..Self::with_secrets(
                bootstrap.static_config.clone(),
                bootstrap.static_secrets.clone(),
            )
        }
    }

    /// Replaces the accepted xDS resources shown by [`ConfigStore::config_dump`].
    pub fn set_accepted(&self, accepted: AcceptedResources) {
        self.accepted.store(Arc::new(accepted));
    }

    /// Counts a control plane response of `kind`, accepted or rejected.
    pub fn record_update(&self, kind: ResourceKind, accepted: bool) {
        if let Some(counters) = self.updates.get(&kind) {
            let counter = if accepted {
                &counters.success
            } else {
                &counters.rejected
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The update counts of every kind.
    pub fn update_counts(&self) -> BTreeMap<ResourceKind, UpdateCounts> {
        self.updates
            .iter()
            .map(|(kind, counters)| {
                let success = counters.success.load(Ordering::Relaxed);
                let rejected = counters.rejected.load(Ordering::Relaxed);
                (
                    *kind,
                    UpdateCounts {
                        attempt: success + rejected,
                        success,
                        rejected,
                    },
                )
            })
            .collect()
    }

    /// Whether a response of `kind` was ever accepted.
    pub fn has_accepted(&self, kind: ResourceKind) -> bool {
        self.updates
            .get(&kind)
            .is_some_and(|counters| counters.success.load(Ordering::Relaxed) > 0)
    }

    /// Envoy's `/config_dump` of the bootstrap and the accepted xDS resources; `extra`
    /// entries are appended to `configs`.
    pub fn config_dump(
        &self,
        query: &DumpQuery,
        extra: Vec<serde_json::Value>,
    ) -> Result<serde_json::Value, DumpError> {
        config_dump(self.bootstrap.as_ref(), &self.accepted.load(), query, extra)
    }

    /// The static base layer, as loaded: its TLS contexts may still name SDS secrets.
    pub fn base(&self) -> &MeshConfig {
        &self.base
    }

    /// The bootstrap's static secrets.
    pub(crate) fn static_secrets(&self) -> &BTreeMap<String, Arc<Secret>> {
        &self.static_secrets
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<MeshConfig> {
        self.current.load_full()
    }

    /// A receiver that changes to the version of every newly published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Publishes the base layer plus `dynamic` as a new snapshot and returns it.
    ///
    /// Static resources win over dynamic ones of the same name, as in Envoy, where static
    /// resources cannot be replaced over xDS. SDS names are replaced by the secrets' material
    /// here; a listener or cluster whose secrets are not all there is left out (warming).
    pub fn publish(&self, dynamic: DynamicResources) -> Arc<MeshConfig> {
        let _guard = self
            .publish_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let version = self.current.load().version + 1;
        let next = Arc::new(assemble(version, &self.base, dynamic, &self.static_secrets));
        self.current.store(next.clone());
        self.notify.send_replace(version);
        next
    }
}

/// One snapshot: `base` layered over `dynamic`, with every secret in place.
fn assemble(
    version: u64,
    base: &MeshConfig,
    dynamic: DynamicResources,
    static_secrets: &BTreeMap<String, Arc<Secret>>,
) -> MeshConfig {
    let secrets = SecretSet {
        statics: static_secrets,
        dynamic: &dynamic.secrets,
    };
    let listeners = layer(&base.listeners, dynamic.listeners, ResourceKind::Listener);
    let clusters = layer(&base.clusters, dynamic.clusters, ResourceKind::Cluster);
    MeshConfig {
        version,
        listeners: in_service(listeners, ResourceKind::Listener, |l| {
            resolve_listener(l, secrets)
        }),
        route_configs: layer(
            &base.route_configs,
            dynamic.route_configs,
            ResourceKind::RouteConfig,
        ),
        clusters: in_service(clusters, ResourceKind::Cluster, |c| {
            resolve_cluster(c, secrets)
        }),
        load_assignments: layer(
            &base.load_assignments,
            dynamic.load_assignments,
            ResourceKind::LoadAssignment,
        ),
        resource_versions: dynamic.resource_versions,
    }
}

/// Each resource with its secrets in place; one whose secrets are missing is left out, so
/// a listener binds nothing and a cluster takes no request until they arrive.
fn in_service<T>(
    resources: BTreeMap<String, Arc<T>>,
    kind: ResourceKind,
    resolve: impl Fn(&Arc<T>) -> Result<Arc<T>, ResolveError>,
) -> BTreeMap<String, Arc<T>> {
    resources
        .into_iter()
        .filter_map(|(name, resource)| match resolve(&resource) {
            Ok(resolved) => Some((name, resolved)),
            Err(error) => {
                tracing::warn!(%kind, name, "out of service until its secrets arrive: {error}");
                None
            }
        })
        .collect()
}

fn layer<T>(
    base: &BTreeMap<String, Arc<T>>,
    mut dynamic: BTreeMap<String, Arc<T>>,
    kind: ResourceKind,
) -> BTreeMap<String, Arc<T>> {
    for (name, resource) in base {
        if dynamic.insert(name.clone(), resource.clone()).is_some() {
            tracing::warn!(%kind, name, "dynamic resource ignored: a static resource has the same name");
        }
    }
    dynamic
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Endpoint, HealthStatus, HostPort, LocalityEndpoints};

    fn assignment(name: &str, port: u16) -> Arc<LoadAssignment> {
        Arc::new(LoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityEndpoints {
                locality: Default::default(),
                priority: 0,
                load_balancing_weight: None,
                endpoints: vec![Endpoint {
                    address: HostPort {
                        host: "127.0.0.1".to_owned(),
                        port,
                    },
                    weight: 1,
                    health: HealthStatus::Healthy,
                    health_check_port: None,
                    disable_active_health_check: false,
                }],
            }],
        })
    }

    #[test]
    fn publish_bumps_version_and_notifies() {
        let store = ConfigStore::new(MeshConfig::default());
        let mut rx = store.subscribe();
        assert_eq!(store.load().version, 1);
        let mut dynamic = DynamicResources::default();
        dynamic
            .load_assignments
            .insert("a".into(), assignment("a", 1));
        let published = store.publish(dynamic);
        assert_eq!(published.version, 2);
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(*rx.borrow_and_update(), 2);
        assert!(store.load().load_assignments.contains_key("a"));
    }

    #[test]
    fn static_resources_win_over_dynamic_ones_with_the_same_name() {
        let mut base = MeshConfig::default();
        base.load_assignments.insert("a".into(), assignment("a", 1));
        let store = ConfigStore::new(base);
        let mut dynamic = DynamicResources::default();
        dynamic
            .load_assignments
            .insert("a".into(), assignment("a", 2));
        dynamic
            .load_assignments
            .insert("b".into(), assignment("b", 3));
        let published = store.publish(dynamic);
        assert_eq!(published.load_assignments["a"], assignment("a", 1));
        assert_eq!(published.load_assignments["b"], assignment("b", 3));
    }
}
