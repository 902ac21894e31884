//! ADS protocol rules that apply to one variant only (SotW or delta), or to static resources.

mod common;

use std::time::Instant;

use common::ads::*;
use common::*;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, Resource};
use mesh_xds::ads::Incoming;
use mesh_xds::bootstrap::AdsApi;

#[test]
fn static_listener_and_cluster_references_are_subscribed() {
    let listener =
        mesh_xds::config::Listener::try_from(listener("static-l", 8080, "static-routes"))
            .expect("valid");
    let cluster = mesh_xds::config::Cluster::try_from(eds_cluster("static-c")).expect("valid");
    let mut base = mesh_xds::config::MeshConfig::default();
    base.listeners
        .insert(listener.name.clone(), listener.into());
    base.clusters.insert(cluster.name.clone(), cluster.into());
    let mut state = new_state(AdsApi::StateOfTheWorld);
    state.add_static_references(&base);
    let requests = state.start_stream();
    let types: Vec<&str> = requests.iter().map(type_url).collect();
    assert_eq!(
        types,
        vec![
            CDS.type_url(),
            EDS.type_url(),
            LDS.type_url(),
            RDS.type_url()
        ]
    );
    assert_eq!(subscribed(&requests[1]), vec!["static-c".to_owned()]);
    assert_eq!(subscribed(&requests[3]), vec!["static-routes".to_owned()]);
}

#[test]
fn sotw_ack_carries_the_accepted_version_and_nack_the_previous_one() {
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    let ack = state.handle(
        response(api, CDS, "v1", "n1", vec![cluster_any("c1")], &[]),
        Instant::now(),
    );
    assert_eq!(sotw(&ack.requests[0]).version_info, "v1");
    let mut bad = eds_cluster("c1");
    bad.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: -1,
        nanos: 0,
    });
    let nack = state.handle(
        response(api, CDS, "v2", "n2", vec![("c1", any(&bad))], &[]),
        Instant::now(),
    );
    let nack = sotw(&nack.requests[0]);
    assert_eq!(
        nack.version_info, "v1",
        "a NACK carries the previous version"
    );
    assert_eq!(
        nack.response_nonce, "n2",
        "and the nonce of the rejected response"
    );
    assert!(
        nack.error_detail
            .as_ref()
            .is_some_and(|s| s.message.contains("connect_timeout: negative duration"))
    );
}

#[test]
fn sotw_lds_and_cds_absence_removes_the_resource() {
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    let now = Instant::now();
    state.handle(
        response(
            api,
            CDS,
            "v1",
            "n1",
            vec![cluster_any("c1"), cluster_any("c2")],
            &[],
        ),
        now,
    );
    state.handle(
        response(
            api,
            EDS,
            "v1",
            "e1",
            vec![cla_any("c1", 1), cla_any("c2", 2)],
            &[],
        ),
        now,
    );
    assert_eq!(state.resources().clusters.len(), 2);
    let step = state.handle(
        response(api, CDS, "v2", "n2", vec![cluster_any("c2")], &[]),
        now,
    );
    assert!(step.changed);
    assert_eq!(
        state.resources().clusters.keys().collect::<Vec<_>>(),
        vec!["c2"]
    );
}

#[test]
fn sotw_rds_and_eds_absence_keeps_the_resource() {
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    let now = Instant::now();
    state.handle(
        response(
            api,
            LDS,
            "v1",
            "n1",
            vec![listener_any("l1", "r1"), listener_any("l2", "r2")],
            &[],
        ),
        now,
    );
    state.handle(
        response(
            api,
            RDS,
            "v1",
            "n2",
            vec![route_any("r1", "c1"), route_any("r2", "c1")],
            &[],
        ),
        now,
    );
    let step = state.handle(
        response(api, RDS, "v2", "n3", vec![route_any("r2", "c2")], &[]),
        now,
    );
    assert!(step.changed);
    let routes = state.resources().route_configs;
    assert!(
        routes.contains_key("r1"),
        "absence from an RDS response does not remove"
    );
    assert!(routes.contains_key("r2"));
}

#[test]
fn sotw_reconnect_sends_the_last_accepted_version() {
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    state.handle(response(api, CDS, "v7", "n1", vec![], &[]), Instant::now());
    let requests = state.start_stream();
    let cds = sotw(&requests[0]);
    assert_eq!(cds.version_info, "v7");
    assert!(
        cds.response_nonce.is_empty(),
        "nonces do not survive a stream"
    );
}

#[test]
fn delta_removed_resources_are_removed() {
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.start_stream();
    let now = Instant::now();
    state.handle(
        response(
            api,
            CDS,
            "v1",
            "n1",
            vec![cluster_any("c1"), cluster_any("c2")],
            &[],
        ),
        now,
    );
    state.handle(
        response(api, EDS, "v1", "e1", vec![cla_any("c1", 1)], &[]),
        now,
    );
    // A delta response that omits c1 keeps it...
    state.handle(
        response(api, CDS, "v2", "n2", vec![cluster_any("c3")], &[]),
        now,
    );
    assert!(state.resources().clusters.contains_key("c1"));
    // ...and removed_resources removes it.
    let step = state.handle(response(api, CDS, "v3", "n3", vec![], &["c1"]), now);
    assert!(step.changed);
    assert!(!state.resources().clusters.contains_key("c1"));
}

#[test]
fn delta_reconnect_sends_initial_resource_versions() {
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.start_stream();
    let now = Instant::now();
    state.handle(
        response(api, CDS, "v1", "n1", vec![cluster_any("c1")], &[]),
        now,
    );
    state.handle(
        response(api, EDS, "v1", "n2", vec![cla_any("c1", 1)], &[]),
        now,
    );
    let requests = state.start_stream();
    let cds = delta(&requests[0]);
    assert_eq!(
        cds.initial_resource_versions.get("c1").map(String::as_str),
        Some("c1-v1")
    );
    let eds = delta(&requests[1]);
    assert_eq!(eds.type_url, EDS.type_url());
    assert_eq!(eds.resource_names_subscribe, vec!["c1".to_owned()]);
    assert_eq!(
        eds.initial_resource_versions.get("c1").map(String::as_str),
        Some("c1-v1")
    );
}

#[test]
fn delta_resource_without_body_is_removed() {
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.start_stream();
    let now = Instant::now();
    state.handle(
        response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]),
        now,
    );
    state.handle(
        response(api, RDS, "v1", "n2", vec![route_any("r1", "c1")], &[]),
        now,
    );
    let gone = Incoming::Delta(DeltaDiscoveryResponse {
        type_url: RDS.type_url().to_owned(),
        nonce: "n3".to_owned(),
        resources: vec![Resource {
            name: "r1".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    });
    state.handle(gone, now);
    assert!(!state.resources().route_configs.contains_key("r1"));
}
