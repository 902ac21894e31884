//! The upstream settings Envoy Gateway and istiod send (issue 12), written as they send them:
//! load-balancing policies and their extensions, the DNS cluster extension, active health
//! checks, outlier detection's local-origin fields, per-host thresholds, endpoint and
//! locality metadata, and on routes: hash policies and formatted direct responses.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::endpoint::v3 as eds;
use envoy_types::pb::envoy::config::route::v3 as rds;
use mesh_xds::config::{
    Cluster, Discovery, HashPolicy, HashSource, HealthCheckKind, LbPolicy, LoadAssignment,
    RouteAction, RouteConfig,
};
use mesh_xds::test_control_plane::resource_from_yaml;

fn cluster(yaml: &str) -> Result<Cluster, String> {
    let proto: cds::Cluster = resource_from_yaml(yaml).map_err(|e| e.to_string())?;
    Cluster::try_from(proto).map_err(|e| e.to_string())
}

const EDS: &str = "name: c\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\n";

fn lb_extension(type_name: &str, config: &str) -> String {
    format!(
        "{EDS}load_balancing_policy:\n  policies:\n  - typed_extension_config:\n      name: x\n      typed_config: {{\"@type\": \"type.googleapis.com/envoy.extensions.load_balancing_policies.{type_name}\"{config}}}\n"
    )
}

#[test]
fn load_balancing_policy_extensions_are_honoured_with_their_settings() {
    let c = cluster(&lb_extension(
        "least_request.v3.LeastRequest",
        ", choice_count: 3, active_request_bias: {default_value: 0.5}, locality_lb_config: {locality_weighted_lb_config: {}}",
    ))
    .expect("least request");
    assert_eq!(
        c.lb_policy,
        LbPolicy::LeastRequest {
            choice_count: 3,
            active_request_bias: 0.5,
            full_scan: false
        }
    );
    assert!(c.locality_weighted);
    let c = cluster(&lb_extension(
        "round_robin.v3.RoundRobin",
        ", slow_start_config: {slow_start_window: 30s}",
    ))
    .expect("round robin");
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert!(!c.locality_weighted);
    let c = cluster(&lb_extension("random.v3.Random", "")).expect("random");
    assert_eq!(c.lb_policy, LbPolicy::Random);
    let c = cluster(&lb_extension(
        "ring_hash.v3.RingHash",
        ", minimum_ring_size: 2048",
    ))
    .expect("ring hash");
    assert_eq!(
        c.lb_policy,
        LbPolicy::RingHash {
            minimum_ring_size: 2048,
            maximum_ring_size: 8 * 1024 * 1024
        }
    );
    let c = cluster(&lb_extension("maglev.v3.Maglev", "")).expect("maglev");
    assert_eq!(c.lb_policy, LbPolicy::Maglev { table_size: 65537 });
    let error =
        cluster(&lb_extension("maglev.v3.Maglev", ", table_size: 65536")).expect_err("not prime");
    assert!(
        error.contains("table_size: 65536 is not a prime"),
        "{error}"
    );
}

#[test]
fn load_balancing_policy_takes_the_first_policy_mesh_host_implements() {
    let yaml = format!(
        "{EDS}load_balancing_policy:\n  policies:\n  - typed_extension_config: {{name: a, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin}}}}\n  - typed_extension_config: {{name: b, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random}}}}\n"
    );
    assert_eq!(
        cluster(&yaml).expect("second policy").lb_policy,
        LbPolicy::Random
    );
    let only_unknown = format!(
        "{EDS}load_balancing_policy:\n  policies:\n  - typed_extension_config: {{name: a, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin}}}}\n"
    );
    let error = cluster(&only_unknown).expect_err("no policy mesh-host implements");
    assert!(
        error.contains("load_balancing_policy.policies[0].typed_extension_config.typed_config: type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin is not supported"),
        "{error}"
    );
}

