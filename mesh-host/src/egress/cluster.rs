//! The live state of upstream clusters: endpoints with their health,
//! ejection and connection pools, the balancer and the breakers. Rebuilt
//! from each configuration snapshot, keeping pools and detector state of
//! endpoints whose cluster settings did not change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mesh_xds::config::{Cluster, HealthStatus, HostPort, LoadAssignment, MeshConfig};
use wasmtime_wasi_http::WasiBody;

use super::balancer::{Balancer, Candidate};
use super::breakers::Limits;
use super::connector::{EndpointConnector, Transport};
use super::outlier::{Outcome, OutlierState};
use super::upstream_tls::{self, UpstreamTlsError};

/// How long an idle pooled connection is kept (Envoy's default idle timeout
/// is one hour; upstreams usually close sooner, so stay below common
/// server keep-alive timeouts).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Envoy's default `healthy_panic_threshold`: below this share of usable
/// endpoints, balance over all of them.
const PANIC_THRESHOLD_PERCENT: usize = 50;

type PooledClient = Client<EndpointConnector, WasiBody>;

/// The connection pools and counters of one endpoint; kept across
/// snapshots while its cluster's connection settings stay the same.
pub(super) struct EndpointState {
    pub(super) label: String,
    active: AtomicU32,
    /// Tries sent, and those that failed (5xx, or no response), for `/clusters`.
    pub(super) rq_total: AtomicU64,
    pub(super) rq_error: AtomicU64,
    pub(super) outlier: OutlierState,
    /// HTTP/1.1 keep-alive, or whatever ALPN picks over TLS.
    http1: PooledClient,
    /// HTTP/2 (prior knowledge, or ALPN `h2` only over TLS), multiplexed.
    http2: PooledClient,
}

impl EndpointState {
    fn new(address: &HostPort, transports: &Transports) -> Self {
        let client = |transport: &Transport, h2: bool| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(h2)
                // The Host header is the request's authority, set before.
                .set_host(false)
                .build(EndpointConnector {
                    address: address.clone(),
                    transport: transport.clone(),
                })
        };
        Self {
            label: address.to_string(),
            active: AtomicU32::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            outlier: OutlierState::default(),
            http1: client(&transports.http1, false),
            http2: client(&transports.http2, true),
        }
    }

    /// The pool for a request: HTTP/2 or the HTTP/1.1-or-ALPN one.
    pub(super) fn client(&self, http2: bool) -> &PooledClient {
        if http2 { &self.http2 } else { &self.http1 }
    }

    /// Requests in flight to this endpoint.
    pub(super) fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Counts a request in flight until the guard drops.
    pub(super) fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        ActiveRequest {
            endpoint: self.clone(),
        }
    }
}

/// One request in flight to an endpoint (for least-request balancing).
pub(super) struct ActiveRequest {
    endpoint: Arc<EndpointState>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One endpoint as the current snapshot describes it.
pub(super) struct Host {
    pub(super) address: HostPort,
    pub(super) weight: u32,
    pub(super) health: HealthStatus,
    pub(super) priority: u32,
    pub(super) state: Arc<EndpointState>,
}

#[derive(Clone)]
struct Transports {
    http1: Transport,
    http2: Transport,
}

/// One cluster, ready to take requests.
pub(super) struct ClusterState {
    pub(super) config: Arc<Cluster>,
    assignment: Option<Arc<LoadAssignment>>,
    pub(super) hosts: Vec<Host>,
    pub(super) limits: Arc<Limits>,
    balancer: Balancer,
    transports: Transports,
}

impl ClusterState {
    fn build(
        config: Arc<Cluster>,
        assignment: Option<Arc<LoadAssignment>>,
        previous: Option<&ClusterState>,
    ) -> Result<Self, UpstreamTlsError> {
        // Pools and breakers survive an endpoint update, not a change of the
        // cluster's own settings (TLS, protocol, timeouts, thresholds).
        let reusable = previous.filter(|p| same_connection_settings(&p.config, &config));
        let (transports, limits) = match reusable {
            Some(previous) => (previous.transports.clone(), previous.limits.clone()),
            None => {
                let limits = Arc::new(Limits::new(config.circuit_breakers));
                let transport = |h2_pool| -> Result<Transport, UpstreamTlsError> {
                    Ok(Transport {
                        connect_timeout: config.connect_timeout,
                        tls: config
                            .tls
                            .as_ref()
                            .map(|tls| upstream_tls::build(tls, config.protocol, h2_pool))
                            .transpose()?,
                        limits: limits.clone(),
                    })
                };
                let transports = Transports {
                    http1: transport(false)?,
                    http2: transport(true)?,
                };
                (transports, limits)
            }
        };
        let reused: HashMap<&HostPort, &Arc<EndpointState>> = reusable
            .map(|p| p.hosts.iter().map(|h| (&h.address, &h.state)).collect())
            .unwrap_or_default();
        let mut hosts = Vec::new();
        for locality in assignment.iter().flat_map(|a| a.endpoints.iter()) {
            for endpoint in &locality.endpoints {
                let state = match reused.get(&endpoint.address) {
                    Some(state) => Arc::clone(state),
                    None => Arc::new(EndpointState::new(&endpoint.address, &transports)),
                };
                hosts.push(Host {
                    address: endpoint.address.clone(),
                    weight: endpoint.weight.max(1),
                    health: endpoint.health,
                    priority: locality.priority,
                    state,
                });
            }
        }
        Ok(Self {
            balancer: Balancer::new(config.lb_policy, hosts.len()),
            config,
            assignment,
            hosts,
            limits,
            transports,
        })
    }

