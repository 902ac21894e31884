//! ADS protocol rules, driven message by message through the sans-IO state machine, for both
//! state-of-the-world and delta ADS. Each test is named after the rule it checks.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::ads::*;
use common::*;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use mesh_xds::ads::{Incoming, Outgoing};
use mesh_xds::bootstrap::AdsApi;

both_variants! {
    initial_requests_subscribe_to_cds_and_lds_as_wildcards => |api| {
        let mut state = new_state(api);
        let requests = state.start_stream();
        let types: Vec<&str> = requests.iter().map(type_url).collect();
        assert_eq!(types, vec![CDS.type_url(), LDS.type_url()]);
        for r in &requests {
            assert!(subscribed(r).is_empty(), "wildcard subscriptions name no resource: {r:?}");
        }
    };

    node_identity_is_sent_on_the_first_request_of_each_stream => |api| {
        let mut state = new_state(api);
        for _stream in 0..2 {
            let requests = state.start_stream();
            assert!(has_node(&requests[0]));
            assert!(!has_node(&requests[1]), "only the first request of a stream carries the node");
            let node = match &requests[0] {
                Outgoing::Sotw(r) => r.node.clone(),
                Outgoing::Delta(r) => r.node.clone(),
            };
            assert_eq!(node.map(|n| n.id), Some("node-1".to_owned()));
        }
    };

    ack_echoes_the_response_nonce => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let step = state.handle(response(api, CDS, "v1", "n1", vec![], &[]), Instant::now());
        assert_eq!(step.requests.len(), 1);
        let ack = &step.requests[0];
        assert_eq!(type_url(ack), CDS.type_url());
        assert_eq!(error_message(ack), None);
        match ack {
            Outgoing::Sotw(r) => {
                assert_eq!(r.response_nonce, "n1");
                assert_eq!(r.version_info, "v1");
            }
            Outgoing::Delta(r) => assert_eq!(r.response_nonce, "n1"),
        }
    };

    nack_names_each_rejected_resource_with_invalid_argument => |api| {
        let mut state = new_state(api);
        state.start_stream();
        subscribe_routes(&mut state, api, &["r-bad"]);
        let bad = route_config("r-bad", vec![regex_route("/v[0-9", "c1")]);
        let step = state.handle(response(api, RDS, "v1", "n1", vec![("r-bad", any(&bad))], &[]), Instant::now());
        let nack = &step.requests[0];
        let status = match nack {
            Outgoing::Sotw(r) => r.error_detail.clone(),
            Outgoing::Delta(r) => r.error_detail.clone(),
        }
        .expect("a NACK carries error_detail");
        assert_eq!(status.code, 3, "INVALID_ARGUMENT");
        assert!(status.message.contains("route_config \"r-bad\""), "{}", status.message);
        assert!(status.message.contains("virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex"), "{}", status.message);
    };

    nack_keeps_the_previous_config_in_force => |api| {
        let mut state = new_state(api);
        state.start_stream();
        subscribe_routes(&mut state, api, &["r1"]);
        state.handle(response(api, RDS, "v1", "n1", vec![route_any("r1", "c1")], &[]), Instant::now());
        let bad = route_config("r1", vec![regex_route("(", "c2")]);
        let step = state.handle(response(api, RDS, "v2", "n2", vec![("r1", any(&bad))], &[]), Instant::now());
        assert!(error_message(&step.requests[0]).is_some());
        assert!(!step.changed);
        let routes = &state.resources().route_configs["r1"];
        assert_eq!(routes.virtual_hosts[0].routes.len(), 1);
        assert_eq!(state.resources().resource_versions.get(&RDS).map(String::as_str), Some("v1"));
    };

    nack_applies_the_other_resources_of_the_response => |api| {
        let mut state = new_state(api);
        state.start_stream();
        subscribe_routes(&mut state, api, &["r-bad", "r-good"]);
        let bad = route_config("r-bad", vec![regex_route("(", "c1")]);
        let step = state.handle(
            response(api, RDS, "v1", "n1", vec![("r-bad", any(&bad)), route_any("r-good", "c1")], &[]),
            Instant::now(),
        );
        let message = error_message(&step.requests[0]).expect("NACK");
        assert!(message.contains("r-bad") && !message.contains("r-good"), "{message}");
        assert!(state.resources().route_configs.contains_key("r-good"));
    };

    unknown_type_url_is_nacked_not_acked => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let incoming = match api {
            AdsApi::StateOfTheWorld => Incoming::Sotw(DiscoveryResponse {
                type_url: "type.googleapis.com/envoy.service.runtime.v3.Runtime".into(),
                nonce: "n1".into(),
                version_info: "v1".into(),
                ..Default::default()
            }),
            AdsApi::Delta => Incoming::Delta(DeltaDiscoveryResponse {
                type_url: "type.googleapis.com/envoy.service.runtime.v3.Runtime".into(),
                nonce: "n1".into(),
                ..Default::default()
            }),
        };
        let step = state.handle(incoming, Instant::now());
        assert_eq!(step.requests.len(), 1);
        let message = error_message(&step.requests[0]).expect("unknown types are NACKed");
        assert!(message.contains("unsupported resource type"), "{message}");
    };

    rds_subscription_follows_the_listeners => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let step = state.handle(response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]), Instant::now());
        assert_eq!(step.requests.len(), 2, "ACK, then the RDS subscription: {:?}", step.requests);
        assert_eq!(type_url(&step.requests[1]), RDS.type_url());
        assert_eq!(subscribed(&step.requests[1]), vec!["r1".to_owned()]);
        // The listener goes away: RDS is unsubscribed.
        let removal = match api {
            AdsApi::StateOfTheWorld => response(api, LDS, "v2", "n2", vec![], &[]),
            AdsApi::Delta => response(api, LDS, "v2", "n2", vec![], &["l1"]),
        };
        let step = state.handle(removal, Instant::now());
        assert_eq!(step.requests.len(), 2);
        match &step.requests[1] {
            Outgoing::Sotw(r) => assert!(r.resource_names.is_empty()),
            Outgoing::Delta(r) => assert_eq!(r.resource_names_unsubscribe, vec!["r1".to_owned()]),
        }
    };

    eds_subscription_follows_the_clusters => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let step = state.handle(response(api, CDS, "v1", "n1", vec![cluster_any("c1"), cluster_any("c2")], &[]), Instant::now());
        assert_eq!(type_url(&step.requests[1]), EDS.type_url());
        assert_eq!(subscribed(&step.requests[1]), vec!["c1".to_owned(), "c2".to_owned()]);
        let update = match api {
            AdsApi::StateOfTheWorld => response(api, CDS, "v2", "n2", vec![cluster_any("c2")], &[]),
            AdsApi::Delta => response(api, CDS, "v2", "n2", vec![], &["c1"]),
        };
        let step = state.handle(update, Instant::now());
        match &step.requests[1] {
            Outgoing::Sotw(r) => assert_eq!(r.resource_names, vec!["c2".to_owned()]),
            Outgoing::Delta(r) => assert_eq!(r.resource_names_unsubscribe, vec!["c1".to_owned()]),
        }
    };

    subscription_changes_are_never_bundled_with_an_ack_or_nack => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let bad = listener("l-bad", 10001, "r2");
        let mut bad = bad;
        bad.address = None;
        let step = state.handle(
            response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1"), ("l-bad", any(&bad))], &[]),
            Instant::now(),
        );
        assert_eq!(step.requests.len(), 2);
        let (nack, subscription) = (&step.requests[0], &step.requests[1]);
        assert_eq!(type_url(nack), LDS.type_url());
        assert!(error_message(nack).is_some());
        assert!(error_message(subscription).is_none());
        match (nack, subscription) {
            (Outgoing::Sotw(n), Outgoing::Sotw(s)) => {
                assert!(n.resource_names.is_empty());
                assert_eq!(s.type_url, RDS.type_url());
            }
            (Outgoing::Delta(n), Outgoing::Delta(s)) => {
                assert!(n.resource_names_subscribe.is_empty() && n.resource_names_unsubscribe.is_empty());
                assert!(s.response_nonce.is_empty(), "a subscription change acknowledges nothing");
            }
            other => panic!("mixed variants: {other:?}"),
        }
    };

    listener_warms_until_its_route_config_arrives => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let now = Instant::now();
        let step = state.handle(response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]), now);
        assert!(!step.changed);
        assert!(state.resources().listeners.is_empty(), "not published while warming");
        let step = state.handle(response(api, RDS, "v1", "n2", vec![route_any("r1", "c1")], &[]), now);
        assert!(step.changed);
        assert!(state.resources().listeners.contains_key("l1"));
    };

    cluster_warms_until_its_load_assignment_arrives => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let now = Instant::now();
        state.handle(response(api, CDS, "v1", "n1", vec![cluster_any("c1")], &[]), now);
        assert!(state.resources().clusters.is_empty());
        state.handle(response(api, EDS, "v1", "n2", vec![cla_any("c1", 8080)], &[]), now);
        assert!(state.resources().clusters.contains_key("c1"));
    };

    warming_timeout_publishes_without_the_dependency => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let now = Instant::now();
        state.handle(response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]), now);
        assert_eq!(state.next_deadline(), Some(now + WARMING));
        assert!(!state.on_timer(now + WARMING - Duration::from_millis(1)));
        assert!(state.on_timer(now + WARMING));
        assert!(state.resources().listeners.contains_key("l1"));
        assert_eq!(state.next_deadline(), None);
    };

    updated_listener_keeps_serving_the_old_version_while_warming => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let now = Instant::now();
        state.handle(response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]), now);
        state.handle(response(api, RDS, "v1", "n2", vec![route_any("r1", "c1")], &[]), now);
        state.handle(response(api, LDS, "v2", "n3", vec![listener_any("l1", "r2")], &[]), now);
        let serving = state.resources().listeners["l1"].clone();
        assert_eq!(serving.rds_names().collect::<Vec<_>>(), vec!["r1"]);
        state.handle(response(api, RDS, "v2", "n4", vec![route_any("r2", "c1")], &[]), now);
        assert_eq!(state.resources().listeners["l1"].rds_names().collect::<Vec<_>>(), vec!["r2"]);
    };

    unsubscribed_rds_and_eds_resources_are_ignored => |api| {
        let mut state = new_state(api);
        state.start_stream();
        subscribe_routes(&mut state, api, &["r1"]);
        let now = Instant::now();
        let step = state.handle(response(api, RDS, "v1", "n1", vec![route_any("r1", "c1"), route_any("r-extra", "c1")], &[]), now);
        assert_eq!(error_message(&step.requests[0]), None, "extra resources are not an error");
        assert!(state.resources().route_configs.contains_key("r1"));
        assert!(!state.resources().route_configs.contains_key("r-extra"));
        state.handle(response(api, EDS, "v1", "n2", vec![cla_any("c-unknown", 1)], &[]), now);
        assert!(state.resources().load_assignments.is_empty());
    };

    reconnect_resubscribes_and_keeps_the_last_good_config => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let now = Instant::now();
        state.handle(response(api, LDS, "v1", "n1", vec![listener_any("l1", "r1")], &[]), now);
        state.handle(response(api, RDS, "v1", "n2", vec![route_any("r1", "c1")], &[]), now);
        state.handle(response(api, CDS, "v1", "n3", vec![cluster_any("c1")], &[]), now);
        state.handle(response(api, EDS, "v1", "n4", vec![cla_any("c1", 8080)], &[]), now);
        let before = state.resources();
        let requests = state.start_stream();
        let types: Vec<&str> = requests.iter().map(type_url).collect();
        assert_eq!(types, vec![CDS.type_url(), EDS.type_url(), LDS.type_url(), RDS.type_url()]);
        assert_eq!(subscribed(&requests[1]), vec!["c1".to_owned()]);
        assert_eq!(subscribed(&requests[3]), vec!["r1".to_owned()]);
        assert_eq!(state.resources(), before, "nothing is dropped on reconnect");
    };
}
