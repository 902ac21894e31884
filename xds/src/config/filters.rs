//! The HTTP filters of a connection manager and their per-route overrides
//! (`typed_per_filter_config`), as plain data. The host runs them in order
//! with Envoy's semantics; these types say only what each is configured to do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::credentials::{ApiKeyAuth, BasicAuth};
use super::ext_authz::{ExtAuthz, ExtAuthzPerRoute};
use super::jwt_authn::{JwtAuthentication, JwtPerRoute};
use super::matcher::{HeaderMatcher, StringMatcher};
use super::ratelimit::{GlobalRateLimit, GlobalRateLimitPerRoute};
use super::rbac::RbacRules;
use super::route::HeaderValueOption;

/// One entry of `HttpConnectionManager.http_filters` (the router is not one:
/// it is implied, last).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpFilter {
    /// The filter's name: the key routes use in `typed_per_filter_config`.
    pub name: String,
    /// Disabled unless a route, virtual host or route configuration enables
    /// it (`disabled: true`).
    pub disabled: bool,
    /// What the filter does.
    pub config: HttpFilterConfig,
}

/// The filters mesh-host runs.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpFilterConfig {
    /// `envoy.filters.http.rbac`.
    Rbac(RbacFilter),
    /// `envoy.filters.http.local_ratelimit`.
    LocalRateLimit(Arc<LocalRateLimit>),
    /// `envoy.filters.http.fault`.
    Fault(Arc<Fault>),
    /// `envoy.filters.http.cors`: the policies live on routes and virtual hosts.
    Cors,
    /// `envoy.filters.http.header_mutation`.
    HeaderMutation(Arc<HeaderMutation>),
    /// `envoy.filters.http.ext_authz`.
    ExtAuthz(Arc<ExtAuthz>),
    /// `envoy.filters.http.jwt_authn`.
    JwtAuthn(Arc<JwtAuthentication>),
    /// `envoy.filters.http.ratelimit` (a global rate-limit service).
    RateLimit(Arc<GlobalRateLimit>),
    /// `envoy.filters.http.basic_auth`.
    BasicAuth(Arc<BasicAuth>),
    /// `envoy.filters.http.api_key_auth`.
    ApiKeyAuth(Arc<ApiKeyAuth>),
    /// A filter that only produces telemetry (`grpc_stats`, Istio's stats and
    /// metadata exchange): accepted, no effect on requests.
    Telemetry,
}

/// `typed_per_filter_config`: overrides by filter name, on a route, a
/// virtual host or a route configuration. The most specific level that names
/// a filter wins.
pub type PerFilterConfigs = BTreeMap<String, FilterOverride>;

/// One entry of `typed_per_filter_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterOverride {
    /// The filter does not run here (`FilterConfig.disabled`, or an
    /// `RBACPerRoute` without rules). An entry that is not disabled enables
    /// a filter listed with `disabled: true`.
    pub disabled: bool,
    /// The configuration that replaces the filter's own here; `None` keeps it.
    pub config: Option<PerRouteConfig>,
}

/// A filter's per-route configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum PerRouteConfig {
    /// `RBACPerRoute.rbac`.
    Rbac(RbacFilter),
    /// `LocalRateLimit` with its own bucket.
    LocalRateLimit(Arc<LocalRateLimit>),
    /// `HTTPFault`.
    Fault(Arc<Fault>),
    /// `CorsPolicy`.
    Cors(Arc<CorsPolicy>),
    /// `HeaderMutationPerRoute`.
    HeaderMutation(Arc<HeaderMutationRules>),
    /// `ExtAuthzPerRoute` (its check settings; `disabled` is the override's).
    ExtAuthz(Arc<ExtAuthzPerRoute>),
    /// The JWT filter's `PerRouteConfig`.
    JwtAuthn(JwtPerRoute),
    /// `RateLimitPerRoute`.
    RateLimit(Arc<GlobalRateLimitPerRoute>),
    /// `BasicAuthPerRoute`: the users of this route.
    BasicAuth(Arc<BasicAuth>),
    /// `ApiKeyAuthPerRoute`.
    ApiKeyAuth(Arc<ApiKeyAuth>),
}

