//! The live state of upstream clusters: endpoints with their health,
//! ejection and connection pools, the balancer and the breakers. Rebuilt
//! from each configuration snapshot, keeping pools, detector and health-check
//! state of endpoints whose cluster settings did not change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mesh_xds::config::{
    CircuitBreakers, Cluster, Endpoint, HealthStatus, HostPort, LoadAssignment, MeshConfig,
};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;

use super::balancer::{Balancer, Candidate, smooth_weighted};
use super::breakers::Limits;
use super::connector::{EndpointConnector, Transport};
use super::health_check::{self, ActiveHealth};
use super::outlier::{Outcome, OutlierState};
use super::upstream_tls::{self, UpstreamTlsError};

/// How long an idle pooled connection is kept (Envoy's default idle timeout
/// is one hour; upstreams usually close sooner, so stay below common
/// server keep-alive timeouts).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Envoy's default EDS overprovisioning factor (140 %): a locality keeps its
/// full weight while at least 1/1.4 of its endpoints are usable.
const OVERPROVISIONING_PERCENT: u64 = 140;

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
    /// Active health, when the cluster checks its endpoints.
    health: Option<Arc<ActiveHealth>>,
    /// HTTP/1.1 keep-alive, or whatever ALPN picks over TLS.
    http1: PooledClient,
    /// HTTP/2 (prior knowledge, or ALPN `h2` only over TLS), multiplexed.
    http2: PooledClient,
}

impl EndpointState {
    fn new(endpoint: &Endpoint, cluster: &ClusterShared, config: &Cluster) -> Self {
        let address = &endpoint.address;
        let per_host = config
            .circuit_breakers
            .per_host_max_connections
            .map(|max| Arc::new(Semaphore::new(max as usize)));
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
                    per_host: per_host.clone(),
                })
        };
        let health = match &config.health_check {
            Some(check) if !endpoint.disable_active_health_check => {
                let health = Arc::new(ActiveHealth::default());
                let target = health_check::Target {
                    connector: EndpointConnector {
                        address: HostPort {
                            host: address.host.clone(),
                            port: endpoint.health_check_port.unwrap_or(address.port),
                        },
                        transport: cluster.health_transport.clone(),
                        per_host: None,
                    },
                    cluster: config.name.clone(),
                    tls: config.tls.is_some(),
                };
                health_check::spawn(
                    &health,
                    Arc::new(check.clone()),
                    target,
                    cluster.traffic.clone(),
                );
                Some(health)
            }
            _ => None,
        };
        Self {
            label: address.to_string(),
            active: AtomicU32::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            outlier: OutlierState::default(),
            health,
            http1: client(&cluster.transports.http1, false),
            http2: client(&cluster.transports.http2, true),
        }
    }

    /// The pool for a request: HTTP/2 or the HTTP/1.1-or-ALPN one.
    pub(super) fn client(&self, http2: bool) -> &PooledClient {
        if http2 { &self.http2 } else { &self.http1 }
    }

    /// Whether the cluster's active health check finds this endpoint failing.
    pub(super) fn failed_active_hc(&self) -> bool {
        self.health
            .as_ref()
            .is_some_and(|health| !health.is_healthy())
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

    /// Whether active health checks (if any) pass.
    fn passes_health_checks(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_healthy())
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
    /// Index into the cluster's localities.
    locality: usize,
    pub(super) state: Arc<EndpointState>,
}

#[derive(Clone)]
struct Transports {
    http1: Transport,
    http2: Transport,
}

/// What endpoints of a cluster share and keep across snapshots while the
/// cluster's connection settings stay the same.
#[derive(Clone)]
struct ClusterShared {
    transports: Transports,
    /// Health checks connect outside the cluster's breakers.
    health_transport: Transport,
    limits: Arc<Limits>,
    /// Whether the cluster has had a request (Envoy's `no_traffic_interval`).
    traffic: Arc<AtomicBool>,
}

/// One cluster, ready to take requests.
pub(super) struct ClusterState {
    pub(super) config: Arc<Cluster>,
    assignment: Option<Arc<LoadAssignment>>,
    pub(super) hosts: Vec<Host>,
    /// Locality weights, by the hosts' `locality` index.
    localities: Vec<Option<u32>>,
    /// Smooth round robin over localities (`locality_weighted`).
    locality_current: Mutex<Vec<i64>>,
    pub(super) limits: Arc<Limits>,
    balancer: Balancer,
    shared: ClusterShared,
}

