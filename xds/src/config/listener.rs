//! Listeners and their HTTP connection manager.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::access_log::AccessLog;
use super::filters::HttpFilter;
use super::route::RouteConfig;
use super::tcp_proxy::TcpProxy;
use super::tls::DownstreamTls;
use super::tracing::Tracing;

/// Envoy's `config.listener.v3.Listener`: HTTP filter chains, or one TCP proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// Resource name.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// Whether the listener serves inbound or outbound traffic.
    pub traffic_direction: TrafficDirection,
    /// `bind_to_port` as configured (`None`: unset, which Envoy reads as `true`;
    /// mesh-host binds an unset egress listener only when told to).
    pub bind_to_port: Option<bool>,
    /// Filter chains chosen by SNI, in order.
    pub filter_chains: Vec<FilterChain>,
    /// The chain used when no other chain matches.
    pub default_filter_chain: Option<FilterChain>,
    /// Whether a TLS inspector reads the client's server name: listed in
    /// `listener_filters`, or added by Envoy because a chain matches on
    /// `server_names`. Without one, RBAC's `requested_server_name` sees "".
    pub inspects_tls: bool,
    /// The TCP proxy of a listener that forwards connections instead of serving HTTP (it
    /// then has no HTTP filter chains).
    pub tcp_proxy: Option<TcpProxy>,
    /// How long a new connection may take to tell its protocol
    /// (`listener_filters_timeout`, Envoy default 15 s; `None`: no limit).
    pub listener_filters_timeout: Option<Duration>,
    /// Serve a connection whose protocol could not be told in time as plaintext
    /// HTTP/1 instead of closing it (`continue_on_listener_filters_timeout`).
    pub continue_on_listener_filters_timeout: bool,
    /// The listener's connections do not count against the global connection limit
    /// (`ignore_global_conn_limit`).
    pub ignore_global_conn_limit: bool,
}

impl Listener {
    /// Every filter chain, the default one last.
    pub fn all_filter_chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.as_ref())
    }

    /// The RDS names this listener needs before it can serve.
    pub fn rds_names(&self) -> impl Iterator<Item = &str> {
        self.all_filter_chains()
            .filter_map(|chain| match &chain.http.route {
                RouteSource::Rds { route_config_name } => Some(route_config_name.as_str()),
                RouteSource::Inline(_) => None,
            })
    }
}

/// Envoy's `config.core.v3.TrafficDirection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficDirection {
    /// Not set.
    Unspecified,
    /// Traffic to the local workloads.
    Inbound,
    /// Traffic leaving the local workloads.
    Outbound,
}

/// A filter chain: optional TLS, then the HTTP connection manager.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterChain {
    /// Chain name.
    pub name: String,
    /// SNI names this chain serves (`filter_chain_match.server_names`); empty matches any.
    pub server_names: Vec<String>,
    /// TLS termination, if any.
    pub tls: Option<DownstreamTls>,
    /// The HTTP connection manager.
    pub http: HttpConnectionManager,
}

/// Envoy's `HttpConnectionManager` (supported subset).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConnectionManager {
    /// Statistics prefix.
    pub stat_prefix: String,
    /// Where the routes come from.
    pub route: RouteSource,
    /// Accepted HTTP versions.
    pub codec: CodecType,
    /// Idle timeout of a stream (Envoy default 5 min; `None` disables).
    pub stream_idle_timeout: Option<Duration>,
    /// Time to receive the whole request (`None`: disabled, Envoy's default).
    pub request_timeout: Option<Duration>,
    /// Maximum request header size in KiB (Envoy default 60).
    pub max_request_headers_kb: u32,
    /// Trust the connection's peer address as the client address.
    pub use_remote_address: bool,
    /// Trusted `x-forwarded-for` hops.
    pub xff_num_trusted_hops: u32,
    /// Do not append the peer address to `x-forwarded-for` even with
    /// `use_remote_address`.
    pub skip_xff_append: bool,
    /// The router's `suppress_envoy_headers`: forwarded requests carry no
    /// `x-envoy-original-path` or `x-envoy-original-host`.
    pub suppress_envoy_headers: bool,
    /// `server` response header value (`None`: the host's default).
    pub server_name: Option<String>,
    /// What happens to a `server` header the upstream (the component) set.
    pub server_header_transformation: ServerHeaderTransformation,
    /// The HTTP filters before the router, in order.
    pub http_filters: Vec<HttpFilter>,
    /// How the connection manager's connections are kept and closed.
    pub connection: ConnectionOptions,
    /// How request paths and header names are normalised before filters and routing.
    pub normalization: RequestNormalization,
    /// Where each finished request is logged.
    pub access_logs: Vec<AccessLog>,
    /// Spans for the requests, exported over OTLP (`None`: no tracing).
    pub tracing: Option<Tracing>,
}

