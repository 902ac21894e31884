//! Helpers for the sans-IO ADS protocol tests: responses of either variant, request accessors.

use std::time::{Duration, Instant};

use super::*;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_xds::ads::{AdsState, Incoming, Outgoing};
use mesh_xds::bootstrap::{AdsApi, NodeIdentity};
use mesh_xds::config::ResourceKind;

/// Runs a rule for both ADS variants, as `<rule>::sotw` and `<rule>::delta`.
#[allow(unused_macros)]
macro_rules! both_variants {
    ($($rule:ident => $body:expr;)*) => {
        $(
            mod $rule {
                use super::*;
                #[test]
                fn sotw() {
                    ($body)(mesh_xds::bootstrap::AdsApi::StateOfTheWorld);
                }
                #[test]
                fn delta() {
                    ($body)(mesh_xds::bootstrap::AdsApi::Delta);
                }
            }
        )*
    };
}

pub const WARMING: Duration = Duration::from_secs(15);
pub const LDS: ResourceKind = ResourceKind::Listener;
pub const RDS: ResourceKind = ResourceKind::RouteConfig;
pub const CDS: ResourceKind = ResourceKind::Cluster;
pub const EDS: ResourceKind = ResourceKind::LoadAssignment;

pub fn node() -> NodeIdentity {
    NodeIdentity {
        id: "node-1".to_owned(),
        cluster: "mesh".to_owned(),
        user_agent_name: "mesh-host".to_owned(),
        ..Default::default()
    }
}

pub fn new_state(api: AdsApi) -> AdsState {
    AdsState::new(api, &node(), WARMING)
}

/// A response of `kind` carrying `resources` (name, Any), with `removed` names (delta only).
pub fn response(
    api: AdsApi,
    kind: ResourceKind,
    version: &str,
    nonce: &str,
    resources: Vec<(&str, Any)>,
    removed: &[&str],
) -> Incoming {
    match api {
        AdsApi::StateOfTheWorld => Incoming::Sotw(DiscoveryResponse {
            version_info: version.to_owned(),
            type_url: kind.type_url().to_owned(),
            nonce: nonce.to_owned(),
            resources: resources.into_iter().map(|(_, a)| a).collect(),
            ..Default::default()
        }),
        AdsApi::Delta => Incoming::Delta(DeltaDiscoveryResponse {
            system_version_info: version.to_owned(),
            type_url: kind.type_url().to_owned(),
            nonce: nonce.to_owned(),
            resources: resources
                .into_iter()
                .map(|(name, a)| Resource {
                    name: name.to_owned(),
                    version: format!("{name}-{version}"),
                    resource: Some(a),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

pub fn sotw(request: &Outgoing) -> &DiscoveryRequest {
    match request {
        Outgoing::Sotw(r) => r,
        Outgoing::Delta(r) => panic!("expected a SotW request, got {r:?}"),
    }
}

pub fn delta(request: &Outgoing) -> &DeltaDiscoveryRequest {
    match request {
        Outgoing::Delta(r) => r,
        Outgoing::Sotw(r) => panic!("expected a delta request, got {r:?}"),
    }
}

pub fn type_url(request: &Outgoing) -> &str {
    match request {
        Outgoing::Sotw(r) => &r.type_url,
        Outgoing::Delta(r) => &r.type_url,
    }
}

pub fn error_message(request: &Outgoing) -> Option<&str> {
    match request {
        Outgoing::Sotw(r) => r.error_detail.as_ref().map(|s| s.message.as_str()),
        Outgoing::Delta(r) => r.error_detail.as_ref().map(|s| s.message.as_str()),
    }
}

pub fn has_node(request: &Outgoing) -> bool {
    match request {
        Outgoing::Sotw(r) => r.node.is_some(),
        Outgoing::Delta(r) => r.node.is_some(),
    }
}

/// The resource names a subscription request asks for (SotW: the full list; delta: added).
pub fn subscribed(request: &Outgoing) -> Vec<String> {
    match request {
        Outgoing::Sotw(r) => r.resource_names.clone(),
        Outgoing::Delta(r) => r.resource_names_subscribe.clone(),
    }
}

pub fn listener_any(name: &str, route: &str) -> (&'static str, Any) {
    (leak(name), any(&listener(name, 10000, route)))
}

pub fn route_any(name: &str, cluster: &str) -> (&'static str, Any) {
    (
        leak(name),
        any(&route_config(name, vec![prefix_route("/", cluster)])),
    )
}

pub fn cluster_any(name: &str) -> (&'static str, Any) {
    (leak(name), any(&eds_cluster(name)))
}

pub fn cla_any(name: &str, port: u16) -> (&'static str, Any) {
    (leak(name), any(&assignment(name, &[port])))
}

/// Makes listeners reference `routes`, so that RDS responses for them are accepted.
pub fn subscribe_routes(state: &mut AdsState, api: AdsApi, routes: &[&str]) {
    let listeners = routes
        .iter()
        .map(|r| listener_any(&format!("l-{r}"), r))
        .collect();
    state.handle(
        response(api, LDS, "lds", "lds-nonce", listeners, &[]),
        Instant::now(),
    );
}

/// Test names live for the whole test process; leaking keeps the helpers' signatures simple.
pub fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}
