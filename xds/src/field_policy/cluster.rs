//! `Cluster`.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.config.cluster.v3.Cluster`.
pub(super) const CLUSTER: MessagePolicy = MessagePolicy {
    message: "envoy.config.cluster.v3.Cluster",
    fields: &[
        unsupported("transport_socket_matches", "per-endpoint transport sockets"),
        unsupported("transport_socket_matcher", "per-endpoint transport sockets"),
        honoured("name", "resource name"),
        no_effect("alt_stat_name", "statistics"),
        no_effect("stats_matcher", "statistics"),
        honoured(
            "type",
            "STATIC, STRICT_DNS, LOGICAL_DNS, EDS; ORIGINAL_DST is refused",
        ),
        unsupported("cluster_type", "custom cluster types"),
        honoured(
            "eds_cluster_config",
            "service name; the config source must be ADS",
        ),
        honoured("connect_timeout", "default 5 s"),
        no_effect("per_connection_buffer_limit_bytes", "buffer tuning"),
        unsupported(
            "per_connection_buffer_high_watermark_timeout",
            "closes slow connections",
        ),
        honoured(
            "lb_policy",
            "ROUND_ROBIN, LEAST_REQUEST, RANDOM; others are refused",
        ),
        honoured(
            "load_assignment",
            "inline endpoints of STATIC and DNS clusters",
        ),
        unsupported("health_checks", "active health checking"),
        no_effect("max_requests_per_connection", "connection reuse tuning"),
        honoured(
            "circuit_breakers",
            "default-priority thresholds and retry budget",
        ),
        unsupported(
            "upstream_http_protocol_options",
            "automatic SNI and SAN validation",
        ),
        no_effect("common_http_protocol_options", "connection tuning"),
        no_effect("http_protocol_options", "HTTP/1 codec tuning"),
        honoured(
            "http2_protocol_options",
            "selects HTTP/2 (its settings are tuning)",
        ),
        honoured(
            "typed_extension_protocol_options",
            "`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`: explicit HTTP/1 or HTTP/2, downstream protocol, ALPN; HTTP/3 is refused",
        ),
        no_effect("dns_refresh_rate", "DNS refresh tuning"),
        no_effect("dns_jitter", "DNS refresh tuning"),
        no_effect("dns_failure_refresh_rate", "DNS refresh tuning"),
        no_effect("respect_dns_ttl", "DNS refresh tuning"),
        no_effect(
            "dns_lookup_family",
            "the system resolver's address order is used",
        ),
        unsupported("dns_resolvers", "custom DNS resolvers"),
        no_effect("use_tcp_for_dns_lookups", "DNS transport"),
        unsupported("dns_resolution_config", "custom DNS resolvers"),
        unsupported("typed_dns_resolver_config", "custom DNS resolvers"),
        no_effect("wait_for_warm_on_init", "initialisation ordering"),
        honoured(
            "outlier_detection",
            "consecutive 5xx and gateway failures, ejection times and cap",
        ),
        no_effect("cleanup_interval", "host cleanup timing"),
        unsupported("upstream_bind_config", "upstream source address"),
        unsupported("lb_subset_config", "subset load balancing"),
        unsupported("ring_hash_lb_config", "ring hash load balancing"),
        unsupported("maglev_lb_config", "maglev load balancing"),
        unsupported("original_dst_lb_config", "original destination clusters"),
        no_effect(
            "least_request_lb_config",
            "choice count and bias tune least request",
        ),
        no_effect("round_robin_lb_config", "slow start tunes round robin"),
        no_effect(
            "common_lb_config",
            "panic threshold, zone-aware and locality tuning",
        ),
        honoured(
            "transport_socket",
            "TLS (`UpstreamTlsContext`) or plaintext",
        ),
        honoured(
            "metadata",
            "`filter_metadata`, for example `mesh-host.grpc`; the rest is informational",
        ),
        honoured(
            "protocol_selection",
            "USE_DOWNSTREAM_PROTOCOL (deprecated field)",
        ),
        no_effect("upstream_connection_options", "TCP keep-alive tuning"),
        unsupported(
            "close_connections_on_host_health_failure",
            "only meaningful with health checks",
        ),
        unsupported(
            "ignore_health_on_host_removal",
            "only meaningful with health checks",
        ),
        unsupported("filters", "upstream network filters"),
        unsupported("load_balancing_policy", "load balancing policy extensions"),
        unsupported("lrs_server", "load reporting"),
        unsupported("lrs_report_endpoint_metrics", "load reporting"),
        no_effect("track_timeout_budgets", "statistics"),
        unsupported("upstream_config", "upstream connection extensions"),
        no_effect("track_cluster_stats", "statistics"),
        unsupported("preconnect_policy", "preconnecting"),
        unsupported(
            "connection_pool_per_downstream_connection",
            "connection pool per downstream connection",
        ),
        unsupported("queuing_policies", "request queuing"),
    ],
};
