//! Route configurations (RDS or inline in a listener).

use std::time::Duration;

use super::filters::{PerFilterConfigs, RateLimitPolicy};
use super::matcher::{HeaderMatcher, QueryParameterMatcher, SafeRegex};
use super::tracing::RouteTracing;

/// Envoy's `config.route.v3.RouteConfiguration`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteConfig {
    /// Resource name.
    pub name: String,
    /// Virtual hosts are matched on the authority without its port.
    pub ignore_port_in_host_matching: bool,
    /// Virtual hosts, selected by the request authority.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Header mutations applied to every route of this configuration.
    pub headers: HeaderMutations,
    /// HTTP filter settings for every route of this configuration.
    pub typed_per_filter_config: PerFilterConfigs,
}

/// Headers to add and remove on requests and responses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMutations {
    /// Added to the request before it is forwarded.
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Removed from the request before it is forwarded.
    pub request_headers_to_remove: Vec<String>,
    /// Added to the response.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Removed from the response.
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderMutations {
    /// Whether nothing is added or removed.
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }
}

/// One header to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderValueOption {
    /// Header name, lower case.
    pub name: String,
    /// Header value.
    pub value: String,
    /// What to do when the header already exists.
    pub append: HeaderAppendAction,
}

/// Envoy's `HeaderValueOption.HeaderAppendAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderAppendAction {
    /// Append a value (the default).
    AppendIfExistsOrAdd,
    /// Add only when the header is absent.
    AddIfAbsent,
    /// Replace existing values, or add.
    OverwriteIfExistsOrAdd,
    /// Replace existing values; do nothing when absent.
    OverwriteIfExists,
}

/// Envoy's `config.route.v3.VirtualHost`.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualHost {
    /// Name (unique within the route configuration).
    pub name: String,
    /// Domains (`*`, `*.suffix`, `prefix*`, exact; optional `:port`), Envoy precedence.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// Header mutations for every route of this virtual host.
    pub headers: HeaderMutations,
    /// Default retry policy for routes that have none.
    pub retry_policy: Option<RetryPolicy>,
    /// HTTP filter settings for every route of this virtual host.
    pub typed_per_filter_config: PerFilterConfigs,
    /// Descriptors for the global rate limit filter (`rate_limits`).
    pub rate_limits: Vec<RateLimitPolicy>,
}

/// Envoy's `config.route.v3.Route`.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Optional name.
    pub name: String,
    /// When the route applies.
    pub r#match: RouteMatch,
    /// What to do with a matching request.
    pub action: RouteAction,
    /// Route-level header mutations.
    pub headers: HeaderMutations,
    /// HTTP filter settings for this route.
    pub typed_per_filter_config: PerFilterConfigs,
    /// The route's `decorator` and `tracing` overrides.
    pub tracing: RouteTracing,
}

/// Envoy's `config.route.v3.RouteMatch`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteMatch {
    /// The path test.
    pub path: PathMatch,
    /// Whether prefix/path comparisons are case-sensitive (Envoy default: true).
    pub case_sensitive: bool,
    /// Every header matcher must match.
    pub headers: Vec<HeaderMatcher>,
    /// Every query-parameter matcher must match.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only gRPC requests (`content-type: application/grpc*`) match.
    pub grpc: bool,
}

/// The path part of a [`RouteMatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path (without query) starts with the value.
    Prefix(String),
    /// The path (without query) equals the value.
    Path(String),
    /// The path equals the value or continues with `/` after it.
    PathSeparatedPrefix(String),
    /// The whole path (without query) matches.
    SafeRegex(SafeRegex),
}

/// What a route does.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    /// Forward to a cluster.
    Forward(Box<ForwardAction>),
    /// Answer directly.
    DirectResponse {
        /// HTTP status.
        status: u16,
        /// Inline body, if any.
        body: Option<std::sync::Arc<[u8]>>,
    },
    /// Answer with a redirect.
    Redirect(RedirectAction),
}

/// Envoy's `config.route.v3.RouteAction` (the forwarding part).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardAction {
    /// Where to send the request.
    pub cluster: ClusterSpecifier,
    /// Replaces the matched prefix (or the whole path for a path match).
    pub prefix_rewrite: Option<String>,
    /// Regex substitution on the path.
    pub regex_rewrite: Option<RegexRewrite>,
    /// Replaces the `:authority`/Host header.
    pub host_rewrite_literal: Option<String>,
    /// Whole-request timeout; `None` disables it (Envoy default 15 s when unset, 0 disables).
    pub timeout: Option<Duration>,
    /// Whether the route sets `timeout` itself (otherwise `timeout` is Envoy's default, and a
    /// local workload's own request timeout applies instead).
    pub timeout_configured: bool,
    /// Idle timeout of the stream, if set.
    pub idle_timeout: Option<Duration>,
    /// Maximum stream duration, if set.
    pub max_stream_duration: Option<Duration>,
    /// When set, the `grpc-timeout` header is honoured, capped at this value (`Some(ZERO)` = no cap).
    pub grpc_timeout_header_max: Option<Duration>,
    /// Retry policy (route level, else the virtual host's).
    pub retry_policy: Option<RetryPolicy>,
    /// Descriptors for the global rate limit filter (`rate_limits`).
    pub rate_limits: Vec<RateLimitPolicy>,
    /// The virtual host's `rate_limits` apply too (`include_vh_rate_limits`).
    pub include_vh_rate_limits: bool,
    /// How a request hash is computed for ring hash and maglev clusters.
    pub hash_policy: Vec<HashPolicy>,
    /// Whether `x-envoy-attempt-count` goes on the forwarded request and on its response
    /// (the virtual host's settings).
    pub attempt_count: AttemptCount,
}

