//! Accepted resources by type, with LDS->RDS, CDS->EDS and SDS warming.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{
    Cluster, Listener, LoadAssignment, MeshConfig, ResourceKind, RouteConfig, Secret, SecretRef,
    SecretSource,
};
use crate::store::DynamicResources;

/// A resource with the version it arrived with.
#[derive(Clone, Debug)]
struct Versioned<T> {
    value: Arc<T>,
    version: String,
}

/// A listener or cluster: the one in service, and a newer one waiting for its dependencies.
#[derive(Debug)]
struct Warmable<T> {
    active: Option<Versioned<T>>,
    warming: Option<(Versioned<T>, Instant)>,
}

impl<T> Warmable<T> {
    fn latest(&self) -> Option<&Versioned<T>> {
        self.warming
            .as_ref()
            .map(|(v, _)| v)
            .or(self.active.as_ref())
    }
}

/// Every accepted resource. Listeners and clusters wait ("warm") until the route
/// configurations, load assignments and secrets they reference have arrived, or until the
/// warming timeout, as Envoy does; the previous version keeps serving meanwhile.
#[derive(Debug)]
pub(crate) struct ResourceCache {
    warming_timeout: Duration,
    listeners: BTreeMap<String, Warmable<Listener>>,
    clusters: BTreeMap<String, Warmable<Cluster>>,
    route_configs: BTreeMap<String, Versioned<RouteConfig>>,
    load_assignments: BTreeMap<String, Versioned<LoadAssignment>>,
    secrets: BTreeMap<String, Versioned<Secret>>,
    /// Bumped whenever what [`ResourceCache::resources`] returns changes.
    generation: u64,
    /// RDS and EDS names that static (bootstrap) listeners and clusters reference.
    static_route_configs: BTreeSet<String>,
    static_load_assignments: BTreeSet<String>,
    /// SDS names that static listeners and clusters reference over ADS.
    static_secrets: BTreeSet<String>,
}

/// The secret names among `refs` that come over ADS (static ones are checked on arrival).
fn ads_secrets<'a>(refs: impl Iterator<Item = &'a SecretRef>) -> impl Iterator<Item = &'a str> {
    refs.filter(|r| r.source == SecretSource::Ads)
        .map(|r| r.name.as_str())
}

fn listener_ready(
    l: &Listener,
    routes: &BTreeMap<String, Versioned<RouteConfig>>,
    secrets: &BTreeMap<String, Versioned<Secret>>,
) -> bool {
    l.rds_names().all(|name| routes.contains_key(name))
        && ads_secrets(l.secret_refs()).all(|name| secrets.contains_key(name))
}

fn cluster_ready(
    c: &Cluster,
    assignments: &BTreeMap<String, Versioned<LoadAssignment>>,
    secrets: &BTreeMap<String, Versioned<Secret>>,
) -> bool {
    c.eds_service_name()
        .is_none_or(|name| assignments.contains_key(name))
        && ads_secrets(c.secret_refs()).all(|name| secrets.contains_key(name))
}

impl ResourceCache {
    pub(crate) fn new(warming_timeout: Duration) -> Self {
        Self {
            warming_timeout,
            listeners: BTreeMap::new(),
            clusters: BTreeMap::new(),
            route_configs: BTreeMap::new(),
            load_assignments: BTreeMap::new(),
            secrets: BTreeMap::new(),
            generation: 0,
            static_route_configs: BTreeSet::new(),
            static_load_assignments: BTreeSet::new(),
            static_secrets: BTreeSet::new(),
        }
    }

