//! Endpoints of a cluster (EDS or inline `load_assignment`).

/// A host and port; the host is an IP address or a DNS name (DNS clusters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// IP address or DNS name.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Envoy's `config.endpoint.v3.ClusterLoadAssignment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadAssignment {
    /// The cluster (or EDS service) name.
    pub cluster_name: String,
    /// Endpoints grouped by locality and priority.
    pub endpoints: Vec<LocalityEndpoints>,
}

impl LoadAssignment {
    /// Every endpoint, in order.
    pub fn all_endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().flat_map(|l| l.endpoints.iter())
    }
}

/// Where endpoints run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

/// Envoy's `config.endpoint.v3.LocalityLbEndpoints`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalityEndpoints {
    /// Locality.
    pub locality: Locality,
    /// Priority (0 is the highest).
    pub priority: u32,
    /// Locality weight, if set.
    pub load_balancing_weight: Option<u32>,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// Envoy's `config.endpoint.v3.LbEndpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub address: HostPort,
    /// Load-balancing weight (default 1).
    pub weight: u32,
    /// Health as reported by the control plane.
    pub health: HealthStatus,
    /// Port active health checks use instead of the endpoint's.
    pub health_check_port: Option<u16>,
    /// Active health checks skip this endpoint.
    pub disable_active_health_check: bool,
}

/// Envoy's `config.core.v3.HealthStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Not known (treated as healthy by Envoy).
    Unknown,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining: no new requests.
    Draining,
    /// Health check timed out.
    Timeout,
    /// Degraded: used only when no healthy endpoint remains.
    Degraded,
}

impl HealthStatus {
    /// Whether Envoy would send new requests to such an endpoint in normal conditions.
    pub fn is_routable(self) -> bool {
        matches!(self, Self::Unknown | Self::Healthy)
    }
}
