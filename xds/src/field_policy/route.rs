//! `RouteConfiguration`, `VirtualHost`, `Route` and `RouteAction`.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.config.route.v3.RouteConfiguration`.
pub(super) const ROUTE_CONFIGURATION: MessagePolicy = MessagePolicy {
    message: "envoy.config.route.v3.RouteConfiguration",
    fields: &[
        honoured("name", "resource name"),
        honoured(
            "virtual_hosts",
            "chosen by the request authority with Envoy's domain precedence",
        ),
        unsupported("vhds", "virtual host discovery"),
        unsupported(
            "internal_only_headers",
            "header stripping for external clients",
        ),
        honoured("response_headers_to_add", "applied to every route"),
        honoured("response_headers_to_remove", "applied to every route"),
        honoured("request_headers_to_add", "applied to every route"),
        honoured("request_headers_to_remove", "applied to every route"),
        unsupported(
            "most_specific_header_mutations_wins",
            "header mutation order",
        ),
        no_effect(
            "validate_clusters",
            "only delays acceptance in Envoy; a route to a missing cluster answers 503 either way",
        ),
        no_effect(
            "max_direct_response_body_size_bytes",
            "bodies are inline and already bounded by the resource size",
        ),
        unsupported("cluster_specifier_plugins", "cluster specifier plugins"),
        unsupported("request_mirror_policies", "request mirroring"),
        honoured(
            "ignore_port_in_host_matching",
            "a numeric port is stripped from the authority before virtual hosts are matched",
        ),
        unsupported("vhost_header", "virtual host chosen by another header"),
        unsupported(
            "ignore_path_parameters_in_path_matching",
            "path parameter stripping",
        ),
        honoured(
            "typed_per_filter_config",
            "per-filter overrides (RBAC, local rate limit, fault, CORS, header mutation; FilterConfig enable/disable), most specific level wins",
        ),
        no_effect("metadata", "informational"),
        unsupported("route_specifiers", "route specifier extensions"),
    ],
};

/// `envoy.config.route.v3.VirtualHost`.
pub(super) const VIRTUAL_HOST: MessagePolicy = MessagePolicy {
    message: "envoy.config.route.v3.VirtualHost",
    fields: &[
        honoured("name", "recorded with the virtual host"),
        honoured(
            "domains",
            "exact, `*.suffix`, `prefix*` and `*`, with an optional port",
        ),
        honoured("routes", "first match wins"),
        unsupported("matcher", "matcher-based routing"),
        unsupported("require_tls", "TLS redirects"),
        unsupported(
            "virtual_clusters",
            "virtual cluster statistics and their timeouts",
        ),
        honoured(
            "rate_limits",
            "descriptors for the global rate limit filter (request headers, remote address, generic key, header value match, destination cluster); `source_cluster` and other actions are refused",
        ),
        honoured("request_headers_to_add", "applied to every route"),
        honoured("request_headers_to_remove", "applied to every route"),
        honoured("response_headers_to_add", "applied to every route"),
        honoured("response_headers_to_remove", "applied to every route"),
        unsupported("cors", "CORS policy"),
        honoured(
            "typed_per_filter_config",
            "per-filter overrides (RBAC, local rate limit, fault, CORS, header mutation; FilterConfig enable/disable), most specific level wins",
        ),
        honoured(
            "include_request_attempt_count",
            "x-envoy-attempt-count on each try sent upstream (1 for the first)",
        ),
        honoured(
            "include_attempt_count_in_response",
            "x-envoy-attempt-count on the response: the tries it took",
        ),
        honoured("retry_policy", "default for routes without one"),
        unsupported("retry_policy_typed_config", "retry policy extensions"),
        unsupported("hedge_policy", "request hedging"),
        unsupported(
            "include_is_timeout_retry_header",
            "x-envoy-is-timeout-retry",
        ),
        unsupported("per_request_buffer_limit_bytes", "request buffering limit"),
        unsupported("request_body_buffer_limit", "request buffering limit"),
        unsupported("request_mirror_policies", "request mirroring"),
        no_effect("metadata", "informational"),
        unsupported("route_specifiers", "route specifier extensions"),
    ],
};