/// `envoy.extensions.filters.http.rbac.v3.RBAC`.
#[derive(Clone, Debug, PartialEq)]
pub struct RbacFilter {
    /// Enforced rules; `None` allows every request.
    pub rules: Option<Arc<RbacRules>>,
    /// Evaluated and logged, never enforced.
    pub shadow_rules: Option<Arc<RbacRules>>,
}

/// A share of requests (`FractionalPercent`): `numerator` out of `denominator` (100, 10,000
/// or 1,000,000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    /// Requests out of `denominator`.
    pub numerator: u32,
    /// 100, 10,000 or 1,000,000.
    pub denominator: u32,
}

impl Fraction {
    /// Every request.
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };
    /// No request.
    pub const NONE: Fraction = Fraction {
        numerator: 0,
        denominator: 100,
    };

    /// Whether a request drawn as `random` (uniform over `u32`) falls in the share, as Envoy's
    /// runtime `featureEnabled` decides it.
    pub fn includes(self, random: u32) -> bool {
        random % self.denominator.max(1) < self.numerator
    }

    /// The same denominator with at most `numerator` requests.
    pub fn at_most(self, numerator: u32) -> Fraction {
        Fraction {
            numerator: numerator.min(self.numerator),
            ..self
        }
    }
}

/// `config.core.v3.TokenBucket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity, and the tokens at start.
    pub max_tokens: u32,
    /// Tokens added every `fill_interval` (Envoy default 1).
    pub tokens_per_fill: u32,
    /// At least 50 ms.
    pub fill_interval: Duration,
}

/// `envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalRateLimit {
    /// Statistics prefix.
    pub stat_prefix: String,
    /// The default bucket; without one (allowed on the listener only) the
    /// filter limits nothing.
    pub token_bucket: Option<TokenBucket>,
    /// Share of requests the filter checks (Envoy: unset is 0 %).
    pub filter_enabled: Fraction,
    /// Share of checked requests it refuses when over the limit (unset: 0 %).
    pub filter_enforced: Fraction,
    /// Status of a refusal (default 429).
    pub status: u16,
    /// Added to refusals.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// Added to requests over the limit that are not enforced.
    pub request_headers_to_add_when_not_enforced: Vec<HeaderValueOption>,
    /// Buckets for requests whose descriptors match.
    pub descriptors: Vec<RateLimitDescriptor>,
    /// How requests get descriptors; empty: the route's `rate_limits`.
    pub rate_limits: Vec<RateLimitPolicy>,
    /// Which of the virtual host's `rate_limits` also apply.
    pub vh_rate_limits: VhRateLimits,
    /// `x-ratelimit-limit`, `-remaining` and `-reset` on responses (draft 03).
    pub x_ratelimit_headers: bool,
    /// Take a token from the default bucket even when a descriptor matched (default true).
    pub always_consume_default_token_bucket: bool,
    /// gRPC refusals are `RESOURCE_EXHAUSTED` rather than `UNAVAILABLE`.
    pub rate_limited_as_resource_exhausted: bool,
}

/// `LocalRateLimitDescriptor`: a bucket for requests carrying these entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitDescriptor {
    /// Key/value pairs, in order.
    pub entries: Vec<(String, String)>,
    /// The descriptor's own bucket.
    pub token_bucket: TokenBucket,
}

/// `envoy.extensions.common.ratelimit.v3.VhRateLimitsOptions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VhRateLimits {
    /// The virtual host's apply only when the route has none (Envoy's default).
    #[default]
    Override,
    /// Both the route's and the virtual host's apply.
    Include,
    /// Only the route's apply.
    Ignore,
}

/// `config.route.v3.RateLimit`: actions that together build one descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitPolicy {
    /// Stage (only stage 0 feeds the local rate limit).
    pub stage: u32,
    /// The actions; if any produces nothing, there is no descriptor.
    pub actions: Vec<RateLimitAction>,
}

