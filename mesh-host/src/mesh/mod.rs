//! The mesh handler: a [`HostHandler`] whose listeners, routes, filters and clusters come
//! from xDS (or the same resources in a static bootstrap file). Its listeners run the inbound
//! pipeline ([`crate::inbound`]); its components' requests leave through the outbound area
//! ([`crate::outbound`]). This module only binds listeners and follows the configuration.

mod listeners;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use mesh_xds::store::ConfigStore;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use crate::egress::ClusterStatus;
use crate::frontend::GlobalConnections;
use crate::handler::{HostError, HostHandler, OutgoingFuture, ResolvedWorkload, WorkloadId};
use crate::inbound::{LocalWorkload, LocalWorkloads, MeshInbound};
use crate::metrics::Metrics;
use crate::runtime::{OutboundSender, Runtime};
use crate::snapshot::{Snapshot, SnapshotCollector};
use crate::trace::SpanExporters;
use listeners::ListenerManager;

/// Settings of a [`MeshHandler`] that do not come from xDS.
#[derive(Debug, Clone)]
pub struct MeshHandlerConfig {
    /// How long the connections of a listener that is removed or replaced may take to
    /// finish their requests.
    pub listener_drain: Duration,
    /// How long requests are discouraged (GOAWAY, `connection: close`) when a listener
    /// drains, before its connections are closed (Envoy's `--drain-time-s`).
    pub drain_time: Duration,
    /// The process-wide connection cap listeners count against unless they ignore it.
    pub global_connections: Option<Arc<GlobalConnections>>,
    /// Connection caps by listener name (the bootstrap's runtime keys).
    pub listener_connection_limits: BTreeMap<String, u64>,
    /// The listener whose routes carry the components' outbound requests;
    /// `None`: the listener with `traffic_direction: OUTBOUND`, if any.
    pub egress_listener: Option<String>,
}

/// The product's handler: xDS-configured listeners and routes in front of
/// in-process components.
pub struct MeshHandler {
    mesh: Arc<MeshInbound>,
    runtime: Runtime,
    config: MeshHandlerConfig,
    store: Arc<ConfigStore>,
    listeners: Arc<ListenerManager>,
    watcher: Mutex<Option<JoinHandle<()>>>,
    exporters: Arc<SpanExporters>,
}

impl MeshHandler {
    /// A handler that follows `store`; nothing is bound before `start`.
    pub fn new(
        store: Arc<ConfigStore>,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        config: MeshHandlerConfig,
    ) -> Self {
        // The span exporters send through whichever snapshot is in force, so they exist
        // before the first one is built.
        let current = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let exporters = Arc::new(SpanExporters::new(
            Arc::new(SnapshotCollector::new(Arc::downgrade(&current))),
            metrics.spans_dropped(),
        ));
        current.store(Arc::new(Snapshot::build(
            store.load(),
            config.egress_listener.as_deref(),
            &Snapshot::empty(),
            &exporters,
        )));
        let mesh = Arc::new(MeshInbound {
            snapshot: current,
            workloads: LocalWorkloads::default(),
            metrics,
            egress_listener: config.egress_listener.clone(),
        });
        Self {
            listeners: Arc::new(ListenerManager::new(mesh.clone(), config.clone())),
            mesh,
            runtime,
            config,
            store,
            watcher: Mutex::new(None),
            exporters,
        }
    }

    /// The address a listener is bound to, by listener name.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.addr(name)
    }

    /// The snapshot version in force.
    pub fn config_version(&self) -> u64 {
        self.mesh.snapshot.load().config.version
    }

    /// Every listener of the configuration in force, with its bound address (`None`: a
    /// virtual egress listener, or one that could not bind).
    pub fn listeners(&self) -> Vec<(String, Option<SocketAddr>)> {
        let snapshot = self.mesh.snapshot.load();
        let mut listeners: Vec<(String, Option<SocketAddr>)> = snapshot
            .config
            .listeners
            .keys()
            .map(|name| (name.clone(), self.listeners.addr(name)))
            .collect();
        listeners.sort();
        listeners
    }

    /// The upstream clusters of the configuration in force, as they are now.
    pub fn clusters(&self) -> Vec<ClusterStatus> {
        self.mesh.snapshot.load().upstream.status()
    }

    /// Whether the handler serves the store's latest configuration with every listener
    /// that wants a socket bound.
    pub fn is_serving(&self) -> bool {
        let started = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        let snapshot = self.mesh.snapshot.load();
        started
            && snapshot.config.version == self.store.load().version
            && self.listeners.unbound(&snapshot).is_empty()
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
            let snapshot = self.mesh.snapshot.load_full();
            self.listeners.reconcile(&snapshot).await?;
            let mut versions = self.store.subscribe();
            let store = self.store.clone();
            let mesh = self.mesh.clone();
            let listeners = self.listeners.clone();
            let egress_listener = self.config.egress_listener.clone();
            let exporters = self.exporters.clone();
            let task = tokio::spawn(async move {
                while versions.changed().await.is_ok() {
                    // Routes, filters and clusters of one version are built together and
                    // published in one store.
                    let previous = mesh.snapshot.load_full();
                    let snapshot = Arc::new(Snapshot::build(
                        store.load(),
                        egress_listener.as_deref(),
                        &previous,
                        &exporters,
                    ));
                    mesh.snapshot.store(snapshot.clone());
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
        let workload = LocalWorkload::new(
            &self.runtime,
            resolved.id.clone(),
            resolved.image,
            resolved.settings,
            resolved.policy,
            resolved.principal,
            outbound,
            self.mesh.metrics.workload(&resolved.id),
        )?;
        self.mesh
            .workloads
            .bind(Arc::new(workload), &resolved.clusters)?;
        tracing::info!(workload = %resolved.id, clusters = ?resolved.clusters, "workload serves its clusters");
        Ok(())
    }

    fn on_workload_unbind(&self, id: &WorkloadId) -> Result<(), HostError> {
        if self.mesh.workloads.unbind(id) {
            Ok(())
        } else {
            Err(HostError::UnknownWorkload(id.clone()))
        }
    }

    fn outgoing_request(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutgoingFuture {
        crate::outbound::send(&self.mesh, workload, request, options)
    }
}
