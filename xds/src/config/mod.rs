//! Validated, immutable configuration: what the rest of mesh-host reads.
//!
//! Nothing here is a prost type. Every resource is behind an `Arc`, so a new [`MeshConfig`]
//! shares the unchanged resources of the previous one.

mod access_log;
mod cluster;
mod credentials;
mod endpoint;
mod ext_authz;
mod filters;
mod jwt_authn;
mod listener;
mod matcher;
mod ratelimit;
mod rbac;
mod route;
mod tcp_proxy;
mod tls;
mod tracing;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use access_log::{
    AccessLog, AccessLogSink, FormatPiece, FormatText, JsonField, LogFormat, LogOperator,
};
pub use cluster::{
    CircuitBreakers, Cluster, Discovery, HealthCheck, HealthCheckKind, LbPolicy, OutlierDetection,
    RetryBudget, UpstreamProtocol,
};
pub use credentials::{ApiKeyAuth, BasicAuth, KeySource};
pub use endpoint::{Endpoint, HealthStatus, HostPort, LoadAssignment, Locality, LocalityEndpoints};
pub use ext_authz::{
    AuthzService, BufferSettings, ExtAuthz, ExtAuthzPerRoute, GrpcServiceTarget, HttpAuthzService,
};
pub use filters::{
    AbortSource, CorsPolicy, DelaySource, Fault, FaultAbort, FaultDelay, FilterOverride, Fraction,
    HeaderEdit, HeaderMutation, HeaderMutationRules, HttpFilter, HttpFilterConfig, LocalRateLimit,
    PerFilterConfigs, PerRouteConfig, RateLimitAction, RateLimitDescriptor, RateLimitPolicy,
    RbacFilter, TokenBucket, VhRateLimits,
};
pub use jwt_authn::{
    ClaimToHeader, JwksSource, JwtAuthentication, JwtHeader, JwtPerRoute, JwtProvider,
    JwtRequirement, JwtRule, RemoteJwks,
};
pub use listener::{
    CodecType, ConnectionOptions, EscapedSlashes, FilterChain, Http2FloodLimits, Http2Keepalive,
    HttpConnectionManager, Listener, RequestNormalization, RouteSource, ServerHeaderTransformation,
    TrafficDirection, UnderscoresAction,
};
pub use matcher::{
    HeaderMatch, HeaderMatcher, QueryParameterMatcher, SafeRegex, StringMatcher, StringPattern,
};
pub use ratelimit::{GlobalRateLimit, GlobalRateLimitPerRoute, RequestType};
pub use rbac::{Cidr, Permission, Principal, RbacAction, RbacPolicy, RbacRules};
pub use route::{
    AttemptCount, ClusterSpecifier, ForwardAction, HashPolicy, HashSource, HeaderAppendAction,
    HeaderMutations, HeaderValueOption, PathMatch, PathRedirect, RedirectAction, RegexRewrite,
    RetryOn, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
    WeightedCluster,
};
pub use tcp_proxy::{TcpCluster, TcpProxy};
pub use tls::{
    CertificateKeyPair, ClientCertificates, DataSource, DownstreamTls, SanMatcher, SanType, Secret,
    SecretMaterial, UpstreamTls, ValidationContext,
};
pub(crate) use tls::{SdsRefs, SecretRef, SecretSource};
pub use tracing::{CustomTag, CustomTagValue, OpenTelemetry, RouteTracing, Tracing};

/// The xDS resource types mesh-host consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfig,
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    LoadAssignment,
    /// SDS: `envoy.extensions.transport_sockets.tls.v3.Secret`.
    Secret,
}

impl ResourceKind {
    /// All kinds, in the order Envoy subscribes to them: a cluster warms on its endpoints
    /// and secrets, then listeners, whose secrets are asked for with them, then routes.
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Cluster,
        ResourceKind::LoadAssignment,
        ResourceKind::Secret,
        ResourceKind::Listener,
        ResourceKind::RouteConfig,
    ];

    /// The type URL in `Any` and in discovery requests.
    pub fn type_url(self) -> &'static str {
        match self {
            Self::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Self::RouteConfig => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            Self::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Self::LoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            Self::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    /// The kind for a type URL, if it is one mesh-host consumes.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_url() == url)
    }

    /// The scope of the kind's update stats: Envoy's for CDS and LDS; RDS and EDS, which
    /// Envoy counts per route configuration and per cluster, are counted per type here, and
    /// so is SDS, which Envoy counts per secret.
    pub fn stat_scope(self) -> &'static str {
        match self {
            Self::Cluster => "cluster_manager.cds",
            Self::Listener => "listener_manager.lds",
            Self::RouteConfig => "rds",
            Self::LoadAssignment => "eds",
            Self::Secret => "sds",
        }
    }

    /// Whether the client subscribes to every resource of this kind (LDS, CDS) rather than to
    /// the names other resources reference (RDS, EDS, SDS).
    pub fn is_wildcard(self) -> bool {
        matches!(self, Self::Listener | Self::Cluster)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Listener => "listener",
            Self::RouteConfig => "route_config",
            Self::Cluster => "cluster",
            Self::LoadAssignment => "load_assignment",
            Self::Secret => "secret",
        })
    }
}

/// One immutable configuration snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshConfig {
    /// Increases with every published snapshot.
    pub version: u64,
    /// Listeners by name.
    pub listeners: BTreeMap<String, Arc<Listener>>,
    /// RDS route configurations by name (inline ones live in their listener).
    pub route_configs: BTreeMap<String, Arc<RouteConfig>>,
    /// Clusters by name.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// Load assignments by EDS service name.
    pub load_assignments: BTreeMap<String, Arc<LoadAssignment>>,
    /// The last accepted xDS version of each kind (for config dumps).
    pub resource_versions: BTreeMap<ResourceKind, String>,
}

impl MeshConfig {
    /// The endpoints of a cluster: EDS when it is an EDS cluster, else its inline assignment.
    pub fn endpoints_of<'a>(&'a self, cluster: &'a Cluster) -> Option<&'a Arc<LoadAssignment>> {
        match cluster.eds_service_name() {
            Some(service) => self.load_assignments.get(service),
            None => cluster.load_assignment.as_ref(),
        }
    }

    /// The routes of a listener's connection manager, resolving RDS names.
    pub fn routes_of<'a>(
        &'a self,
        http: &'a HttpConnectionManager,
    ) -> Option<&'a Arc<RouteConfig>> {
        match &http.route {
            RouteSource::Inline(routes) => Some(routes),
            RouteSource::Rds { route_config_name } => self.route_configs.get(route_config_name),
        }
    }
}