#[test]
fn legacy_lb_policy_reads_its_lb_config_and_common_lb_config() {
    let c = cluster(&format!(
        "{EDS}lb_policy: RING_HASH\nring_hash_lb_config: {{minimum_ring_size: 512, maximum_ring_size: 4096}}\ncommon_lb_config: {{healthy_panic_threshold: {{value: 30}}, locality_weighted_lb_config: {{}}, update_merge_window: 1s}}\n"
    ))
    .expect("Istio consistent hash");
    assert_eq!(
        c.lb_policy,
        LbPolicy::RingHash {
            minimum_ring_size: 512,
            maximum_ring_size: 4096
        }
    );
    assert!(c.locality_weighted);
    assert_eq!(c.healthy_panic_threshold, 30.0);
    let error = cluster(&format!(
        "{EDS}lb_policy: RING_HASH\nring_hash_lb_config: {{hash_function: MURMUR_HASH_2}}\n"
    ))
    .expect_err("murmur");
    assert!(
        error.contains("ring_hash_lb_config.hash_function: only XX_HASH"),
        "{error}"
    );
    let error = cluster(&format!("{EDS}original_dst_lb_config: {{}}\n")).expect_err("original dst");
    assert!(
        error.ends_with("original_dst_lb_config is not supported"),
        "{error}"
    );
}

#[test]
fn dns_cluster_extension_is_strict_or_logical_dns() {
    let dns = |single: bool| {
        format!(
            "name: c\ncluster_type: {{name: envoy.clusters.dns, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster, dns_lookup_family: V4_PREFERRED, respect_dns_ttl: true, all_addresses_in_single_endpoint: {single}}}}}\nload_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: backend.example.com, port_value: 80}}}}}}}}]}}]}}\n"
        )
    };
    assert_eq!(
        cluster(&dns(false)).expect("strict").discovery,
        Discovery::StrictDns
    );
    assert_eq!(
        cluster(&dns(true)).expect("logical").discovery,
        Discovery::LogicalDns
    );
    let error = cluster("name: c\ncluster_type: {name: envoy.clusters.aggregate, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig}}\n")
        .expect_err("aggregate");
    assert!(
        error.contains("cluster_type.typed_config: cluster type"),
        "{error}"
    );
}

#[test]
fn health_checks_take_envoy_defaults_and_refuse_what_is_not_run() {
    let c = cluster(&format!(
        "{EDS}ignore_health_on_host_removal: true\nhealth_checks:\n- {{timeout: 1s, interval: 5s, interval_jitter: 1s, unhealthy_threshold: 3, healthy_threshold: 2, event_log_path: /dev/stdout, http_health_check: {{path: /healthz, expected_statuses: [{{start: 200, end: 400}}], retriable_statuses: [{{start: 503, end: 504}}]}}}}\n"
    ))
    .expect("HTTP check");
    assert!(c.ignore_health_on_host_removal);
    let check = c.health_check.expect("check");
    assert_eq!(check.interval, Duration::from_secs(5));
    assert_eq!(check.no_traffic_interval, Duration::from_secs(60));
    assert_eq!((check.unhealthy_threshold, check.healthy_threshold), (3, 2));
    let HealthCheckKind::Http {
        path,
        expected_statuses,
        retriable_statuses,
        method,
        ..
    } = check.kind
    else {
        panic!("HTTP check expected");
    };
    assert_eq!((path.as_str(), method.as_str()), ("/healthz", "GET"));
    assert_eq!(expected_statuses, vec![(200, 400)]);
    assert_eq!(retriable_statuses, vec![(503, 504)]);

    let grpc = "health_checks: [{timeout: 1s, interval: 5s, unhealthy_threshold: 1, healthy_threshold: 1, grpc_health_check: {service_name: helloworld.Greeter}}]\n";
    let error = cluster(&format!("{EDS}{grpc}")).expect_err("gRPC over HTTP/1.1");
    assert!(error.ends_with("health_checks[0].grpc_health_check: the cluster must speak HTTP/2 for gRPC health checks"), "{error}");
    let c = cluster(&format!("{EDS}http2_protocol_options: {{}}\n{grpc}")).expect("gRPC check");
    assert_eq!(
        c.health_check.map(|h| h.kind),
        Some(HealthCheckKind::Grpc {
            service_name: "helloworld.Greeter".into(),
            authority: None
        })
    );
    let c = cluster(&format!(
        "{EDS}health_checks: [{{timeout: 1s, interval: 5s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{send: {{text: '50494e47'}}, receive: [{{text: '504f4e47'}}]}}}}]\n"
    ))
    .expect("TCP check");
    assert_eq!(
        c.health_check.map(|h| h.kind),
        Some(HealthCheckKind::Tcp {
            send: b"PING".to_vec(),
            receive: vec![b"PONG".to_vec()]
        })
    );
    let error = cluster(&format!(
        "{EDS}health_checks: [{{interval: 5s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{}}}}]\n"
    ))
    .expect_err("no timeout");
    assert!(
        error.ends_with("health_checks[0].timeout is missing"),
        "{error}"
    );
    let error = cluster(&format!(
        "{EDS}health_checks: [{{timeout: 1s, interval: 5s, unhealthy_threshold: 1, healthy_threshold: 1, custom_health_check: {{name: x}}}}]\n"
    ))
    .expect_err("custom");
    assert!(
        error.ends_with("health_checks[0].custom_health_check is not supported"),
        "{error}"
    );
}