impl ClusterState {
    fn build(
        config: Arc<Cluster>,
        assignment: Option<Arc<LoadAssignment>>,
        previous: Option<&ClusterState>,
    ) -> Result<Self, UpstreamTlsError> {
        // Pools, breakers and health checks survive an endpoint update, not a
        // change of the cluster's own settings (TLS, protocol, timeouts,
        // thresholds, health checks).
        let reusable = previous.filter(|p| same_connection_settings(&p.config, &config));
        let shared = match reusable {
            Some(previous) => previous.shared.clone(),
            None => new_shared(&config)?,
        };
        let reused: HashMap<&HostPort, &Arc<EndpointState>> = reusable
            .map(|p| p.hosts.iter().map(|h| (&h.address, &h.state)).collect())
            .unwrap_or_default();
        let mut hosts = Vec::new();
        let mut localities = Vec::new();
        for locality in assignment.iter().flat_map(|a| a.endpoints.iter()) {
            let index = localities.len();
            localities.push(locality.load_balancing_weight);
            for endpoint in &locality.endpoints {
                let state = match reused.get(&endpoint.address) {
                    Some(state) => Arc::clone(state),
                    None => Arc::new(EndpointState::new(endpoint, &shared, &config)),
                };
                hosts.push(Host {
                    address: endpoint.address.clone(),
                    weight: endpoint.weight.max(1),
                    health: endpoint.health,
                    priority: locality.priority,
                    locality: index,
                    state,
                });
            }
        }
        // Envoy keeps an endpoint that discovery removed while its active
        // health checks pass, unless told to ignore health on removal.
        if let Some(previous) = reusable
            && config.health_check.is_some()
            && !config.ignore_health_on_host_removal
        {
            for old in &previous.hosts {
                let kept = hosts.iter().any(|h| h.address == old.address);
                if !kept && old.state.health.as_ref().is_some_and(|h| h.is_healthy()) {
                    let index = localities.len();
                    localities.push(previous.localities.get(old.locality).copied().flatten());
                    hosts.push(Host {
                        address: old.address.clone(),
                        weight: old.weight,
                        health: old.health,
                        priority: old.priority,
                        locality: index,
                        state: old.state.clone(),
                    });
                }
            }
        }
        let weighted: Vec<(&HostPort, u32)> =
            hosts.iter().map(|h| (&h.address, h.weight)).collect();
        Ok(Self {
            balancer: Balancer::new(config.lb_policy, &weighted),
            locality_current: Mutex::new(vec![0; localities.len()]),
            localities,
            limits: shared.limits.clone(),
            config,
            assignment,
            hosts,
            shared,
        })
    }

    /// Marks the cluster as used (health checks leave the no-traffic interval).
    pub(super) fn note_traffic(&self) {
        self.shared.traffic.store(true, Ordering::Release);
    }

    /// Chooses an endpoint: the highest priority with usable endpoints
    /// (healthy or unknown, passing active health checks, not ejected); all
    /// of that priority when too few are usable (Envoy's panic mode);
    /// degraded ones when nothing else is. With locality weighting a locality
    /// is chosen first by its weight scaled by its share of usable endpoints.
    /// Endpoints in `avoid` (tried before) are skipped when others remain.
    pub(super) fn pick(&self, avoid: &[usize], hash: Option<u64>) -> Option<usize> {
        let now = Instant::now();
        let usable = |host: &Host| {
            host.health.is_routable()
                && host.state.passes_health_checks()
                && !host.state.outlier.is_ejected(now)
        };
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
            let panic = (good.len() as f64) * 100.0
                < (level.len() as f64) * self.config.healthy_panic_threshold;
            chosen = if self.config.locality_weighted {
                self.by_locality(&level, &good, panic)
            } else if panic {
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
        self.balancer.pick(&candidates, hash)
    }

    /// The hosts of one locality of a priority level, chosen by effective
    /// locality weight (localities without a weight take no traffic).
    fn by_locality(&self, level: &[usize], good: &[usize], panic: bool) -> Vec<usize> {
        let mut effective: Vec<(usize, u32)> = Vec::new();
        for (locality, weight) in self.localities.iter().enumerate() {
            let Some(weight) = weight.filter(|w| *w > 0) else {
                continue;
            };
            let total = level
                .iter()
                .filter(|&&i| self.hosts[i].locality == locality)
                .count() as u64;
            if total == 0 {
                continue;
            }
            let usable = good
                .iter()
                .filter(|&&i| self.hosts[i].locality == locality)
                .count() as u64;
            let available = if panic {
                100
            } else {
                (OVERPROVISIONING_PERCENT * usable / total).min(100)
            };
            let scaled = u64::from(weight) * available / 100;
            if scaled > 0 {
                effective.push((locality, u32::try_from(scaled).unwrap_or(u32::MAX)));
            }
        }
        let mut current = self
            .locality_current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(locality) = smooth_weighted(&mut current, effective.into_iter()) else {
            return Vec::new();
        };
        let pool = if panic { level } else { good };
        pool.iter()
            .copied()
            .filter(|&i| self.hosts[i].locality == locality)
            .collect()
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

fn new_shared(config: &Cluster) -> Result<ClusterShared, UpstreamTlsError> {
    let limits = Arc::new(Limits::new(config.circuit_breakers));
    let transport = |h2_pool, limits: &Arc<Limits>| -> Result<Transport, UpstreamTlsError> {
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
    let unlimited = Arc::new(Limits::new(CircuitBreakers {
        max_connections: u32::MAX,
        max_pending_requests: u32::MAX,
        max_requests: u32::MAX,
        max_retries: 0,
        retry_budget: None,
        per_host_max_connections: None,
    }));
    let http2_checks = match &config.health_check {
        Some(check) => matches!(
            check.kind,
            mesh_xds::config::HealthCheckKind::Grpc { .. }
                | mesh_xds::config::HealthCheckKind::Http { http2: true, .. }
        ),
        None => false,
    };
    Ok(ClusterShared {
        transports: Transports {
            http1: transport(false, &limits)?,
            http2: transport(true, &limits)?,
        },
        health_transport: transport(http2_checks, &unlimited)?,
        limits,
        traffic: Arc::new(AtomicBool::new(false)),
    })
}

fn same_connection_settings(a: &Cluster, b: &Cluster) -> bool {
    a.connect_timeout == b.connect_timeout
        && a.protocol == b.protocol
        && a.tls == b.tls
        && a.circuit_breakers == b.circuit_breakers
        && a.health_check == b.health_check
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
