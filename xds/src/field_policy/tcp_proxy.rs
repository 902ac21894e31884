//! The TCP proxy and connection limit network filters.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`.
pub(super) const TCP_PROXY: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    fields: &[
        no_effect("stat_prefix", "statistics"),
        honoured(
            "cluster",
            "an endpoint picked by the cluster's load balancer, connected within its connect_timeout",
        ),
        honoured(
            "weighted_clusters",
            "a cluster picked per connection by weight; `metadata_match` is refused",
        ),
        unsupported("on_demand", "on-demand cluster discovery"),
        unsupported("metadata_match", "endpoint subsets"),
        honoured(
            "idle_timeout",
            "default 1 h; 0 disables; the connection closes when no byte moved either way for that long",
        ),
        unsupported("downstream_idle_timeout", "per-side idle timeouts"),
        unsupported("upstream_idle_timeout", "per-side idle timeouts"),
        honoured(
            "access_log",
            "one line per connection when it closes, as for the connection manager; `%RESPONSE_CODE%` is 0 and request operators are `-`",
        ),
        unsupported("max_connect_attempts", "one connection attempt is made"),
        unsupported("backoff_options", "one connection attempt is made"),
        unsupported("hash_policy", "hash-based endpoint choice for TCP"),
        unsupported("tunneling_config", "tunnelling TCP over HTTP"),
        unsupported(
            "max_downstream_connection_duration",
            "connection duration limits",
        ),
        unsupported(
            "max_downstream_connection_duration_jitter_percentage",
            "connection duration limits",
        ),
        no_effect(
            "access_log_flush_interval",
            "lines are written when the connection closes",
        ),
        no_effect(
            "flush_access_log_on_connected",
            "lines are written when the connection closes",
        ),
        no_effect(
            "access_log_options",
            "lines are written when the connection closes",
        ),
        unsupported("proxy_protocol_tlvs", "PROXY protocol"),
        unsupported("proxy_protocol_tlv_merge_policy", "PROXY protocol"),
        unsupported("upstream_connect_mode", "deferred upstream connections"),
        unsupported(
            "max_early_data_bytes",
            "early data before the upstream connects",
        ),
        unsupported("check_drain_close", "drain-time connection closing"),
    ],
};

/// `envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit`.
pub(super) const CONNECTION_LIMIT: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
    fields: &[
        no_effect("stat_prefix", "statistics"),
        honoured(
            "max_connections",
            "connections of the TCP proxy listener beyond it are closed at once",
        ),
        no_effect(
            "delay",
            "a refused connection is closed at once instead of after the delay",
        ),
        unsupported("runtime_enabled", "runtime feature flags"),
    ],
};
