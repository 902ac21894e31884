//! A snapshot-based ADS server for tests, in the spirit of go-control-plane's snapshot cache:
//! set a [`Snapshot`] per node id, and the server pushes it over state-of-the-world and delta
//! streams, records every request it receives, and can be stopped and restarted on the same
//! port. Only for tests: it binds 127.0.0.1 and keeps everything in memory.

mod fixtures;
pub mod resources;
mod session;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use envoy_types::pb::envoy::config::{
    cluster::v3 as cds, endpoint::v3 as eds, listener::v3 as lds, route::v3 as rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as sds;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::ResourceKind;

pub use fixtures::{FixtureError, for_upstream_envoy, load_fixture, resource_from_yaml};

/// One consistent set of resources for a node, under one version.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Version sent as `version_info` (SotW) and `system_version_info` (delta).
    pub version: String,
    /// LDS resources.
    pub listeners: Vec<lds::Listener>,
    /// RDS resources.
    pub routes: Vec<rds::RouteConfiguration>,
    /// CDS resources.
    pub clusters: Vec<cds::Cluster>,
    /// EDS resources.
    pub endpoints: Vec<eds::ClusterLoadAssignment>,
    /// SDS resources, sent only by name, as clients ask for them.
    pub secrets: Vec<sds::Secret>,
}

impl Snapshot {
    /// The names of `kind` a client must have subscribed to before its ACK of this snapshot
    /// counts: route configurations, load assignments and secrets are asked for by name once
    /// the listeners and clusters naming them are in, so an earlier ACK of the same version
    /// may not cover them. Empty for the wildcard kinds.
    pub fn names_to_subscribe(&self, kind: ResourceKind) -> Vec<String> {
        match kind {
            ResourceKind::RouteConfig => self.routes.iter().map(|r| r.name.clone()).collect(),
            ResourceKind::Secret => self.secrets.iter().map(|s| s.name.clone()).collect(),
            ResourceKind::LoadAssignment => self
                .clusters
                .iter()
                .filter_map(|c| {
                    let eds = c.eds_cluster_config.as_ref()?;
                    Some(if eds.service_name.is_empty() {
                        c.name.clone()
                    } else {
                        eds.service_name.clone()
                    })
                })
                .filter(|name| self.endpoints.iter().any(|e| &e.cluster_name == name))
                .collect(),
            ResourceKind::Listener | ResourceKind::Cluster => Vec::new(),
        }
    }
}

/// A snapshot encoded once, by kind and name.
#[derive(Debug, Default)]
struct Encoded {
    version: String,
    resources: BTreeMap<ResourceKind, BTreeMap<String, Any>>,
}

fn encode_all<M: Message + Name>(items: &[M], name: impl Fn(&M) -> &str) -> BTreeMap<String, Any> {
    items
        .iter()
        .map(|m| {
            let any = Any {
                type_url: M::type_url(),
                value: m.encode_to_vec(),
            };
            (name(m).to_owned(), any)
        })
        .collect()
}

impl From<&Snapshot> for Encoded {
    fn from(s: &Snapshot) -> Self {
        let mut resources = BTreeMap::new();
        resources.insert(
            ResourceKind::Listener,
            encode_all(&s.listeners, |l| &l.name),
        );
        resources.insert(
            ResourceKind::RouteConfig,
            encode_all(&s.routes, |r| &r.name),
        );
        resources.insert(ResourceKind::Cluster, encode_all(&s.clusters, |c| &c.name));
        resources.insert(
            ResourceKind::LoadAssignment,
            encode_all(&s.endpoints, |e| &e.cluster_name),
        );
        resources.insert(ResourceKind::Secret, encode_all(&s.secrets, |s| &s.name));
        Self {
            version: s.version.clone(),
            resources,
        }
    }
}

/// A request the server received.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceivedRequest {
    /// State of the world.
    Sotw(DiscoveryRequest),
    /// Incremental.
    Delta(DeltaDiscoveryRequest),
}

impl ReceivedRequest {
    /// The request's type URL.
    pub fn type_url(&self) -> &str {
        match self {
            Self::Sotw(r) => &r.type_url,
            Self::Delta(r) => &r.type_url,
        }
    }

    /// The NACK message, when the request is a NACK.
    pub fn error_message(&self) -> Option<&str> {
        match self {
            Self::Sotw(r) => r.error_detail.as_ref().map(|s| s.message.as_str()),
            Self::Delta(r) => r.error_detail.as_ref().map(|s| s.message.as_str()),
        }
    }

    /// The nonce this request answers (empty for a stream's first request of a type).
    pub fn response_nonce(&self) -> &str {
        match self {
            Self::Sotw(r) => &r.response_nonce,
            Self::Delta(r) => &r.response_nonce,
        }
    }
}