/// `config.route.v3.RateLimit.Action`.
#[derive(Clone, Debug, PartialEq)]
pub enum RateLimitAction {
    /// `("generic_key" or descriptor_key, descriptor_value)`.
    GenericKey {
        /// The entry's key.
        key: String,
        /// The entry's value.
        value: String,
    },
    /// `(descriptor_key, <value of header_name>)`.
    RequestHeaders {
        /// The header.
        header_name: String,
        /// The entry's key.
        key: String,
        /// Without the header, skip this action instead of dropping the descriptor.
        skip_if_absent: bool,
    },
    /// `("remote_address", <client address>)`.
    RemoteAddress,
    /// `("destination_cluster", <the route's cluster>)`.
    DestinationCluster,
    /// `("masked_remote_address", <client address masked to a CIDR>)`.
    MaskedRemoteAddress {
        /// IPv4 prefix length (default 32).
        v4_prefix_len: u8,
        /// IPv6 prefix length (default 128).
        v6_prefix_len: u8,
    },
    /// `("header_match" or descriptor_key, descriptor_value)` when the
    /// headers match (`expect_match`) or do not.
    HeaderValueMatch {
        /// The entry's key.
        key: String,
        /// The entry's value.
        value: String,
        /// Produce the entry when the headers match (true) or when they do not.
        expect_match: bool,
        /// Every matcher must hold.
        headers: Vec<HeaderMatcher>,
    },
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Delay injection.
    pub delay: Option<FaultDelay>,
    /// Abort injection.
    pub abort: Option<FaultAbort>,
    /// Faults apply only to requests whose headers all match.
    pub headers: Vec<HeaderMatcher>,
    /// Faults apply only to requests routed to this cluster.
    pub upstream_cluster: Option<String>,
    /// At most this many faults at once (`None`: unlimited).
    pub max_active_faults: Option<u32>,
}

/// A delay fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultDelay {
    /// How long.
    pub source: DelaySource,
    /// Share of requests delayed.
    pub percentage: Fraction,
}

/// Where a delay's length comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelaySource {
    /// `fixed_delay`.
    Fixed(Duration),
    /// `header_delay`: the request's `x-envoy-fault-delay-request` (ms).
    Header,
}

/// An abort fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultAbort {
    /// The answer.
    pub source: AbortSource,
    /// Share of requests aborted.
    pub percentage: Fraction,
}

/// What an abort answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortSource {
    /// `http_status`.
    Http(u16),
    /// `grpc_status`.
    Grpc(u32),
    /// `header_abort`: the request's `x-envoy-fault-abort-request` (HTTP
    /// status) or `x-envoy-fault-abort-grpc-request` (gRPC status).
    Header,
}

/// `envoy.extensions.filters.http.cors.v3.CorsPolicy`. Unset settings fall through to the
/// next less specific policy.
#[derive(Clone, Debug, PartialEq)]
pub struct CorsPolicy {
    /// Origins allowed (any matcher; a matcher that matches `*` allows every origin).
    pub allow_origin: Vec<StringMatcher>,
    /// `access-control-allow-methods` (`*`: the method the preflight asks for).
    pub allow_methods: Option<String>,
    /// `access-control-allow-headers` (`*`: the headers the preflight asks for).
    pub allow_headers: Option<String>,
    /// `access-control-expose-headers`.
    pub expose_headers: Option<String>,
    /// `access-control-max-age`.
    pub max_age: Option<String>,
    /// `access-control-allow-credentials: true`.
    pub allow_credentials: Option<bool>,
    /// `access-control-allow-private-network: true` on preflights that ask.
    pub allow_private_network_access: Option<bool>,
    /// Share of requests the policy is enforced on (default all).
    pub filter_enabled: Fraction,
    /// Preflights from origins that are not allowed go to the upstream (default true);
    /// otherwise they are answered without `access-control-allow-origin`.
    pub forward_not_matching_preflights: Option<bool>,
}

/// `envoy.extensions.filters.http.header_mutation.v3.HeaderMutation`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderMutation {
    /// The filter's own mutations.
    pub mutations: Arc<HeaderMutationRules>,
    /// Only the most specific per-route mutations apply (default: every level,
    /// least specific first).
    pub most_specific_header_mutations_wins: bool,
}

/// `Mutations`: edits of request and response headers, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderMutationRules {
    /// Applied to the request.
    pub request: Vec<HeaderEdit>,
    /// Applied to the response.
    pub response: Vec<HeaderEdit>,
}

/// `config.common.mutation_rules.v3.HeaderMutation`.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderEdit {
    /// Remove the header.
    Remove(String),
    /// Add or set a header.
    Append(HeaderValueOption),
    /// Remove every header whose name matches.
    RemoveOnMatch(StringMatcher),
}