#[test]
fn ignore_health_on_host_removal_without_health_checks_is_accepted() {
    let c = cluster(&format!("{EDS}ignore_health_on_host_removal: true\n"))
        .expect("Envoy Gateway's cluster");
    assert!(c.health_check.is_none());
}

#[test]
fn outlier_detection_local_origin_fields_are_honoured() {
    let c = cluster(&format!(
        "{EDS}outlier_detection: {{consecutive_5xx: 7, split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, enforcing_consecutive_local_origin_failure: 50, consecutive_gateway_failure: 2, enforcing_consecutive_gateway_failure: 100, enforcing_success_rate: 0, max_ejection_time: 60s}}\n"
    ))
    .expect("local origin");
    let o = c.outlier_detection.expect("outlier detection");
    assert!(o.split_external_local_origin_errors);
    assert_eq!(
        (
            o.consecutive_5xx,
            o.consecutive_local_origin_failure,
            o.enforcing_consecutive_local_origin_failure
        ),
        (7, 3, 50)
    );
    assert_eq!(
        (
            o.consecutive_gateway_failure,
            o.enforcing_consecutive_gateway_failure
        ),
        (2, 100)
    );
    assert_eq!(o.max_ejection_time, Duration::from_secs(60));
    let error = cluster(&format!(
        "{EDS}outlier_detection: {{enforcing_success_rate: 100}}\n"
    ))
    .expect_err("success-rate ejection");
    assert!(
        error.ends_with("outlier_detection.enforcing_success_rate is not supported"),
        "{error}"
    );
}

#[test]
fn per_host_thresholds_cap_connections_per_endpoint() {
    let c = cluster(&format!(
        "{EDS}circuit_breakers: {{thresholds: [{{max_retries: 1024}}], per_host_thresholds: [{{max_connections: 5}}]}}\n"
    ))
    .expect("per host");
    assert_eq!(c.circuit_breakers.per_host_max_connections, Some(5));
    assert_eq!(c.circuit_breakers.max_retries, 1024);
    let error = cluster(&format!(
        "{EDS}circuit_breakers: {{per_host_thresholds: [{{max_requests: 5}}]}}\n"
    ))
    .expect_err("only max_connections per host");
    assert!(
        error.ends_with("circuit_breakers.per_host_thresholds[0].max_requests is not supported"),
        "{error}"
    );
}

