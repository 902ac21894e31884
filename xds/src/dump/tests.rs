//! The dump reads back as `envoy.admin.v3.ConfigDump` and follows Envoy's admin rules.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage};

use super::*;
use crate::ads::{AdsState, Incoming};
use crate::bootstrap::{AdsApi, Bootstrap, Format, NodeIdentity};
use crate::store::ConfigStore;

const BOOTSTRAP: &str = r#"
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
static_resources:
  listeners:
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: cert.pem }
              private_key: { inline_string: "-----BEGIN PRIVATE KEY-----secret" }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls
          route_config:
            name: local
            virtual_hosts: [{ name: all, domains: ["*"], routes: [{ match: { prefix: "/" }, route: { cluster: backend } }] }]
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } }] }]
"#;

fn bootstrap() -> Bootstrap {
    Bootstrap::parse(BOOTSTRAP, Format::Yaml, "test.yaml").expect("bootstrap")
}

/// Reads `json` with the protobuf JSON parser of the Envoy descriptors, unknown fields refused.
fn parse_as_config_dump(json: &serde_json::Value) -> DynamicMessage {
    let pool = pool().expect("pool");
    let descriptor = pool
        .get_message_by_name("envoy.admin.v3.ConfigDump")
        .expect("descriptor");
    DynamicMessage::deserialize_with_options(
        descriptor,
        json.clone(),
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .expect("parses as envoy.admin.v3.ConfigDump")
}

fn types(json: &serde_json::Value) -> Vec<String> {
    json["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| c["@type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_dump_parses_as_a_config_dump_and_redacts_private_keys() {
    let loaded = bootstrap();
    assert_eq!(
        loaded.admin,
        Some("127.0.0.1:9901".parse().expect("addr")),
        "admin.address is read"
    );
    let store = ConfigStore::from_bootstrap(&loaded);
    let json = store
        .config_dump(&DumpQuery::default(), Vec::new())
        .expect("dump");
    parse_as_config_dump(&json);
    assert_eq!(
        types(&json),
        [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        ]
    );
    let text = json.to_string();
    assert!(!text.contains("secret"), "private key leaked: {text}");
    let listener = &json["configs"][3]["static_listeners"][0];
    let key = &listener["listener"]["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
        ["tls_certificates"][0]["private_key"];
    assert_eq!(key["inline_string"], "[redacted]", "{listener}");
    assert!(listener["last_updated"].is_string());
    let routes = &json["configs"][4]["static_route_configs"][0]["route_config"];
    assert_eq!(routes["name"], "local", "inline route configs are listed");
    let endpoints = &json["configs"][2]["static_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(endpoints["cluster_name"], "backend");
}

#[test]
fn resource_selects_elements_and_mask_trims_them() {
    let store = ConfigStore::from_bootstrap(&bootstrap());
    let query = DumpQuery {
        resource: Some("static_clusters".into()),
        mask: vec!["cluster.name".into()],
    };
    let json = store.config_dump(&query, Vec::new()).expect("dump");
    parse_as_config_dump(&json);
    assert_eq!(
        json["configs"],
        serde_json::json!([{
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster",
            "cluster": { "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "backend" }
        }])
    );
    let missing = store.config_dump(
        &DumpQuery {
            resource: Some("no_such_field".into()),
            mask: Vec::new(),
        },
        Vec::new(),
    );
    assert!(matches!(missing, Err(DumpError::ResourceNotFound(_))));
}

#[test]
fn accepted_xds_resources_carry_their_version_and_warming_state() {
    let mut state = AdsState::new(
        AdsApi::StateOfTheWorld,
        &NodeIdentity::default(),
        Duration::from_secs(15),
    );
    let _ = state.start_stream();
    let cluster = Cluster {
        name: "eds".into(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(
            envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType::Type(3),
        ),
        eds_cluster_config: Some(Default::default()),
        ..Default::default()
    };
    let step = state.handle(
        Incoming::Sotw(DiscoveryResponse {
            version_info: "v7".into(),
            type_url: crate::config::ResourceKind::Cluster.type_url().into(),
            nonce: "n1".into(),
            resources: vec![Any {
                type_url: crate::config::ResourceKind::Cluster.type_url().into(),
                value: cluster.encode_to_vec(),
            }],
            ..Default::default()
        }),
        Instant::now(),
    );
    assert_eq!(
        step.update,
        Some((crate::config::ResourceKind::Cluster, true))
    );
    let store = ConfigStore::from_bootstrap(&bootstrap());
    store.set_accepted(state.accepted_resources());
    let json = store
        .config_dump(
            &DumpQuery {
                resource: Some("dynamic_warming_clusters".into()),
                mask: Vec::new(),
            },
            Vec::new(),
        )
        .expect("dump");
    parse_as_config_dump(&json);
    let entry = &json["configs"][0];
    assert_eq!(entry["version_info"], "v7");
    assert_eq!(
        entry["cluster"]["name"], "eds",
        "waits for its EDS: {entry}"
    );
    assert!(entry["last_updated"].is_string());
}

#[test]
fn extra_sections_are_appended_only_to_a_full_dump() {
    let store = ConfigStore::from_bootstrap(&bootstrap());
    let extra = serde_json::json!({
        "@type": "type.googleapis.com/google.protobuf.Struct",
        "value": { "workloads": [] }
    });
    let json = store
        .config_dump(&DumpQuery::default(), vec![extra.clone()])
        .expect("dump");
    parse_as_config_dump(&json);
    assert_eq!(json["configs"].as_array().map(Vec::len), Some(7));
    assert_eq!(json["configs"][6], extra);
}