/// The settings of an `HttpConnectionManager` that concern its connections rather than
/// its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `common_http_protocol_options.idle_timeout`: no request in flight for this long
    /// closes the connection (Envoy default 1 h; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_connection_duration` (`None`: unlimited).
    pub max_connection_duration: Option<Duration>,
    /// `request_headers_timeout`: from a head's first byte to its last (`None`: unset).
    pub request_headers_timeout: Option<Duration>,
    /// `http_protocol_options.accept_http_10`: serve HTTP/1.0 (else 426).
    pub accept_http_10: bool,
    /// `http_protocol_options.allow_chunked_length`: a request with both
    /// `Content-Length` and `Transfer-Encoding: chunked` is read as chunked (else 400).
    pub allow_chunked_length: bool,
    /// `http_protocol_options.allow_custom_methods`: any token is a method (else only the
    /// methods Envoy's parser knows).
    pub allow_custom_methods: bool,
    /// `http2_protocol_options.connection_keepalive`, when it sends PINGs.
    pub http2_keepalive: Option<Http2Keepalive>,
    /// `http2_protocol_options.max_concurrent_streams` (`None`: the host's default).
    pub http2_max_concurrent_streams: Option<u32>,
    /// The flood limits of `http2_protocol_options`.
    pub http2_flood_limits: Http2FloodLimits,
}

impl Default for ConnectionOptions {
    /// Envoy's defaults.
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_connection_duration: None,
            request_headers_timeout: None,
            accept_http_10: false,
            allow_chunked_length: false,
            allow_custom_methods: false,
            http2_keepalive: None,
            http2_max_concurrent_streams: None,
            http2_flood_limits: Http2FloodLimits::default(),
        }
    }
}

/// HTTP/2 keepalive (`KeepaliveSettings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2Keepalive {
    /// How often a PING is sent.
    pub interval: Duration,
    /// How long its answer may take before the connection is closed.
    pub timeout: Duration,
}

/// Envoy's HTTP/2 flood limits (`Http2ProtocolOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2FloodLimits {
    /// `max_outbound_control_frames` (default 1000).
    pub max_outbound_control_frames: u32,
    /// `max_consecutive_inbound_frames_with_empty_payload` (default 1).
    pub max_consecutive_inbound_frames_with_empty_payload: u32,
    /// `max_inbound_priority_frames_per_stream` (default 100).
    pub max_inbound_priority_frames_per_stream: u32,
    /// `max_inbound_window_update_frames_per_data_frame_sent` (default 10).
    pub max_inbound_window_update_frames_per_data_frame_sent: u32,
}

impl Default for Http2FloodLimits {
    fn default() -> Self {
        Self {
            max_outbound_control_frames: 1000,
            max_consecutive_inbound_frames_with_empty_payload: 1,
            max_inbound_priority_frames_per_stream: 100,
            max_inbound_window_update_frames_per_data_frame_sent: 10,
        }
    }
}

/// The connection manager's request normalisation (`normalize_path`, `merge_slashes`,
/// `path_with_escaped_slashes_action`, `headers_with_underscores_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestNormalization {
    /// RFC 3986 normalisation: dot segments removed, percent-encoding normalised.
    pub normalize_path: bool,
    /// Runs of `/` become one.
    pub merge_slashes: bool,
    /// What happens to `%2F` and `%5C` in the path.
    pub escaped_slashes: EscapedSlashes,
    /// What happens to header names with `_`.
    pub headers_with_underscores: UnderscoresAction,
}

/// `PathWithEscapedSlashesAction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Leave the path as it is (Envoy's default).
    #[default]
    Keep,
    /// Refuse the request with 400.
    Reject,
    /// Unescape them and redirect the client to the unescaped path.
    UnescapeAndRedirect,
    /// Unescape them and go on.
    UnescapeAndForward,
}

/// `HttpProtocolOptions.HeadersWithUnderscoresAction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnderscoresAction {
    /// Keep them (Envoy's default).
    #[default]
    Allow,
    /// Refuse the request with 400.
    Reject,
    /// Remove those headers.
    Drop,
}

/// Where an HTTP connection manager gets its routes.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteSource {
    /// From RDS, by name.
    Rds {
        /// The `RouteConfiguration` name.
        route_config_name: String,
    },
    /// Inline in the listener.
    Inline(Arc<RouteConfig>),
}

/// Envoy's `HttpConnectionManager.ServerHeaderTransformation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    /// Always write `server_name` (Envoy's default).
    #[default]
    Overwrite,
    /// Write `server_name` only when the response has no `server` header.
    AppendIfAbsent,
    /// Leave the response's `server` header as it is, absent or not.
    PassThrough,
}

/// Envoy's `HttpConnectionManager.CodecType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecType {
    /// HTTP/1.1 and HTTP/2 (prior knowledge or ALPN).
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}
