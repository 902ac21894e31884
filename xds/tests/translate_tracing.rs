//! `tracing` of a connection manager and a route's `decorator` and `tracing`, translated from
//! bootstrap YAML: the OpenTelemetry provider with its gRPC collector, sampling percentages,
//! custom tags; other providers have no effect; what cannot be honoured is refused by name.

use mesh_xds::bootstrap::{Bootstrap, Format};
use mesh_xds::config::{CustomTag, CustomTagValue, Fraction, Route, Tracing};

fn bootstrap(tracing: &str, route_extra: &str) -> Result<Bootstrap, String> {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
{tracing}
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200 }}
{route_extra}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
"#
    );
    Bootstrap::parse(&yaml, Format::Yaml, "test.yaml").map_err(|e| e.to_string())
}

fn hcm_tracing(tracing: &str) -> Result<Option<Tracing>, String> {
    let b = bootstrap(tracing, "")?;
    Ok(b.static_config.listeners["l"].filter_chains[0]
        .http
        .tracing
        .clone())
}

fn route(route_extra: &str) -> Result<Route, String> {
    let b = bootstrap("", route_extra)?;
    let mesh_xds::config::RouteSource::Inline(routes) =
        &b.static_config.listeners["l"].filter_chains[0].http.route
    else {
        panic!("inline routes expected");
    };
    Ok(routes.virtual_hosts[0].routes[0].clone())
}

const OTEL: &str = r#"
          tracing:
            random_sampling: { value: 1 }
            overall_sampling: { value: 50.5 }
            max_path_tag_length: 64
            custom_tags:
            - { tag: team, literal: { value: payments } }
            - { tag: tenant, request_header: { name: X-Tenant, default_value: none } }
            - { tag: pod, environment: { name: POD_NAME, default_value: unknown } }
            - { tag: meta, metadata: { kind: { request: {} }, metadata_key: { key: k, path: [{ key: a }] } } }
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: front
                grpc_service: { envoy_grpc: { cluster_name: otel-collector }, timeout: 2s }"#;

#[test]
fn the_opentelemetry_provider_exports_to_its_cluster_with_envoys_sampling() {
    let tracing = hcm_tracing(OTEL).expect("valid").expect("tracing on");
    assert_eq!(tracing.provider.collector.cluster, "otel-collector");
    assert_eq!(
        tracing.provider.collector.timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(tracing.provider.service_name, "front");
    assert_eq!(tracing.provider.max_cache_size, 1024);
    assert_eq!(
        tracing.random_sampling,
        Fraction {
            numerator: 10_000,
            denominator: 1_000_000
        }
    );
    assert_eq!(tracing.overall_sampling.numerator, 505_000);
    assert_eq!(
        tracing.client_sampling,
        Fraction::ALL,
        "Envoy's default is 100 %"
    );
    assert_eq!(tracing.max_path_tag_length, 64);
    assert!(tracing.propagate_context);
    assert_eq!(
        tracing.custom_tags,
        vec![
            CustomTag {
                tag: "team".into(),
                value: CustomTagValue::Literal("payments".into())
            },
            CustomTag {
                tag: "tenant".into(),
                value: CustomTagValue::RequestHeader {
                    name: "x-tenant".into(),
                    default_value: "none".into()
                }
            },
            CustomTag {
                tag: "pod".into(),
                value: CustomTagValue::Environment {
                    name: "POD_NAME".into(),
                    default_value: "unknown".into()
                }
            },
        ],
        "a metadata tag has no effect"
    );
}

#[test]
fn defaults_name_envoys_service_and_trace_everything() {
    let tracing = hcm_tracing(
        r#"
          tracing:
            no_context_propagation: true
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: { envoy_grpc: { cluster_name: otel } }"#,
    )
    .expect("valid")
    .expect("tracing on");
    assert_eq!(tracing.provider.service_name, "unknown_service:envoy");
    assert_eq!(tracing.random_sampling, Fraction::ALL);
    assert_eq!(tracing.overall_sampling, Fraction::ALL);
    assert_eq!(tracing.max_path_tag_length, 256);
    assert!(!tracing.propagate_context);
    assert_eq!(tracing.operation, None);
}

#[test]
fn another_provider_or_no_collector_means_no_tracing() {
    let zipkin = hcm_tracing(
        r#"
          tracing:
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON"#,
    );
    assert_eq!(zipkin, Ok(None));
    let no_collector = hcm_tracing(
        r#"
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config: { "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig }"#,
    );
    assert_eq!(no_collector, Ok(None));
    assert_eq!(hcm_tracing("          tracing: {}"), Ok(None));
}

#[test]
fn otlp_over_http_a_sampler_and_formatted_operations_are_refused_by_name() {
    let http = hcm_tracing(
        r#"
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service: { http_uri: { uri: "http://otel:4318/v1/traces", cluster: otel, timeout: 1s } }"#,
    )
    .expect_err("refused");
    assert!(
        http.contains("tracing.provider.typed_config.http_service"),
        "{http}"
    );
    let sampler = hcm_tracing(
        r#"
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: { envoy_grpc: { cluster_name: otel } }
                sampler: { name: always_on, typed_config: { "@type": type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3.AlwaysOnSamplerConfig } }"#,
    )
    .expect_err("refused");
    assert!(sampler.contains("typed_config.sampler"), "{sampler}");
    let operation = hcm_tracing(&format!("{OTEL}\n            operation: \"%REQ(:PATH)%\""))
        .expect_err("refused");
    assert!(operation.contains("tracing.operation"), "{operation}");
    let percent = hcm_tracing(&OTEL.replace("value: 1 }", "value: 101 }")).expect_err("refused");
    assert!(percent.contains("tracing.random_sampling"), "{percent}");
}

#[test]
fn a_routes_decorator_and_tracing_override_the_connection_managers() {
    let route = route(
        r#"
                decorator: { operation: checkout }
                tracing:
                  random_sampling: { numerator: 5, denominator: TEN_THOUSAND }
                  custom_tags: [{ tag: route, literal: { value: r1 } }]"#,
    )
    .expect("valid");
    assert_eq!(route.tracing.operation.as_deref(), Some("checkout"));
    assert_eq!(
        route.tracing.random_sampling,
        Some(Fraction {
            numerator: 5,
            denominator: 10_000
        })
    );
    assert_eq!(route.tracing.overall_sampling, None);
    assert_eq!(route.tracing.custom_tags.len(), 1);
    let plain = self::route("").expect("valid");
    assert!(plain.tracing.is_empty());
}
