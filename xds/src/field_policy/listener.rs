//! `Listener` and `FilterChain`.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.config.listener.v3.Listener`.
pub(super) const LISTENER: MessagePolicy = MessagePolicy {
    message: "envoy.config.listener.v3.Listener",
    fields: &[
        honoured("name", "resource name"),
        honoured(
            "address",
            "TCP socket address with a numeric port; pipes, internal addresses and named ports are refused",
        ),
        unsupported("additional_addresses", "one bound address per listener"),
        no_effect("stat_prefix", "statistics"),
        no_effect("stats_matcher", "statistics"),
        honoured("filter_chains", "chosen by SNI, then TLS or plaintext"),
        unsupported("fcds_config", "filter chain discovery"),
        unsupported(
            "filter_chain_matcher",
            "matcher-based filter chain selection",
        ),
        unsupported(
            "use_original_dst",
            "`false` (the default) is accepted; `true` redirects connections",
        ),
        honoured("default_filter_chain", "used when no chain matches"),
        no_effect("per_connection_buffer_limit_bytes", "buffer tuning"),
        unsupported(
            "per_connection_buffer_high_watermark_timeout",
            "closes slow connections",
        ),
        no_effect("metadata", "informational"),
        unsupported("deprecated_v1", "legacy bind settings"),
        no_effect(
            "drain_type",
            "listener updates drain in-flight requests either way",
        ),
        honoured(
            "listener_filters",
            "`tls_inspector` and `http_inspector` (the front end does both itself); others are refused",
        ),
        honoured(
            "listener_filters_timeout",
            "the time a new connection has to show its protocol (TLS client hello, HTTP/2 preface or an HTTP/1 byte), default 15 s, on every listener since the front end always inspects; `0s` disables it",
        ),
        honoured(
            "continue_on_listener_filters_timeout",
            "a connection that timed out is served as plaintext HTTP/1 instead of closed",
        ),
        unsupported("transparent", "transparent proxying"),
        unsupported("freebind", "binding non-local addresses"),
        no_effect("socket_options", "socket tuning"),
        no_effect("tcp_fast_open_queue_length", "socket tuning"),
        honoured("traffic_direction", "recorded with the listener"),
        unsupported("udp_listener_config", "UDP and QUIC listeners"),
        unsupported("api_listener", "API listeners"),
        no_effect(
            "connection_balance_config",
            "balancing between worker threads",
        ),
        no_effect("reuse_port", "balancing between worker threads"),
        no_effect("enable_reuse_port", "balancing between worker threads"),
        no_effect(
            "access_log",
            "logs connections no filter chain takes; mesh-host closes those without a line",
        ),
        no_effect("tcp_backlog_size", "socket tuning"),
        no_effect(
            "max_connections_to_accept_per_socket_event",
            "accept-loop tuning",
        ),
        honoured("bind_to_port", "`false` listeners are not bound"),
        unsupported("internal_listener", "internal listeners"),
        unsupported("enable_mptcp", "multipath TCP"),
        honoured(
            "ignore_global_conn_limit",
            "the listener's connections neither count against nor are refused by the global connection limit",
        ),
        no_effect(
            "bypass_overload_manager",
            "mesh-host's overload manager has no actions besides the connection limit",
        ),
        no_effect("tcp_keepalive", "socket tuning"),
    ],
};

/// `envoy.config.listener.v3.FilterChain`.
pub(super) const FILTER_CHAIN: MessagePolicy = MessagePolicy {
    message: "envoy.config.listener.v3.FilterChain",
    fields: &[
        honoured(
            "filter_chain_match",
            "`server_names` and `transport_protocol`; other match criteria are refused",
        ),
        honoured(
            "filters",
            "exactly one `http_connection_manager`, or `tcp_proxy` (after any `connection_limit` filters) in a listener's only, plaintext chain; other network filters are refused",
        ),
        unsupported("use_proxy_proto", "PROXY protocol"),
        no_effect("metadata", "informational"),
        honoured(
            "transport_socket",
            "TLS (`DownstreamTlsContext`: one certificate inline, from files, or by SDS name over ADS or from the bootstrap's static secrets; client certificates verified against a CA and SAN matchers (typed or untyped; not `OTHER_NAME`, not without a CA) from `validation_context`, `validation_context_sds_secret_config` or `combined_validation_context`; SDS from files or a separate SDS server is refused) or plaintext",
        ),
        no_effect(
            "transport_socket_connect_timeout",
            "the front end's own TLS handshake timeout applies",
        ),
        honoured("name", "recorded with the chain"),
    ],
};
