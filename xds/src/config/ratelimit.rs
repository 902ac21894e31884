//! `envoy.filters.http.ratelimit`: a global rate-limit service decides, from the descriptors
//! the route's and virtual host's `rate_limits` build for each request.

use std::time::Duration;

use super::ext_authz::GrpcServiceTarget;
use super::filters::{RateLimitPolicy, VhRateLimits};
use super::route::HeaderValueOption;

/// `envoy.extensions.filters.http.ratelimit.v3.RateLimit`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalRateLimit {
    /// The service's domain.
    pub domain: String,
    /// Only `rate_limits` entries of this stage apply.
    pub stage: u32,
    /// `internal`, `external` or `both` (default).
    pub request_type: RequestType,
    /// Time allowed for the service's answer (default 20 ms).
    pub timeout: Duration,
    /// The service (`rate_limit_service.grpc_service`).
    pub service: GrpcServiceTarget,
    /// A failing service refuses requests (default: lets them through).
    pub failure_mode_deny: bool,
    /// gRPC refusals are `RESOURCE_EXHAUSTED` rather than `UNAVAILABLE`.
    pub rate_limited_as_resource_exhausted: bool,
    /// `x-ratelimit-limit`, `-remaining` and `-reset` on responses (draft 03).
    pub x_ratelimit_headers: bool,
    /// No `x-envoy-ratelimited` on refusals.
    pub disable_x_envoy_ratelimited_header: bool,
    /// The status of a refusal (default 429).
    pub rate_limited_status: u16,
    /// Added to refusals.
    pub response_headers_to_add: Vec<HeaderValueOption>,
    /// The status when the service fails and `failure_mode_deny` is set (default 500).
    pub status_on_error: u16,
    /// Descriptors of the filter itself; when set, the route's are not used.
    pub rate_limits: Vec<RateLimitPolicy>,
}

/// Which requests the filter applies to, by `x-envoy-internal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestType {
    /// Every request.
    #[default]
    Both,
    /// Requests marked internal.
    Internal,
    /// Requests not marked internal.
    External,
}

/// `RateLimitPerRoute`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalRateLimitPerRoute {
    /// Which of the virtual host's `rate_limits` apply.
    pub vh_rate_limits: VhRateLimits,
    /// The service's domain for this route (empty: the filter's).
    pub domain: String,
    /// Descriptors for this route (empty: the route's).
    pub rate_limits: Vec<RateLimitPolicy>,
}
