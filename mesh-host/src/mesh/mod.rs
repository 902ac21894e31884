//! The mesh handler: a [`HostHandler`] whose listeners, routes and clusters
//! come from xDS (or the same resources in a static bootstrap file) and whose
//! routing is Envoy's. A route to a cluster that a local workload serves runs
//! the component in-process; any other cluster is reached through the
//! upstream client ([`Egress`]), which is also the only way out for the
//! components' own requests (routed by the egress listener).

mod dispatch;
mod listeners;
mod outbound;
mod snapshot;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use mesh_policies::WorkloadPolicy;
use mesh_xds::store::ConfigStore;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use crate::egress::Egress;
use crate::handler::{HostError, HostHandler, OutgoingFuture, ResolvedWorkload, WorkloadId};
use crate::metrics::Metrics;
use crate::runtime::{OutboundSender, Runtime, Workload};
use listeners::ListenerManager;
use snapshot::MeshSnapshot;

/// Settings of a [`MeshHandler`] that do not come from xDS.
#[derive(Debug, Clone)]
pub struct MeshHandlerConfig {
    /// How long a listener that is removed or replaced may drain.
    pub listener_drain: Duration,
    /// The listener whose routes carry the components' outbound requests;
    /// `None`: the listener with `traffic_direction: OUTBOUND`, if any.
    pub egress_listener: Option<String>,
}

/// A workload bound to the clusters it serves.
struct Bound {
    id: WorkloadId,
    workload: Arc<Workload>,
    policy: Arc<WorkloadPolicy>,
}

/// State shared by the handler, its listeners and their dispatchers.
struct Shared {
    runtime: Runtime,
    metrics: Arc<Metrics>,
    config: MeshHandlerConfig,
    snapshot: ArcSwap<MeshSnapshot>,
    /// The upstream client: remote clusters and the egress path.
    egress: Egress,
    /// Workloads by the xDS cluster they serve.
    by_cluster: ArcSwap<HashMap<String, Arc<Bound>>>,
    // Serialises writers of `by_cluster`.
    bind_lock: Mutex<()>,
}

/// The product's handler: xDS-configured listeners and routes in front of
/// in-process components.
pub struct MeshHandler {
    shared: Arc<Shared>,
    store: Arc<ConfigStore>,
    listeners: Arc<ListenerManager>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl MeshHandler {
    /// A handler that follows `store`; nothing is bound before `start`.
    pub fn new(
        store: Arc<ConfigStore>,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        config: MeshHandlerConfig,
    ) -> Self {
        let first = store.load();
        let snapshot = MeshSnapshot::build(first.clone(), config.egress_listener.as_deref());
        let egress = Egress::new();
        egress.update(&first);
        let shared = Arc::new(Shared {
            runtime,
            metrics,
            config,
            snapshot: ArcSwap::from_pointee(snapshot),
            egress,
            by_cluster: ArcSwap::default(),
            bind_lock: Mutex::new(()),
        });
        Self {
            listeners: Arc::new(ListenerManager::new(shared.clone())),
            shared,
            store,
            watcher: Mutex::new(None),
        }
    }

    /// The address a listener is bound to, by listener name.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.addr(name)
    }

    /// The snapshot version in force.
    pub fn config_version(&self) -> u64 {
        self.shared.snapshot.load().config.version
    }
}

impl HostHandler for MeshHandler {
    fn start(self: Arc<Self>) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(async move {
            if self
                .watcher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
            {
                return Err(HostError::AlreadyStarted);
            }
            // Static listeners that cannot bind are a startup error; later
            // changes are logged and the previous listeners keep serving.
            let snapshot = self.shared.snapshot.load_full();
            self.listeners.reconcile(&snapshot).await?;
            let mut versions = self.store.subscribe();
            let store = self.store.clone();
            let shared = self.shared.clone();
            let listeners = self.listeners.clone();
            let task = tokio::spawn(async move {
                while versions.changed().await.is_ok() {
                    let config = store.load();
                    // Clusters first: a route in the new snapshot may name a
                    // cluster that only the new configuration has.
                    shared.egress.update(&config);
                    let snapshot = Arc::new(MeshSnapshot::build(
                        config,
                        shared.config.egress_listener.as_deref(),
                    ));
                    shared.snapshot.store(snapshot.clone());
                    tracing::info!(
                        version = snapshot.config.version,
                        "configuration snapshot applied"
                    );
                    if let Err(error) = listeners.reconcile(&snapshot).await {
                        tracing::error!(
                            "listener update failed, previous listeners keep serving: {error}"
                        );
                    }
                }
            });
            *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
            Ok(())
        })
    }

    fn stop(&self, drain: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let watcher = self
                .watcher
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(watcher) = watcher {
                watcher.abort();
            }
            self.listeners.stop_all(drain).await;
        })
    }

    fn bound_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.addrs()
    }

    fn on_workload_resolved(self: Arc<Self>, resolved: ResolvedWorkload) -> Result<(), HostError> {
        let outbound: Weak<dyn OutboundSender> = Arc::downgrade(&self) as Weak<Self>;
        let workload = Arc::new(Workload::new(
            &self.shared.runtime,
            resolved.id.clone(),
            resolved.image.clone(),
            outbound,
            resolved.settings.clone(),
            self.shared.metrics.workload(&resolved.id),
        ));
        let bound = Arc::new(Bound {
            id: resolved.id.clone(),
            workload,
            policy: resolved.policy.clone(),
        });
        let _guard = self
            .shared
            .bind_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.shared.by_cluster.load());
        if next.values().any(|existing| existing.id == resolved.id) {
            return Err(HostError::DuplicateWorkload(resolved.id));
        }
        for cluster in &resolved.clusters {
            next.insert(cluster.clone(), bound.clone());
        }
        self.shared.by_cluster.store(Arc::new(next));
        tracing::info!(workload = %resolved.id, clusters = ?resolved.clusters, "workload serves its clusters");
        Ok(())
    }

    fn on_workload_unbind(&self, id: &WorkloadId) -> Result<(), HostError> {
        let _guard = self
            .shared
            .bind_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.shared.by_cluster.load());
        let before = next.len();
        next.retain(|_, bound| &bound.id != id);
        if next.len() == before {
            return Err(HostError::UnknownWorkload(id.clone()));
        }
        self.shared.by_cluster.store(Arc::new(next));
        Ok(())
    }

    fn outgoing_request(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutgoingFuture {
        outbound::send(&self.shared, workload, request, options)
    }
}