/// A request with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// Stream number, counting from 1 over the server's life (restarts included).
    pub stream: u64,
    /// The node id announced on that stream.
    pub node_id: String,
    /// The request.
    pub request: ReceivedRequest,
}

/// State shared by the server and its sessions.
#[derive(Debug)]
struct Shared {
    snapshots: Mutex<HashMap<String, Arc<Encoded>>>,
    /// Bumped on every `set_snapshot`, so sessions re-check their node's snapshot.
    snapshot_generation: watch::Sender<u64>,
    requests: Mutex<Vec<Recorded>>,
    request_count: watch::Sender<usize>,
    streams: AtomicU64,
    nonces: AtomicU64,
    /// Bumped by `stop` to end every open session.
    kill: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn snapshot(&self, node_id: &str) -> Option<Arc<Encoded>> {
        lock(&self.snapshots).get(node_id).cloned()
    }

    fn record(&self, recorded: Recorded) {
        let count = {
            let mut requests = lock(&self.requests);
            requests.push(recorded);
            requests.len()
        };
        self.request_count.send_replace(count);
    }

    fn next_nonce(&self) -> String {
        (self.nonces.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// The test ADS server.
#[derive(Debug)]
pub struct TestControlPlane {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// PEM certificate chain and key when serving TLS.
    tls: Option<(Vec<u8>, Vec<u8>)>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl TestControlPlane {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on a free port of 127.0.0.1, serving TLS with this PEM certificate chain and key.
    pub async fn start_tls(
        cert_chain_pem: Vec<u8>,
        private_key_pem: Vec<u8>,
    ) -> std::io::Result<Self> {
        Self::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Some((cert_chain_pem, private_key_pem)),
        )
        .await
    }

    /// Starts on `addr` (a loopback address; port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(addr, None).await
    }

    async fn start_with(
        addr: SocketAddr,
        tls: Option<(Vec<u8>, Vec<u8>)>,
    ) -> std::io::Result<Self> {
        let (kill, _) = watch::channel(0);
        let (snapshot_generation, _) = watch::channel(0);
        let (request_count, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            snapshots: Mutex::new(HashMap::new()),
            snapshot_generation,
            requests: Mutex::new(Vec::new()),
            request_count,
            streams: AtomicU64::new(0),
            nonces: AtomicU64::new(0),
            kill,
        });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut plane = Self {
            addr,
            shared,
            tls,
            server: None,
        };
        plane.serve(listener)?;
        Ok(plane)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URI clients connect to.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// Replaces the snapshot of `node_id`; open streams of that node receive the changes.
    pub fn set_snapshot(&self, node_id: &str, snapshot: &Snapshot) {
        lock(&self.shared.snapshots).insert(node_id.to_owned(), Arc::new(Encoded::from(snapshot)));
        self.shared.snapshot_generation.send_modify(|g| *g += 1);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The number of streams opened so far.
    pub fn streams_opened(&self) -> u64 {
        self.shared.streams.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for a received request that satisfies `predicate`.
    pub async fn wait_for_request(
        &self,
        timeout: Duration,
        predicate: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        let mut count = self.shared.request_count.subscribe();
        let search = async {
            loop {
                if let Some(found) = lock(&self.shared.requests).iter().find(|r| predicate(r)) {
                    return found.clone();
                }
                if count.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, search).await.ok()
    }

    /// Ends every stream and closes the port, as a crashed control plane would.
    pub async fn stop(&mut self) {
        self.shared.kill.send_modify(|k| *k += 1);
        if let Some((shutdown, task)) = self.server.take() {
            let _ = shutdown.send(());
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("test control plane did not stop within 5 s");
            }
        }
    }

    /// Serves again on the same port after [`TestControlPlane::stop`].
    pub async fn restart(&mut self) -> std::io::Result<()> {
        // The port can stay busy for a moment while the old connections close.
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if attempts >= 50 => return Err(e),
                Err(_) => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.serve(listener)
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn serve(&mut self, listener: TcpListener) -> std::io::Result<()> {
        let mut builder = tonic::transport::Server::builder();
        if let Some((cert, key)) = &self.tls {
            let identity = tonic::transport::Identity::from_pem(cert, key);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let service = AggregatedDiscoveryServiceServer::new(session::Service {
            shared: self.shared.clone(),
        })
        .max_decoding_message_size(64 * 1024 * 1024);
        let task = tokio::spawn(async move {
            let served = builder
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = shutdown_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "test control plane stopped with an error");
            }
        });
        self.server = Some((shutdown, task));
        Ok(())
    }
}

impl Drop for TestControlPlane {
    fn drop(&mut self) {
        self.shared.kill.send_modify(|k| *k += 1);
        if let Some((shutdown, task)) = self.server.take() {
            let _ = shutdown.send(());
            task.abort();
        }
    }
}
