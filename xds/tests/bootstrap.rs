//! Bootstrap files in YAML and JSON, as Envoy users write them; errors name file and field.

use std::path::Path;
use std::time::Duration;

use mesh_xds::bootstrap::{AdsApi, Bootstrap, BootstrapError, Format};
use mesh_xds::config::{
    CodecType, Discovery, HttpFilterConfig, LbPolicy, PathMatch, Permission, Principal, RbacAction,
    RouteAction, RouteSource, TrafficDirection, UpstreamProtocol,
};

const ENVOY_YAML: &str = r#"
node:
  id: host-1
  cluster: mesh
  metadata: {team: payments}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    traffic_direction: INBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          stream_idle_timeout: 30s
          use_remote_address: true
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match:
                  prefix: /api
                  headers: [{name: x-env, string_match: {exact: prod}}]
                route:
                  cluster: backend
                  timeout: 2.5s
                  retry_policy: {retry_on: "5xx,connect-failure", num_retries: 3}
              - match: {path: /health}
                direct_response: {status: 200, body: {inline_string: ok}}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  internal:
                    permissions: [{any: true}]
                    principals: [{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STRICT_DNS
    connect_timeout: 2s
    lb_policy: LEAST_REQUEST
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    circuit_breakers: {thresholds: [{max_connections: 100}]}
    metadata: {filter_metadata: {mesh-host.grpc: {serve: true}}}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: backend.local, port_value: 9000}}}
  - name: xds
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18000}}}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3}
"#;

fn parse_yaml(text: &str) -> Result<Bootstrap, BootstrapError> {
    Bootstrap::parse(text, Format::Yaml, "envoy.yaml")
}