/// `envoy.config.route.v3.Route`.
pub(super) const ROUTE: MessagePolicy = MessagePolicy {
    message: "envoy.config.route.v3.Route",
    fields: &[
        honoured("name", "recorded with the route"),
        honoured(
            "match",
            "prefix, path, path_separated_prefix, safe_regex; headers, query parameters, grpc, case_sensitive",
        ),
        honoured("route", "forward to a cluster"),
        honoured(
            "redirect",
            "scheme, host, port, path or prefix; regex rewrites are refused",
        ),
        honoured(
            "direct_response",
            "status, inline body, body_format text (only %LOCAL_REPLY_BODY% and %RESPONSE_CODE%) with its content type",
        ),
        unsupported("filter_action", "filter actions"),
        unsupported("non_forwarding_action", "non-forwarding actions"),
        no_effect("metadata", "informational"),
        honoured(
            "decorator",
            "`operation` names the server span; `propagate` has no effect (no x-envoy-* headers are sent)",
        ),
        honoured(
            "typed_per_filter_config",
            "per-filter overrides (RBAC, local rate limit, fault, CORS, header mutation; FilterConfig enable/disable), most specific level wins",
        ),
        honoured("request_headers_to_add", "route-level header mutations"),
        honoured("request_headers_to_remove", "route-level header mutations"),
        honoured("response_headers_to_add", "route-level header mutations"),
        honoured("response_headers_to_remove", "route-level header mutations"),
        honoured(
            "tracing",
            "client, random and overall sampling over the connection manager's; custom tags added to its",
        ),
        unsupported("per_request_buffer_limit_bytes", "request buffering limit"),
        no_effect("stat_prefix", "statistics"),
        unsupported("request_body_buffer_limit", "request buffering limit"),
        unsupported("route_specifiers", "route specifier extensions"),
    ],
};

/// `envoy.config.route.v3.RouteAction`.
pub(super) const ROUTE_ACTION: MessagePolicy = MessagePolicy {
    message: "envoy.config.route.v3.RouteAction",
    fields: &[
        honoured("cluster", "one named cluster"),
        honoured("cluster_header", "cluster named by a request header"),
        honoured(
            "weighted_clusters",
            "weighted choice with per-cluster header mutations",
        ),
        unsupported("cluster_specifier_plugin", "cluster specifier plugins"),
        unsupported(
            "inline_cluster_specifier_plugin",
            "cluster specifier plugins",
        ),
        no_effect(
            "cluster_not_found_response_code",
            "a missing cluster answers 503, Envoy's default",
        ),
        no_effect(
            "metadata_match",
            "subset load balancing is not configured, so there is nothing to match",
        ),
        honoured("prefix_rewrite", "replaces the matched prefix"),
        honoured("regex_rewrite", "RE2 substitution on the path"),
        unsupported("path_rewrite_policy", "path rewrite extensions"),
        unsupported("path_rewrite", "substitution-format path rewrites"),
        honoured("host_rewrite_literal", "replaces the authority"),
        unsupported(
            "auto_host_rewrite",
            "`false` is accepted; `true` takes the endpoint's hostname",
        ),
        unsupported("host_rewrite_header", "authority from a request header"),
        unsupported("host_rewrite_path_regex", "authority from the path"),
        unsupported("host_rewrite", "substitution-format host rewrites"),
        unsupported("append_x_forwarded_host", "x-forwarded-host"),
        honoured(
            "timeout",
            "whole-request timeout (default 15 s, 0 disables)",
        ),
        honoured("idle_timeout", "stream idle timeout"),
        unsupported("flush_timeout", "response flush timeout"),
        unsupported("early_data_policy", "TLS early data"),
        honoured(
            "retry_policy",
            "retry_on conditions, num_retries, per_try_timeout, retriable status codes, previous-hosts predicate",
        ),
        unsupported("retry_policy_typed_config", "retry policy extensions"),
        unsupported("request_mirror_policies", "request mirroring"),
        unsupported("priority", "only the default routing priority is modelled"),
        honoured(
            "rate_limits",
            "descriptors for the global rate limit filter, as on virtual hosts",
        ),
        honoured(
            "include_vh_rate_limits",
            "the virtual host's `rate_limits` apply too",
        ),
        honoured(
            "hash_policy",
            "header, cookie (without ttl), query parameter, source IP; terminal; for ring hash and maglev clusters",
        ),
        unsupported("cors", "CORS policy"),
        honoured(
            "max_grpc_timeout",
            "deprecated spelling of max_stream_duration.grpc_timeout_header_max",
        ),
        unsupported("grpc_timeout_offset", "gRPC timeout offset"),
        no_effect("upgrade_configs", "upgrades are served as plain HTTP"),
        unsupported("internal_redirect_policy", "internal redirects"),
        unsupported("internal_redirect_action", "internal redirects"),
        unsupported("max_internal_redirects", "internal redirects"),
        unsupported("hedge_policy", "request hedging"),
        honoured(
            "max_stream_duration",
            "max_stream_duration and grpc_timeout_header_max",
        ),
    ],
};