/// A virtual host's `include_request_attempt_count` and `include_attempt_count_in_response`:
/// Envoy's router then sets `x-envoy-attempt-count` (1 for the first try) on each try it
/// sends upstream and on the response it passes back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptCount {
    /// On each request sent upstream.
    pub request: bool,
    /// On the response.
    pub response: bool,
}

/// One entry of a route's `hash_policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashPolicy {
    /// What is hashed.
    pub source: HashSource,
    /// When this entry produced a hash, the entries after it are skipped.
    pub terminal: bool,
}

/// What a [`HashPolicy`] hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashSource {
    /// The values of a request header (lower-case name).
    Header(String),
    /// The value of a cookie.
    Cookie(String),
    /// The value of a query parameter.
    QueryParameter(String),
    /// The client's IP address.
    SourceIp,
}

/// Which cluster a forwarded request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSpecifier {
    /// One named cluster.
    Cluster(String),
    /// A weighted choice.
    WeightedClusters {
        /// Sum of the weights.
        total_weight: u32,
        /// The candidates.
        clusters: Vec<WeightedCluster>,
    },
    /// The cluster named by this request header.
    ClusterHeader(String),
}

/// One entry of weighted clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedCluster {
    /// Cluster name.
    pub name: String,
    /// Weight.
    pub weight: u32,
    /// Header mutations when this entry is chosen.
    pub headers: HeaderMutations,
}

/// A compiled `regex_rewrite`.
#[derive(Clone, Debug)]
pub struct RegexRewrite {
    /// The pattern (not anchored: every match is substituted, as in Envoy).
    pub pattern: regex::Regex,
    /// The substitution, with `\1`-style groups converted to the `regex` crate's `${1}`.
    pub substitution: String,
}

impl PartialEq for RegexRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.substitution == other.substitution
    }
}

/// Conditions under which a request is retried (Envoy's `x-envoy-retry-on` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetryOn {
    /// `5xx`
    FiveXx,
    /// `gateway-error` (502, 503, 504)
    GatewayError,
    /// `reset`
    Reset,
    /// `connect-failure`
    ConnectFailure,
    /// `refused-stream`
    RefusedStream,
    /// `retriable-4xx` (409)
    Retriable4xx,
    /// `retriable-status-codes`
    RetriableStatusCodes,
    /// gRPC `cancelled`
    GrpcCancelled,
    /// gRPC `deadline-exceeded`
    GrpcDeadlineExceeded,
    /// gRPC `internal`
    GrpcInternal,
    /// gRPC `resource-exhausted`
    GrpcResourceExhausted,
    /// gRPC `unavailable`
    GrpcUnavailable,
}

impl RetryOn {
    /// Parses one Envoy retry-on name.
    pub fn from_envoy_name(name: &str) -> Option<Self> {
        Some(match name {
            "5xx" => Self::FiveXx,
            "gateway-error" => Self::GatewayError,
            "reset" => Self::Reset,
            "connect-failure" => Self::ConnectFailure,
            "refused-stream" => Self::RefusedStream,
            "retriable-4xx" => Self::Retriable4xx,
            "retriable-status-codes" => Self::RetriableStatusCodes,
            "cancelled" => Self::GrpcCancelled,
            "deadline-exceeded" => Self::GrpcDeadlineExceeded,
            "internal" => Self::GrpcInternal,
            "resource-exhausted" => Self::GrpcResourceExhausted,
            "unavailable" => Self::GrpcUnavailable,
            _ => return None,
        })
    }
}

/// Envoy's `config.route.v3.RetryPolicy` (supported subset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retry conditions.
    pub retry_on: std::collections::BTreeSet<RetryOn>,
    /// Maximum retries (Envoy default 1).
    pub num_retries: u32,
    /// Timeout of each try, if set.
    pub per_try_timeout: Option<Duration>,
    /// Status codes retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// Prefer hosts not tried before (`envoy.retry_host_predicates.previous_hosts`).
    pub avoid_previous_hosts: bool,
}

/// Envoy's `config.route.v3.RedirectAction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectAction {
    /// New scheme (`https_redirect` is `Some("https")`).
    pub scheme: Option<String>,
    /// New host.
    pub host: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New path or prefix.
    pub path: Option<PathRedirect>,
    /// Redirect status (301 default, 302, 303, 307, 308).
    pub response_code: u16,
    /// Drop the query string.
    pub strip_query: bool,
}

/// How a redirect rewrites the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRedirect {
    /// Replace the whole path.
    Path(String),
    /// Replace the matched prefix.
    Prefix(String),
}
