//! Decode + validate + publish of a large xDS snapshot in Envoy Gateway's shape: 10,000 routes
//! (with their metadata and websocket upgrade) and 1,000 EDS clusters (least request with
//! locality weighting, circuit breakers, endpoint and locality metadata), fed to the ADS state
//! machine as the four encoded SotW responses a control plane would send.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_xds::ads::{AdsState, Incoming};
use mesh_xds::bootstrap::{AdsApi, NodeIdentity};
use mesh_xds::config::{MeshConfig, ResourceKind};
use mesh_xds::envoy_types::pb::envoy::config::cluster::v3 as cds;
use mesh_xds::envoy_types::pb::envoy::config::core::v3 as core;
use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3 as eds;
use mesh_xds::envoy_types::pb::envoy::config::listener::v3 as lds;
use mesh_xds::envoy_types::pb::envoy::config::route::v3 as rds;
use mesh_xds::envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use mesh_xds::envoy_types::pb::envoy::extensions::load_balancing_policies as lb;
use mesh_xds::envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use mesh_xds::envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use mesh_xds::envoy_types::pb::google::protobuf::{Any, Struct, UInt32Value, Value, value};
use mesh_xds::prost::{Message, Name};
use mesh_xds::store::ConfigStore;

const ROUTES: usize = 10_000;
const VIRTUAL_HOSTS: usize = 10;
const CLUSTERS: usize = 1_000;

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn ads_source() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            Default::default(),
        )),
        ..Default::default()
    }
}