fn assert_loaded(b: &Bootstrap) {
    assert_eq!(b.node.id, "host-1");
    assert_eq!(b.node.cluster, "mesh");
    assert_eq!(
        b.node.metadata.get("team"),
        Some(&serde_json::json!("payments"))
    );

    let listener = &b.static_config.listeners["ingress"];
    assert_eq!(listener.address.to_string(), "0.0.0.0:8080");
    assert_eq!(listener.traffic_direction, TrafficDirection::Inbound);
    assert_eq!(listener.bind_to_port, None);
    let http = &listener.filter_chains[0].http;
    assert_eq!(http.codec, CodecType::Auto);
    assert_eq!(http.stream_idle_timeout, Some(Duration::from_secs(30)));
    assert!(http.use_remote_address);
    let RouteSource::Inline(routes) = &http.route else {
        panic!("inline routes expected");
    };
    let api = &routes.virtual_hosts[0].routes[0];
    assert_eq!(api.r#match.path, PathMatch::Prefix("/api".to_owned()));
    assert_eq!(api.r#match.headers[0].name, "x-env");
    let RouteAction::Forward(forward) = &api.action else {
        panic!("forward expected");
    };
    assert_eq!(forward.timeout, Some(Duration::from_millis(2500)));
    let retry = forward.retry_policy.as_ref().expect("retry policy");
    assert_eq!(retry.num_retries, 3);
    assert!(matches!(
        &routes.virtual_hosts[0].routes[1].action,
        RouteAction::DirectResponse { status: 200, body: Some(body) } if &body[..] == b"ok"
    ));
    let HttpFilterConfig::Rbac(rbac) = &http.http_filters[0].config else {
        panic!("RBAC filter expected: {:?}", http.http_filters);
    };
    let rules = rbac.rules.as_ref().expect("rules");
    assert_eq!(rules.action, RbacAction::Allow);
    let policy = &rules.policies["internal"];
    assert_eq!(policy.permissions, vec![Permission::Any]);
    assert!(matches!(&policy.principals[0], Principal::DirectRemoteIp(c) if c.prefix_len == 8));

    let backend = &b.static_config.clusters["backend"];
    assert_eq!(backend.discovery, Discovery::StrictDns);
    assert_eq!(backend.lb_policy, LbPolicy::LEAST_REQUEST);
    assert_eq!(backend.connect_timeout, Duration::from_secs(2));
    assert_eq!(backend.protocol, UpstreamProtocol::Http2);
    assert_eq!(backend.circuit_breakers.max_connections, 100);
    assert_eq!(
        backend.circuit_breakers.max_requests, 1024,
        "unset thresholds keep Envoy's defaults"
    );
    assert_eq!(
        backend.metadata["mesh-host.grpc"],
        serde_json::json!({"serve": true})
    );
    let endpoint = &backend
        .load_assignment
        .as_ref()
        .expect("inline endpoints")
        .endpoints[0]
        .endpoints[0];
    assert_eq!(endpoint.address.to_string(), "backend.local:9000");

    let ads = b.ads.as_ref().expect("ads_config");
    assert_eq!(ads.api, AdsApi::Delta);
    assert_eq!(ads.cluster_name, "xds");
    assert_eq!(ads.endpoint.to_string(), "127.0.0.1:18000");
}

#[test]
fn yaml_bootstrap_loads_node_static_resources_and_ads() {
    let b = parse_yaml(ENVOY_YAML).expect("valid bootstrap");
    assert_loaded(&b);
}

#[test]
fn json_bootstrap_loads_like_yaml() {
    let value: serde_json::Value = serde_yaml::from_str(ENVOY_YAML).expect("yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, serde_json::to_string_pretty(&value).expect("json")).expect("write");
    let b = Bootstrap::load(&path).expect("valid JSON bootstrap");
    assert_loaded(&b);
}

#[test]
fn format_is_sniffed_when_the_extension_says_nothing() {
    assert_eq!(
        Format::detect(Path::new("envoy.conf"), "  {\"node\": {}}"),
        Format::Json
    );
    assert_eq!(
        Format::detect(Path::new("envoy.conf"), "node: {}"),
        Format::Yaml
    );
    assert_eq!(Format::detect(Path::new("envoy.yml"), "{}"), Format::Yaml);
}

#[test]
fn missing_port_error_names_file_and_field() {
    let text = ENVOY_YAML.replace(
        "{address: backend.local, port_value: 9000}",
        "{address: backend.local}",
    );
    let err = parse_yaml(&text).expect_err("port is required");
    assert_eq!(
        err.to_string(),
        "envoy.yaml: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value is missing"
    );
}

#[test]
fn schema_error_names_the_field_path() {
    let text = ENVOY_YAML.replace("connect_timeout: 2s", "connect_timeout: two seconds");
    let err = parse_yaml(&text).expect_err("bad duration");
    let BootstrapError::Schema { path, .. } = &err else {
        panic!("schema error expected, got {err}");
    };
    assert_eq!(path, "static_resources.clusters[0].connect_timeout");
    assert!(err.to_string().starts_with("envoy.yaml: "), "{err}");
}

#[test]
fn unknown_field_is_rejected_by_name() {
    let text = ENVOY_YAML.replace(
        "lb_policy: LEAST_REQUEST",
        "lb_policy: LEAST_REQUEST\n    lb_polcy: RANDOM",
    );
    let err = parse_yaml(&text).expect_err("typo");
    assert!(err.to_string().contains("lb_polcy"), "{err}");
}

#[test]
fn unsupported_bootstrap_part_is_named() {
    let text = format!("{ENVOY_YAML}\nhds_config: {{api_type: GRPC}}\n");
    let err = parse_yaml(&text).expect_err("HDS changes behaviour");
    assert_eq!(err.to_string(), "envoy.yaml: hds_config is not supported");
}

#[test]
fn unsupported_lb_policy_names_cluster_index() {
    let text = ENVOY_YAML.replace("lb_policy: LEAST_REQUEST", "lb_policy: CLUSTER_PROVIDED");
    let err = parse_yaml(&text).expect_err("cluster provided");
    assert_eq!(
        err.to_string(),
        "envoy.yaml: static_resources.clusters[0].lb_policy: CLUSTER_PROVIDED is not supported"
    );
}

#[test]
fn ads_cluster_must_be_a_static_cluster() {
    let text = ENVOY_YAML.replace("cluster_name: xds}", "cluster_name: nowhere}");
    let err = parse_yaml(&text).expect_err("unknown cluster");
    assert_eq!(
        err.to_string(),
        "envoy.yaml: dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: \"nowhere\" is not a static cluster"
    );
}

#[test]
fn syntax_error_names_the_file_and_format() {
    let err = parse_yaml("node: [unclosed").expect_err("bad YAML");
    assert!(matches!(
        err,
        BootstrapError::Syntax {
            format: Format::Yaml,
            ..
        }
    ));
    assert!(
        err.to_string().starts_with("envoy.yaml: not valid YAML"),
        "{err}"
    );
}

#[test]
fn missing_file_error_names_the_file() {
    let err = Bootstrap::load(Path::new("/nonexistent/envoy.yaml")).expect_err("no file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/envoy.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn bootstrap_without_dynamic_resources_has_no_ads() {
    let text = ENVOY_YAML
        .split("dynamic_resources:")
        .next()
        .unwrap_or_default();
    let b = parse_yaml(text).expect("static-only bootstrap");
    assert!(b.ads.is_none());
    assert_eq!(b.static_config.clusters.len(), 2);
}

/// Envoy Gateway's cluster shape: a typed load-balancing policy (an extension type inside
/// `Any`) and endpoint metadata.
fn envoy_gateway_cluster_yaml() -> String {
    ENVOY_YAML
        .replace(
            "    lb_policy: LEAST_REQUEST\n",
            r#"    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.least_request
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest
            localityLbConfig: {localityWeightedLbConfig: {}}
"#,
        )
        .replace(
            "        - endpoint: {address: {socket_address: {address: backend.local, port_value: 9000}}}\n",
            "        - endpoint: {address: {socket_address: {address: backend.local, port_value: 9000}}}\n          metadata: {filter_metadata: {envoy-gateway: {resources: [{kind: Service, name: backend}]}}}\n",
        )
}

#[test]
fn extension_types_in_any_parse_wherever_they_appear() {
    let b = parse_yaml(&envoy_gateway_cluster_yaml()).expect("Envoy Gateway's cluster loads");
    let backend = &b.static_config.clusters["backend"];
    assert_eq!(backend.lb_policy, LbPolicy::LEAST_REQUEST);
    assert!(backend.locality_weighted);
}