    /// Keeps the RDS, EDS and SDS resources of static listeners and clusters subscribed.
    pub(crate) fn add_static_references(&mut self, base: &MeshConfig) {
        for listener in base.listeners.values() {
            self.static_route_configs
                .extend(listener.rds_names().map(str::to_owned));
            self.static_secrets
                .extend(ads_secrets(listener.secret_refs()).map(str::to_owned));
        }
        for cluster in base.clusters.values() {
            self.static_load_assignments
                .extend(cluster.eds_service_name().map(str::to_owned));
            self.static_secrets
                .extend(ads_secrets(cluster.secret_refs()).map(str::to_owned));
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn upsert_listener(&mut self, listener: Listener, version: &str, now: Instant) {
        let ready = listener_ready(&listener, &self.route_configs, &self.secrets);
        let deadline = now + self.warming_timeout;
        let entry = self
            .listeners
            .entry(listener.name.clone())
            .or_insert(Warmable {
                active: None,
                warming: None,
            });
        self.generation += upsert(entry, listener, version, ready, deadline);
    }

    pub(crate) fn upsert_cluster(&mut self, cluster: Cluster, version: &str, now: Instant) {
        let ready = cluster_ready(&cluster, &self.load_assignments, &self.secrets);
        let deadline = now + self.warming_timeout;
        let entry = self
            .clusters
            .entry(cluster.name.clone())
            .or_insert(Warmable {
                active: None,
                warming: None,
            });
        self.generation += upsert(entry, cluster, version, ready, deadline);
    }

    // Adding a route configuration, load assignment or secret can only complete a warming
    // listener or cluster; the caller promotes once after the whole response
    // (`AdsState::handle`), since promoting after each of a thousand load assignments
    // rescanned every warming cluster each time.
    pub(crate) fn upsert_route_config(&mut self, rc: RouteConfig, version: &str) {
        self.generation += replace(&mut self.route_configs, rc.name.clone(), rc, version);
    }

    pub(crate) fn upsert_load_assignment(
        &mut self,
        name: String,
        la: LoadAssignment,
        version: &str,
    ) {
        self.generation += replace(&mut self.load_assignments, name, la, version);
    }

    pub(crate) fn upsert_secret(&mut self, secret: Secret, version: &str) {
        self.generation += replace(&mut self.secrets, secret.name.clone(), secret, version);
    }

    /// Every reference to an ADS secret by listeners and clusters, warming ones included
    /// (static ones are not checked here: they were when they were loaded).
    pub(crate) fn secret_references(&self) -> Vec<(ResourceKind, &str, &SecretRef)> {
        let listeners = self.listeners.iter().flat_map(|(name, e)| {
            e.active
                .iter()
                .chain(e.warming.as_ref().map(|(v, _)| v))
                .flat_map(move |v| {
                    v.value
                        .secret_refs()
                        .map(move |r| (ResourceKind::Listener, name.as_str(), r))
                })
        });
        let clusters = self.clusters.iter().flat_map(|(name, e)| {
            e.active
                .iter()
                .chain(e.warming.as_ref().map(|(v, _)| v))
                .flat_map(move |v| {
                    v.value
                        .secret_refs()
                        .map(move |r| (ResourceKind::Cluster, name.as_str(), r))
                })
        });
        listeners
            .chain(clusters)
            .filter(|(_, _, r)| r.source == SecretSource::Ads)
            .collect()
    }

    /// Removes one resource; returns whether it existed.
    pub(crate) fn remove(&mut self, kind: ResourceKind, name: &str) -> bool {
        let removed = match kind {
            ResourceKind::Listener => self
                .listeners
                .remove(name)
                .is_some_and(|e| e.active.is_some()),
            ResourceKind::Cluster => self
                .clusters
                .remove(name)
                .is_some_and(|e| e.active.is_some()),
            ResourceKind::RouteConfig => self.route_configs.remove(name).is_some(),
            ResourceKind::LoadAssignment => self.load_assignments.remove(name).is_some(),
            ResourceKind::Secret => self.secrets.remove(name).is_some(),
        };
        self.generation += u64::from(removed);
        removed
    }

    /// Names currently held for a kind (warming ones included).
    pub(crate) fn names(&self, kind: ResourceKind) -> BTreeSet<String> {
        match kind {
            ResourceKind::Listener => self.listeners.keys().cloned().collect(),
            ResourceKind::Cluster => self.clusters.keys().cloned().collect(),
            ResourceKind::RouteConfig => self.route_configs.keys().cloned().collect(),
            ResourceKind::LoadAssignment => self.load_assignments.keys().cloned().collect(),
            ResourceKind::Secret => self.secrets.keys().cloned().collect(),
        }
    }

    /// Resource versions held for a kind, for delta `initial_resource_versions`.
    pub(crate) fn versions(&self, kind: ResourceKind) -> BTreeMap<String, String> {
        fn warmable<T>(m: &BTreeMap<String, Warmable<T>>) -> BTreeMap<String, String> {
            m.iter()
                .filter_map(|(k, e)| e.latest().map(|v| (k.clone(), v.version.clone())))
                .collect()
        }
        fn plain<T>(m: &BTreeMap<String, Versioned<T>>) -> BTreeMap<String, String> {
            m.iter()
                .map(|(k, v)| (k.clone(), v.version.clone()))
                .collect()
        }
        match kind {
            ResourceKind::Listener => warmable(&self.listeners),
            ResourceKind::Cluster => warmable(&self.clusters),
            ResourceKind::RouteConfig => plain(&self.route_configs),
            ResourceKind::LoadAssignment => plain(&self.load_assignments),
            ResourceKind::Secret => plain(&self.secrets),
        }
    }

    /// Route configuration names referenced by listeners, warming and static ones included.
    pub(crate) fn referenced_route_configs(&self) -> BTreeSet<String> {
        let dynamic = self
            .listeners
            .values()
            .flat_map(|e| e.active.iter().chain(e.warming.as_ref().map(|(v, _)| v)))
            .flat_map(|v| v.value.rds_names().map(str::to_owned).collect::<Vec<_>>());
        dynamic
            .chain(self.static_route_configs.iter().cloned())
            .collect()
    }

    /// EDS names referenced by clusters, warming and static ones included.
    pub(crate) fn referenced_load_assignments(&self) -> BTreeSet<String> {
        let dynamic = self
            .clusters
            .values()
            .flat_map(|e| e.active.iter().chain(e.warming.as_ref().map(|(v, _)| v)))
            .filter_map(|v| v.value.eds_service_name().map(str::to_owned));
        dynamic
            .chain(self.static_load_assignments.iter().cloned())
            .collect()
    }

    /// ADS secret names referenced by listeners and clusters, warming and static ones
    /// included.
    pub(crate) fn referenced_secrets(&self) -> BTreeSet<String> {
        self.secret_references()
            .into_iter()
            .map(|(_, _, r)| r.name.clone())
            .chain(self.static_secrets.iter().cloned())
            .collect()
    }

    /// Activates warming listeners and clusters whose dependencies arrived, or whose
    /// warming timeout passed (with a warning: they serve without those dependencies).
    pub(crate) fn promote(&mut self, now: Instant) {
        let routes = &self.route_configs;
        let assignments = &self.load_assignments;
        let secrets = &self.secrets;
        let mut promoted = 0;
        for (name, entry) in &mut self.listeners {
            promoted += promote_entry(
                entry,
                now,
                |l| listener_ready(l, routes, secrets),
                ResourceKind::Listener,
                name,
            );
        }
        for (name, entry) in &mut self.clusters {
            promoted += promote_entry(
                entry,
                now,
                |c| cluster_ready(c, assignments, secrets),
                ResourceKind::Cluster,
                name,
            );
        }
        self.generation += promoted;
    }

    /// The earliest warming deadline, if anything is warming.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let listeners = self
            .listeners
            .values()
            .filter_map(|e| e.warming.as_ref().map(|(_, d)| *d));
        let clusters = self
            .clusters
            .values()
            .filter_map(|e| e.warming.as_ref().map(|(_, d)| *d));
        listeners.chain(clusters).min()
    }

    /// What is in service now.
    pub(crate) fn resources(&self) -> DynamicResources {
        fn active<T>(m: &BTreeMap<String, Warmable<T>>) -> BTreeMap<String, Arc<T>> {
            m.iter()
                .filter_map(|(k, e)| e.active.as_ref().map(|v| (k.clone(), v.value.clone())))
                .collect()
        }
        DynamicResources {
            listeners: active(&self.listeners),
            clusters: active(&self.clusters),
            route_configs: self
                .route_configs
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            load_assignments: self
                .load_assignments
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            resource_versions: BTreeMap::new(),
        }
    }
}

/// Returns 1 when the active value changed.
fn upsert<T: PartialEq>(
    entry: &mut Warmable<T>,
    value: T,
    version: &str,
    ready: bool,
    deadline: Instant,
) -> u64 {
    if entry.active.as_ref().is_some_and(|a| *a.value == value) {
        // Same content again (a new version string, or a revert while a newer one warmed).
        entry.warming = None;
        if let Some(active) = &mut entry.active {
            active.version = version.to_owned();
        }
        return 0;
    }
    let versioned = Versioned {
        value: Arc::new(value),
        version: version.to_owned(),
    };
    if ready {
        entry.active = Some(versioned);
        entry.warming = None;
        1
    } else {
        // Keep the deadline of a resource that was already warming: updates must not
        // postpone it forever.
        let deadline = entry
            .warming
            .as_ref()
            .map_or(deadline, |(_, d)| (*d).min(deadline));
        entry.warming = Some((versioned, deadline));
        0
    }
}

/// Stores `value` under `name`; 1 when that changed what is in service, else 0.
fn replace<T: PartialEq>(
    map: &mut BTreeMap<String, Versioned<T>>,
    name: String,
    value: T,
    version: &str,
) -> u64 {
    let changed = map.get(&name).is_none_or(|old| *old.value != value);
    map.insert(
        name,
        Versioned {
            value: Arc::new(value),
            version: version.to_owned(),
        },
    );
    u64::from(changed)
}

fn promote_entry<T>(
    entry: &mut Warmable<T>,
    now: Instant,
    ready: impl Fn(&T) -> bool,
    kind: ResourceKind,
    name: &str,
) -> u64 {
    let Some((candidate, deadline)) = entry.warming.take() else {
        return 0;
    };
    if ready(&candidate.value) {
        entry.active = Some(candidate);
        1
    } else if now >= deadline {
        let dependency = match kind {
            ResourceKind::Listener => "route configuration (RDS) or secrets (SDS)",
            _ => "load assignment (EDS) or secrets (SDS)",
        };
        tracing::warn!(
            %kind,
            name,
            "warming timed out: active without its {dependency}; requests needing it fail, and a listener or cluster without its secrets stays out of service, until they arrive"
        );
        entry.active = Some(candidate);
        1
    } else {
        entry.warming = Some((candidate, deadline));
        0
    }
}