/// Envoy Gateway's `filter_metadata: {envoy-gateway: {resources: [{kind, name}]}}`.
fn gateway_metadata(kind: &str, name: &str) -> core::Metadata {
    let string = |s: &str| Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    };
    let resource = Struct {
        fields: [
            ("kind".to_owned(), string(kind)),
            ("name".to_owned(), string(name)),
        ]
        .into_iter()
        .collect(),
    };
    let resources = Value {
        kind: Some(value::Kind::ListValue(
            mesh_xds::envoy_types::pb::google::protobuf::ListValue {
                values: vec![Value {
                    kind: Some(value::Kind::StructValue(resource)),
                }],
            },
        )),
    };
    core::Metadata {
        filter_metadata: [(
            "envoy-gateway".to_owned(),
            Struct {
                fields: [("resources".to_owned(), resources)].into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

fn socket(port: u32) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: "127.0.0.1".to_owned(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn listener() -> lds::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "http".to_owned(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                route_config_name: "routes".to_owned(),
                config_source: Some(ads_source()),
            },
        )),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    .to_owned(),
                value: Vec::new(),
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    lds::Listener {
        name: "ingress".to_owned(),
        address: Some(socket(8080)),
        filter_chains: vec![lds::FilterChain {
            filters: vec![lds::Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(lds::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config() -> rds::RouteConfiguration {
    let per_host = ROUTES / VIRTUAL_HOSTS;
    let virtual_hosts = (0..VIRTUAL_HOSTS)
        .map(|h| rds::VirtualHost {
            name: format!("vh{h}"),
            domains: vec![format!("svc{h}.mesh.local")],
            metadata: Some(gateway_metadata("Gateway", "eg")),
            routes: (0..per_host)
                .map(|r| rds::Route {
                    name: format!("httproute/default/route{h}/rule/{r}/match/0"),
                    metadata: Some(gateway_metadata("HTTPRoute", &format!("route{h}"))),
                    r#match: Some(rds::RouteMatch {
                        path_specifier: Some(rds::route_match::PathSpecifier::Prefix(format!(
                            "/api/{r}/"
                        ))),
                        headers: vec![rds::HeaderMatcher {
                            name: "x-version".to_owned(),
                            header_match_specifier: Some(
                                rds::header_matcher::HeaderMatchSpecifier::StringMatch(
                                    matcher::StringMatcher {
                                        match_pattern: Some(
                                            matcher::string_matcher::MatchPattern::Exact(
                                                "v2".to_owned(),
                                            ),
                                        ),
                                        ..Default::default()
                                    },
                                ),
                            ),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    action: Some(rds::route::Action::Route(rds::RouteAction {
                        cluster_specifier: Some(rds::route_action::ClusterSpecifier::Cluster(
                            format!("c{}", (h * per_host + r) % CLUSTERS),
                        )),
                        upgrade_configs: vec![rds::route_action::UpgradeConfig {
                            upgrade_type: "websocket".to_owned(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    rds::RouteConfiguration {
        name: "routes".to_owned(),
        ignore_port_in_host_matching: true,
        virtual_hosts,
        ..Default::default()
    }
}

fn cluster(i: usize) -> cds::Cluster {
    cds::Cluster {
        name: format!("c{i}"),
        cluster_discovery_type: Some(cds::cluster::ClusterDiscoveryType::Type(
            cds::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cds::cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(mesh_xds::envoy_types::pb::google::protobuf::Duration {
            seconds: 10,
            nanos: 0,
        }),
        dns_lookup_family: cds::cluster::DnsLookupFamily::V4Preferred as i32,
        ignore_health_on_host_removal: true,
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32768 }),
        circuit_breakers: Some(cds::CircuitBreakers {
            thresholds: vec![cds::circuit_breakers::Thresholds {
                max_retries: Some(UInt32Value { value: 1024 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        load_balancing_policy: Some(cds::LoadBalancingPolicy {
            policies: vec![cds::load_balancing_policy::Policy {
                typed_extension_config: Some(core::TypedExtensionConfig {
                    name: "envoy.load_balancing_policies.least_request".to_owned(),
                    typed_config: Some(any(&lb::least_request::v3::LeastRequest {
                        locality_lb_config: Some(lb::common::v3::LocalityLbConfig {
                            locality_config_specifier: Some(
                                lb::common::v3::locality_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                                    Default::default(),
                                ),
                            ),
                        }),
                        ..Default::default()
                    })),
                }),
            }],
        }),
        ..Default::default()
    }
}

fn assignment(i: usize) -> eds::ClusterLoadAssignment {
    eds::ClusterLoadAssignment {
        cluster_name: format!("c{i}"),
        endpoints: vec![eds::LocalityLbEndpoints {
            locality: Some(core::Locality {
                region: format!("c{i}/backend/0"),
                ..Default::default()
            }),
            metadata: Some(gateway_metadata("Service", &format!("backend{i}"))),
            load_balancing_weight: Some(UInt32Value { value: 1 }),
            lb_endpoints: (0..3)
                .map(|e| eds::LbEndpoint {
                    host_identifier: Some(eds::lb_endpoint::HostIdentifier::Endpoint(
                        eds::Endpoint {
                            address: Some(socket(9000 + e)),
                            ..Default::default()
                        },
                    )),
                    load_balancing_weight: Some(UInt32Value { value: 1 }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The four SotW responses, encoded as they arrive on the wire.
fn encoded_responses() -> Vec<Vec<u8>> {
    let response = |kind: ResourceKind, resources: Vec<Any>| {
        DiscoveryResponse {
            version_info: "v1".to_owned(),
            type_url: kind.type_url().to_owned(),
            nonce: "1".to_owned(),
            resources,
            ..Default::default()
        }
        .encode_to_vec()
    };
    vec![
        response(
            ResourceKind::Cluster,
            (0..CLUSTERS).map(|i| any(&cluster(i))).collect(),
        ),
        response(
            ResourceKind::LoadAssignment,
            (0..CLUSTERS).map(|i| any(&assignment(i))).collect(),
        ),
        response(ResourceKind::Listener, vec![any(&listener())]),
        response(ResourceKind::RouteConfig, vec![any(&route_config())]),
    ]
}

/// Decodes, validates and publishes the whole snapshot; returns what was published.
fn apply(responses: &[Vec<u8>]) -> Arc<MeshConfig> {
    let node = NodeIdentity {
        id: "bench".to_owned(),
        ..Default::default()
    };
    let mut state = AdsState::new(AdsApi::StateOfTheWorld, &node, Duration::from_secs(15));
    state.start_stream();
    let store = ConfigStore::new(MeshConfig::default());
    for bytes in responses {
        let Ok(response) = DiscoveryResponse::decode(bytes.as_slice()) else {
            panic!("benchmark input does not decode");
        };
        let step = state.handle(Incoming::Sotw(response), Instant::now());
        assert!(step.requests.iter().all(|r| match r {
            mesh_xds::ads::Outgoing::Sotw(r) => r.error_detail.is_none(),
            mesh_xds::ads::Outgoing::Delta(r) => r.error_detail.is_none(),
        }));
    }
    store.publish(state.resources())
}

fn bench(c: &mut Criterion) {
    let responses = encoded_responses();
    let published = apply(&responses);
    assert_eq!(published.clusters.len(), CLUSTERS);
    assert_eq!(published.load_assignments.len(), CLUSTERS);
    assert_eq!(published.listeners.len(), 1);
    let routes: usize = published.route_configs["routes"]
        .virtual_hosts
        .iter()
        .map(|v| v.routes.len())
        .sum();
    assert_eq!(routes, ROUTES);

    let mut group = c.benchmark_group("xds_snapshot");
    group.sample_size(10);
    group.bench_function("envoy_gateway_10k_routes_1k_eds_clusters", |b| {
        b.iter(|| apply(std::hint::black_box(&responses)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
