//! `envoy.filters.http.ext_authz`: the request is checked by an authorization service (gRPC
//! `envoy.service.auth.v3.Authorization/Check` or plain HTTP) reached through a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use super::filters::Fraction;
use super::matcher::StringMatcher;

/// A gRPC service reached through a cluster of the snapshot (`GrpcService.envoy_grpc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcServiceTarget {
    /// The cluster.
    pub cluster: String,
    /// The `:authority` of the calls (`authority`, else the cluster name).
    pub authority: String,
    /// Time allowed for one call (`GrpcService.timeout`); `None`: no limit.
    pub timeout: Option<Duration>,
    /// Metadata sent with every call (`initial_metadata`).
    pub initial_metadata: Vec<(String, String)>,
}

/// `envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtAuthz {
    /// The authorization service.
    pub service: AuthzService,
    /// A service that cannot be reached lets requests through (default: refuse them).
    pub failure_mode_allow: bool,
    /// Requests let through that way carry `x-envoy-auth-failure-mode-allowed: true`.
    pub failure_mode_allow_header_add: bool,
    /// The status of a refusal when the service fails (default 403).
    pub status_on_error: u16,
    /// The request body is buffered and sent with the check.
    pub with_request_body: Option<BufferSettings>,
    /// Only these request headers go into the check (empty: every header).
    pub allowed_headers: Vec<StringMatcher>,
    /// These request headers never go into the check.
    pub disallowed_headers: Vec<StringMatcher>,
    /// The client's verified certificate goes into the check's `source.certificate`.
    pub include_peer_certificate: bool,
    /// Share of requests checked (default all).
    pub filter_enabled: Fraction,
    /// Requests the filter is not enabled for are refused with `status_on_error`.
    pub deny_at_disable: bool,
    /// The check's headers are sent as `header_map` (raw bytes) instead of `headers`.
    pub encode_raw_headers: bool,
}

/// Where checks go.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthzService {
    /// `grpc_service`.
    Grpc(GrpcServiceTarget),
    /// `http_service`.
    Http(HttpAuthzService),
}

/// `HttpService`: the check is the client's request head (allowed headers only) sent to the
/// service; a 200 allows it, a 5xx is a failure, anything else denies it.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpAuthzService {
    /// The cluster (`server_uri.cluster`).
    pub cluster: String,
    /// `server_uri.uri`: its authority is the check's `Host`.
    pub uri: String,
    /// `server_uri.timeout`.
    pub timeout: Duration,
    /// Prepended to the client's path.
    pub path_prefix: String,
    /// Client headers sent besides `Authorization`, `:method`, `:path` and `Host`.
    pub allowed_headers: Vec<StringMatcher>,
    /// Headers added to every check (`authorization_request.headers_to_add`).
    pub headers_to_add: Vec<(String, String)>,
    /// Service headers that replace the request's on success.
    pub allowed_upstream_headers: Vec<StringMatcher>,
    /// Service headers appended to the request's on success.
    pub allowed_upstream_headers_to_append: Vec<StringMatcher>,
    /// Service headers passed to the client on a denial (empty: all but `Host`).
    pub allowed_client_headers: Vec<StringMatcher>,
    /// Service headers added to the response on success.
    pub allowed_client_headers_on_success: Vec<StringMatcher>,
}

/// `BufferSettings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSettings {
    /// At most this many bytes are buffered.
    pub max_request_bytes: u32,
    /// A larger body is checked with its first `max_request_bytes` (else: 413).
    pub allow_partial_message: bool,
    /// The body goes into `raw_body` rather than `body`.
    pub pack_as_bytes: bool,
}

/// `ExtAuthzPerRoute`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtAuthzPerRoute {
    /// No check for this route.
    pub disabled: bool,
    /// Merged into the check's `context_extensions`, most specific level last.
    pub context_extensions: BTreeMap<String, String>,
    /// The body is not buffered for this route.
    pub disable_request_body_buffering: bool,
}
