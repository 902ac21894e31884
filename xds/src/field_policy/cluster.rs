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
        honoured(
            "cluster_type",
            "`envoy.extensions.clusters.dns.v3.DnsCluster`: STRICT_DNS, or LOGICAL_DNS with `all_addresses_in_single_endpoint` (DNS tuning accepted); other cluster types are refused",
        ),
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
            "ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV; CLUSTER_PROVIDED and LOAD_BALANCING_POLICY_CONFIG are refused",
        ),
        honoured(
            "load_assignment",
            "inline endpoints of STATIC and DNS clusters",
        ),
        honoured(
            "health_checks",
            "one HTTP, gRPC or TCP check: interval, timeout, thresholds, jitter, no-traffic, unhealthy and edge intervals, expected and retriable statuses; a second check is refused",
        ),
        no_effect("max_requests_per_connection", "connection reuse tuning"),
        honoured(
            "circuit_breakers",
            "default-priority thresholds, retry budget, per_host_thresholds.max_connections",
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
            "consecutive 5xx, gateway and local-origin failures (split_external_local_origin_errors) with their enforcement, ejection times and cap; success-rate and failure-percentage ejection are refused unless not enforced",
        ),
        no_effect("cleanup_interval", "host cleanup timing"),
        unsupported("upstream_bind_config", "upstream source address"),
        unsupported("lb_subset_config", "subset load balancing"),
        honoured(
            "ring_hash_lb_config",
            "minimum and maximum ring size (xxHash only)",
        ),
        honoured("maglev_lb_config", "table size"),
        unsupported("original_dst_lb_config", "original destination clusters"),
        honoured(
            "least_request_lb_config",
            "choice_count, active_request_bias (slow start is accepted without effect)",
        ),
        no_effect(
            "round_robin_lb_config",
            "slow start only tunes the first minutes of an endpoint",
        ),
        honoured(
            "common_lb_config",
            "healthy_panic_threshold, locality_weighted_lb_config; zone-aware routing (no local cluster) and update tuning have no effect; other settings are refused",
        ),
        honoured(
            "transport_socket",
            "TLS (`UpstreamTlsContext`: CA, SAN matchers (typed or untyped; not `OTHER_NAME`, not without a CA) and client certificate inline, from files, or by SDS name over ADS or from the bootstrap's static secrets, `combined_validation_context` merged as Envoy merges it; SDS from files or a separate SDS server is refused) or plaintext",
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
            "`false` (the default) is accepted; closing connections on a failed check is not implemented",
        ),
        honoured(
            "ignore_health_on_host_removal",
            "with health checks, an endpoint removed by discovery stays while it passes them unless this is set; no effect without health checks",
        ),
        unsupported("filters", "upstream network filters"),
        honoured(
            "load_balancing_policy",
            "the first of round_robin, least_request, random, ring_hash, maglev in the list, with locality weighting; a list with none of them is refused",
        ),
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
