//! `HttpConnectionManager` and the router filter.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`.
pub(super) const HTTP_CONNECTION_MANAGER: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    fields: &[
        honoured(
            "codec_type",
            "AUTO, HTTP1 (h2c closed), HTTP2 (HTTP/1.1 closed); HTTP3 is refused",
        ),
        no_effect("stat_prefix", "statistics"),
        honoured("rds", "route configuration by name over ADS"),
        honoured("route_config", "inline route configuration"),
        unsupported("scoped_routes", "scoped routes"),
        honoured(
            "http_filters",
            "run in order before the router (last), with `disabled` and per-route overrides: RBAC (rules and shadow rules), local rate limit, fault, CORS, header mutation, ext_authz (gRPC and HTTP services), JWT authentication, global rate limit, basic auth and API key auth; gRPC stats and Istio's stats, metadata exchange and ALPN filters have no effect; other filters are refused unless optional",
        ),
        unsupported("add_user_agent", "x-envoy-downstream-service-* headers"),
        honoured(
            "tracing",
            "the OpenTelemetry provider over gRPC: a server span per request, a span for the component and a client span per outbound request it makes, W3C `traceparent`/`tracestate` (see the `Tracing` and `OpenTelemetryConfig` tables); other providers have no effect",
        ),
        honoured(
            "common_http_protocol_options",
            "`idle_timeout` (default 1 h; HTTP/2 gets a GOAWAY first) and `max_connection_duration` (HTTP/2 GOAWAY, HTTP/1 closed after the response in flight); `headers_with_underscores_action` is honoured (ALLOW, REJECT_REQUEST: 400, DROP_HEADER); `max_connection_duration_jitter` and `max_requests_per_connection` have no effect; `max_headers_count`, `max_response_headers_kb` and `max_stream_duration` are refused",
        ),
        unsupported(
            "http1_safe_max_connection_duration",
            "HTTP/1 connection draining",
        ),
        honoured(
            "http_protocol_options",
            "`accept_http_10` (else 426), `allow_chunked_length`, `allow_custom_methods`; header case, trailer, URL-form, parser choice and upgrade settings have no effect; `default_host_for_http_10` is refused",
        ),
        honoured(
            "http2_protocol_options",
            "`connection_keepalive` (`interval`, `timeout`), `max_concurrent_streams`, and the flood limits `max_outbound_control_frames` (applied to the PING and SETTINGS frames a client sends, refilled by traffic and time), `max_consecutive_inbound_frames_with_empty_payload`, `max_inbound_priority_frames_per_stream`, `max_inbound_window_update_frames_per_data_frame_sent` (GOAWAY `ENHANCE_YOUR_CALM`); window sizes, HPACK, metadata, CONNECT, custom settings and reset-rate tuning have no effect (h2 bounds its own queues and resets)",
        ),
        unsupported("http3_protocol_options", "HTTP/3"),
        honoured("server_name", "the `server` header (default `mesh-host`)"),
        honoured(
            "server_header_transformation",
            "OVERWRITE, APPEND_IF_ABSENT, PASS_THROUGH",
        ),
        honoured(
            "scheme_header_transformation",
            "`match_upstream` (mesh-host always sets :scheme from the upstream transport); `scheme_to_overwrite` is refused",
        ),
        honoured("max_request_headers_kb", "431 past the limit (default 60)"),
        honoured(
            "stream_idle_timeout",
            "default 5 min; 408 or 504 or reset as in Envoy",
        ),
        unsupported("stream_flush_timeout", "response flush timeout"),
        honoured("request_timeout", "408 `request timeout`"),
        honoured(
            "request_headers_timeout",
            "408 `request header timeout` and the connection closed; unset, mesh-host still limits a head to 30 s from its first byte",
        ),
        no_effect(
            "drain_timeout",
            "HTTP/2 drains with a GOAWAY, a PING and a final GOAWAY once the PING is answered (RFC 9113 §6.8) rather than after a timer",
        ),
        unsupported("drain_timeout_jitter", "connection draining timing"),
        no_effect(
            "delayed_close_timeout",
            "the front end closes with its own delayed-close timing",
        ),
        honoured(
            "access_log",
            "file, stdout and stderr loggers, one line when the response's last byte is sent: Envoy's default format, `text_format`, `text_format_source` (inline) and `json_format` with the common command operators plus `%MESH_WORKLOAD%` (the component that served the request); an unknown operator is refused by name, and so is an access log `filter`; other loggers (gRPC, OpenTelemetry) have no effect",
        ),
        no_effect(
            "access_log_flush_interval",
            "lines are written as they come, never buffered past the request",
        ),
        no_effect(
            "flush_access_log_on_new_request",
            "periodic and on-new-request logs are not written",
        ),
        no_effect(
            "access_log_options",
            "periodic and on-new-request logs are not written",
        ),
        honoured(
            "use_remote_address",
            "x-forwarded-for, x-forwarded-proto, x-envoy-external-address",
        ),
        honoured("xff_num_trusted_hops", "trusted x-forwarded-for hops"),
        unsupported(
            "original_ip_detection_extensions",
            "client address extensions",
        ),
        unsupported("early_header_mutation_extensions", "early header mutation"),
        no_effect(
            "internal_address_config",
            "decides only which x-envoy-* headers are trusted",
        ),
        honoured("skip_xff_append", "x-forwarded-for is left as received"),
        unsupported("via", "the Via header"),
        no_effect(
            "generate_request_id",
            "request ids are not generated (tracing)",
        ),
        no_effect(
            "preserve_external_request_id",
            "request ids are not generated (tracing)",
        ),
        no_effect(
            "always_set_request_id_in_response",
            "request ids are not generated (tracing)",
        ),
        no_effect(
            "forward_client_cert_details",
            "x-forwarded-client-cert is sanitized, Envoy's default",
        ),
        no_effect(
            "set_current_client_cert_details",
            "only used when forwarding client certificate details",
        ),
        unsupported(
            "forward_client_cert_matcher",
            "per-request client certificate forwarding",
        ),
        no_effect(
            "proxy_100_continue",
            "100-continue is answered by the front end",
        ),
        unsupported(
            "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
            "changes the client address seen upstream",
        ),
        no_effect("upgrade_configs", "upgrades are served as plain HTTP"),
        honoured(
            "normalize_path",
            "RFC 3986: dot segments removed, unreserved characters unescaped, before filters and routing",
        ),
        honoured("merge_slashes", "runs of `/` in the path become one"),
        honoured(
            "path_with_escaped_slashes_action",
            "KEEP_UNCHANGED, REJECT_REQUEST (400), UNESCAPE_AND_REDIRECT (307), UNESCAPE_AND_FORWARD",
        ),
        no_effect(
            "request_id_extension",
            "request ids are not generated (tracing)",
        ),
        unsupported("local_reply_config", "custom local replies"),
        unsupported("strip_matching_host_port", "host port stripping"),
        unsupported("strip_any_host_port", "host port stripping"),
        no_effect(
            "stream_error_on_invalid_http_message",
            "invalid HTTP messages always end the connection",
        ),
        unsupported(
            "path_normalization_options",
            "path normalisation is not implemented yet",
        ),
        unsupported(
            "strip_trailing_host_dot",
            "host matching without the trailing dot",
        ),
        unsupported("proxy_status_config", "the Proxy-Status header"),
        unsupported(
            "typed_header_validation_config",
            "header validation extensions",
        ),
        unsupported("append_x_forwarded_port", "x-forwarded-port"),
        unsupported("append_local_overload", "overload headers"),
        unsupported("add_proxy_protocol_connection_state", "PROXY protocol"),
        unsupported("forward_proto_config", "x-forwarded-proto rewriting"),
    ],
};

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing`.
pub(super) const TRACING: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
    fields: &[
        honoured(
            "client_sampling",
            "share of requests with `x-client-trace-id` traced (default 100 %); an incoming `traceparent` decides first",
        ),
        honoured(
            "random_sampling",
            "share of other requests traced (default 100 %); an incoming `traceparent` decides first",
        ),
        honoured(
            "overall_sampling",
            "applied after client and random sampling (default 100 %)",
        ),
        no_effect("verbose", "no per-filter annotations are recorded"),
        honoured(
            "max_path_tag_length",
            "the `http.url` attribute is cut to this length (default 256)",
        ),
        honoured(
            "custom_tags",
            "literal, request header and environment tags on the server span; metadata tags have no effect",
        ),
        honoured(
            "provider",
            "`envoy.tracers.opentelemetry`; any other provider has no effect (logged once)",
        ),
        no_effect(
            "spawn_upstream_span",
            "a component's outbound requests always get their own client span",
        ),
        honoured(
            "operation",
            "the server span's name, over the route's decorator; command operators are refused",
        ),
        no_effect(
            "upstream_operation",
            "client spans are named `egress <authority>`",
        ),
        honoured(
            "no_context_propagation",
            "no `traceparent`/`tracestate` is written into requests sent upstream",
        ),
    ],
};

/// `envoy.config.trace.v3.OpenTelemetryConfig`.
pub(super) const OPENTELEMETRY: MessagePolicy = MessagePolicy {
    message: "envoy.config.trace.v3.OpenTelemetryConfig",
    fields: &[
        honoured(
            "grpc_service",
            "OTLP `TraceService/Export` through `envoy_grpc.cluster_name` (mesh-host's upstream client); unset, nothing is exported",
        ),
        unsupported("http_service", "OTLP over HTTP"),
        unsupported("exporter", "exporter extensions"),
        honoured(
            "service_name",
            "the `service.name` resource attribute (default `unknown_service:envoy`)",
        ),
        no_effect(
            "resource_detectors",
            "only `service.name` is set on the resource",
        ),
        unsupported("sampler", "sampler extensions"),
        honoured(
            "max_cache_size",
            "spans queued for export (default 1024); past it spans are dropped and counted",
        ),
        no_effect(
            "set_telemetry_sdk_resource_attributes",
            "only `service.name` is set on the resource",
        ),
        no_effect(
            "set_service_name_resource_attribute",
            "`service.name` is always set",
        ),
        no_effect(
            "set_instrumentation_scope",
            "spans carry the scope `mesh-host`",
        ),
    ],
};

/// `envoy.extensions.filters.http.router.v3.Router`.
pub(super) const ROUTER: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.filters.http.router.v3.Router",
    fields: &[
        no_effect("dynamic_stats", "statistics"),
        no_effect(
            "start_child_span",
            "mesh-host makes its own client spans for a component's outbound requests",
        ),
        no_effect("upstream_log", "upstream access logs are not written"),
        no_effect(
            "upstream_log_options",
            "upstream access logs are not written",
        ),
        honoured(
            "suppress_envoy_headers",
            "no x-envoy-original-path, x-envoy-original-host or x-envoy-attempt-count on forwarded requests, components' outbound requests included",
        ),
        unsupported(
            "strict_check_headers",
            "x-envoy-* request header validation",
        ),
        unsupported(
            "respect_expected_rq_timeout",
            "x-envoy-expected-rq-timeout-ms",
        ),
        no_effect("suppress_grpc_request_failure_code_stats", "statistics"),
        unsupported("upstream_http_filters", "upstream HTTP filters"),
        unsupported("reject_connect_request_early_data", "CONNECT requests"),
    ],
};