#[test]
fn endpoint_and_locality_metadata_are_accepted_and_health_check_ports_read() {
    let proto: eds::ClusterLoadAssignment = resource_from_yaml(
        r#"
cluster_name: c
endpoints:
- locality: {region: r1}
  metadata: {filter_metadata: {envoy-gateway: {resources: [{kind: Service, name: backend}]}}}
  load_balancing_weight: 1
  lb_endpoints:
  - endpoint:
      address: {socket_address: {address: 10.0.0.1, port_value: 3000}}
      health_check_config: {port_value: 3001}
    metadata: {filter_metadata: {envoy.transport_socket_match: {tlsMode: istio}}}
"#,
    )
    .expect("Envoy Gateway's endpoints");
    let la = LoadAssignment::try_from(proto).expect("accepted");
    let endpoint = la.all_endpoints().next().expect("one endpoint");
    assert_eq!(endpoint.health_check_port, Some(3001));
}

fn routes(yaml: &str) -> Result<RouteConfig, String> {
    let proto: rds::RouteConfiguration = resource_from_yaml(yaml).map_err(|e| e.to_string())?;
    RouteConfig::try_from(proto).map_err(|e| e.to_string())
}

fn one_route(route: &str) -> String {
    format!("name: r\nvirtual_hosts: [{{name: v, domains: ['*'], routes: [{route}]}}]\n")
}

#[test]
fn hash_policy_entries_are_translated_in_order() {
    let rc = routes(&one_route(
        "{match: {prefix: /}, route: {cluster: c, hash_policy: [{header: {header_name: X-User}}, {cookie: {name: session}, terminal: true}, {connection_properties: {source_ip: true}}, {query_parameter: {name: u}}]}}",
    ))
    .expect("hash policies");
    let RouteAction::Forward(forward) = &rc.virtual_hosts[0].routes[0].action else {
        panic!("forward expected");
    };
    assert_eq!(
        forward.hash_policy,
        vec![
            HashPolicy {
                source: HashSource::Header("x-user".into()),
                terminal: false
            },
            HashPolicy {
                source: HashSource::Cookie("session".into()),
                terminal: true
            },
            HashPolicy {
                source: HashSource::SourceIp,
                terminal: false
            },
            HashPolicy {
                source: HashSource::QueryParameter("u".into()),
                terminal: false
            },
        ]
    );
    let error = routes(&one_route(
        "{match: {prefix: /}, route: {cluster: c, hash_policy: [{cookie: {name: s, ttl: 10s}}]}}",
    ))
    .expect_err("generated cookies");
    assert!(
        error.ends_with("route.hash_policy[0].cookie.ttl is not supported"),
        "{error}"
    );
}

#[test]
fn direct_response_body_format_renders_text_and_sets_the_content_type() {
    let rc = routes(&one_route(
        "{match: {prefix: /}, direct_response: {status: 429, body: {inline_string: slow}, body_format: {text_format: \"%RESPONSE_CODE% %LOCAL_REPLY_BODY% 100%%\"}}}",
    ))
    .expect("text format");
    let route = &rc.virtual_hosts[0].routes[0];
    assert_eq!(
        route.action,
        RouteAction::DirectResponse {
            status: 429,
            body: Some(b"0 slow 100%".to_vec().into())
        }
    );
    let content_type = &route.headers.response_headers_to_add[0];
    assert_eq!(
        (content_type.name.as_str(), content_type.value.as_str()),
        ("content-type", "text/plain")
    );
    let error = routes(&one_route(
        "{match: {prefix: /}, direct_response: {status: 200, body_format: {text_format: \"%REQ(:path)%\"}}}",
    ))
    .expect_err("request operators");
    assert!(
        error.contains("body_format.text_format: only %LOCAL_REPLY_BODY%"),
        "{error}"
    );
}

#[test]
fn a_domain_listed_twice_is_refused_as_envoy_refuses_it() {
    let error = routes(
        "name: r\nvirtual_hosts:\n- {name: a, domains: [a.example.com, 10.96.0.1], routes: []}\n- {name: b, domains: [10.96.0.1], routes: []}\n",
    )
    .expect_err("duplicate domain");
    assert!(
        error
            .ends_with("virtual_hosts[1].domains[0]: domain 10.96.0.1 is also in virtual_hosts[0]"),
        "{error}"
    );
}