    /// Chooses an endpoint: the highest priority with usable endpoints
    /// (healthy or unknown, not ejected); all of that priority when too few
    /// are usable (Envoy's panic mode); degraded ones when nothing else is.
    /// Endpoints in `avoid` (tried before) are skipped when others remain.
    pub(super) fn pick(&self, avoid: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let usable = |host: &Host| host.health.is_routable() && !host.state.outlier.is_ejected(now);
        let mut priorities: Vec<u32> = self.hosts.iter().map(|h| h.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let mut chosen: Vec<usize> = Vec::new();
        for priority in &priorities {
            let level: Vec<usize> = (0..self.hosts.len())
                .filter(|&i| self.hosts[i].priority == *priority)
                .collect();
            let good: Vec<usize> = level
                .iter()
                .copied()
                .filter(|&i| usable(&self.hosts[i]))
                .collect();
            if good.is_empty() {
                continue;
            }
            chosen = if good.len() * 100 < level.len() * PANIC_THRESHOLD_PERCENT {
                level
            } else {
                good
            };
            break;
        }
        if chosen.is_empty() {
            chosen = (0..self.hosts.len())
                .filter(|&i| {
                    self.hosts[i].health == HealthStatus::Degraded
                        && !self.hosts[i].state.outlier.is_ejected(now)
                })
                .collect();
        }
        if chosen.iter().any(|i| !avoid.contains(i)) {
            chosen.retain(|i| !avoid.contains(i));
        }
        let candidates: Vec<Candidate> = chosen
            .into_iter()
            .map(|index| Candidate {
                index,
                weight: self.hosts[index].weight,
                active: self.hosts[index].state.active.load(Ordering::Acquire),
            })
            .collect();
        self.balancer.pick(&candidates)
    }

    /// Counts the try's outcome, and feeds the outlier detector (when the cluster has one).
    pub(super) fn record(&self, index: usize, outcome: Outcome) {
        if let Some(host) = self.hosts.get(index)
            && matches!(outcome, Outcome::LocalFailure | Outcome::Status(500..))
        {
            host.state.rq_error.fetch_add(1, Ordering::Relaxed);
        }
        let (Some(detection), Some(host)) = (&self.config.outlier_detection, self.hosts.get(index))
        else {
            return;
        };
        let now = Instant::now();
        let ejected_now = || {
            self.hosts
                .iter()
                .filter(|h| h.state.outlier.is_ejected(now))
                .count()
        };
        // Envoy ejects at least one endpoint whatever max_ejection_percent says.
        let may_eject = || {
            let ejected = ejected_now();
            ejected == 0
                || ejected * 100 < self.hosts.len() * detection.max_ejection_percent as usize
        };
        if host
            .state
            .outlier
            .record(detection, outcome, now, may_eject)
        {
            tracing::warn!(
                cluster = %self.config.name,
                endpoint = %host.address,
                "endpoint ejected by outlier detection"
            );
        }
    }
}

fn same_connection_settings(a: &Cluster, b: &Cluster) -> bool {
    a.connect_timeout == b.connect_timeout
        && a.protocol == b.protocol
        && a.tls == b.tls
        && a.circuit_breakers == b.circuit_breakers
}

/// Every cluster of a snapshot.
#[derive(Default)]
pub(super) struct ClusterSet {
    clusters: HashMap<String, Arc<ClusterState>>,
}

impl ClusterSet {
    /// The clusters of `config`, reusing what `previous` already has.
    pub(super) fn build(config: &MeshConfig, previous: &ClusterSet) -> ClusterSet {
        let mut clusters = HashMap::with_capacity(config.clusters.len());
        for (name, cluster) in &config.clusters {
            let assignment = config.endpoints_of(cluster).cloned();
            let old = previous.clusters.get(name);
            if let Some(old) = old
                && old.config == *cluster
                && old.assignment == assignment
            {
                clusters.insert(name.clone(), old.clone());
                continue;
            }
            match ClusterState::build(cluster.clone(), assignment, old.map(|o| o.as_ref())) {
                Ok(state) => {
                    clusters.insert(name.clone(), Arc::new(state));
                }
                Err(error) => {
                    tracing::error!(cluster = %name, "cluster not usable: {error}");
                }
            }
        }
        ClusterSet { clusters }
    }

    /// The cluster by name.
    pub(super) fn get(&self, name: &str) -> Option<&Arc<ClusterState>> {
        self.clusters.get(name)
    }

    /// Every cluster, in name order.
    pub(super) fn all(&self) -> Vec<&Arc<ClusterState>> {
        let mut all: Vec<&Arc<ClusterState>> = self.clusters.values().collect();
        all.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        all
    }
}
