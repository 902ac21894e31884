//! Translation of route configurations: Envoy defaults, matchers, actions, and errors that
//! name the resource and the field path.

mod common;

use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::route::v3 as rds;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};
use mesh_xds::config::{
    AttemptCount, ClusterSpecifier, HeaderMatch, PathRedirect, RetryOn, RouteAction, RouteConfig,
};

fn forward(route: &mesh_xds::config::Route) -> &mesh_xds::config::ForwardAction {
    match &route.action {
        RouteAction::Forward(f) => f,
        other => panic!("forward expected, got {other:?}"),
    }
}

#[test]
fn route_defaults_follow_envoy() {
    let rc =
        RouteConfig::try_from(route_config("r1", vec![prefix_route("/", "c1")])).expect("valid");
    let route = &rc.virtual_hosts[0].routes[0];
    assert!(route.r#match.case_sensitive);
    let f = forward(route);
    assert_eq!(f.cluster, ClusterSpecifier::Cluster("c1".to_owned()));
    assert_eq!(
        f.timeout,
        Some(Duration::from_secs(15)),
        "Envoy's default route timeout"
    );
    assert_eq!(f.retry_policy, None);
}

#[test]
fn virtual_host_attempt_count_settings_reach_its_forwarding_routes() {
    let plain =
        RouteConfig::try_from(route_config("r1", vec![prefix_route("/", "c1")])).expect("valid");
    assert_eq!(
        forward(&plain.virtual_hosts[0].routes[0]).attempt_count,
        AttemptCount::default()
    );
    let mut rc = route_config("r1", vec![prefix_route("/", "c1")]);
    rc.virtual_hosts[0].include_request_attempt_count = true;
    rc.virtual_hosts[0].include_attempt_count_in_response = true;
    let rc = RouteConfig::try_from(rc).expect("valid");
    assert_eq!(
        forward(&rc.virtual_hosts[0].routes[0]).attempt_count,
        AttemptCount {
            request: true,
            response: true
        }
    );
}

#[test]
fn zero_route_timeout_disables_it() {
    let mut route = prefix_route("/", "c1");
    if let Some(rds::route::Action::Route(a)) = &mut route.action {
        a.timeout = Some(PbDuration {
            seconds: 0,
            nanos: 0,
        });
    }
    let rc = RouteConfig::try_from(route_config("r1", vec![route])).expect("valid");
    assert_eq!(forward(&rc.virtual_hosts[0].routes[0]).timeout, None);
}

#[test]
fn retry_policy_defaults_to_one_retry_and_vhost_policy_applies_to_routes() {
    let mut rc = route_config("r1", vec![prefix_route("/", "c1")]);
    rc.virtual_hosts[0].retry_policy = Some(rds::RetryPolicy {
        retry_on: "5xx,gateway-error,reset,connect-failure,retriable-status-codes".to_owned(),
        retriable_status_codes: vec![409],
        retry_host_predicate: vec![rds::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let rc = RouteConfig::try_from(rc).expect("valid");
    let retry = forward(&rc.virtual_hosts[0].routes[0])
        .retry_policy
        .clone()
        .expect("inherited");
    assert_eq!(retry.num_retries, 1);
    assert!(retry.retry_on.contains(&RetryOn::GatewayError));
    assert!(retry.retry_on.contains(&RetryOn::RetriableStatusCodes));
    assert_eq!(retry.retriable_status_codes, vec![409]);
    assert!(retry.avoid_previous_hosts);
}

#[test]
fn unknown_retry_condition_is_named() {
    let mut route = prefix_route("/", "c1");
    if let Some(rds::route::Action::Route(a)) = &mut route.action {
        a.retry_policy = Some(rds::RetryPolicy {
            retry_on: "5xx,sometimes".to_owned(),
            ..Default::default()
        });
    }
    let err =
        RouteConfig::try_from(route_config("r1", vec![route])).expect_err("unknown condition");
    assert_eq!(
        err.to_string(),
        "route_config \"r1\": virtual_hosts[0].routes[0].route.retry_policy.retry_on: \"sometimes\" is not supported"
    );
}

#[test]
fn connect_matcher_is_rejected_with_its_field_path() {
    let mut routes = vec![
        prefix_route("/a", "c1"),
        prefix_route("/b", "c1"),
        prefix_route("/", "c1"),
    ];
    if let Some(m) = &mut routes[2].r#match {
        m.path_specifier = Some(rds::route_match::PathSpecifier::ConnectMatcher(
            Default::default(),
        ));
    }
    let err =
        RouteConfig::try_from(route_config("r1", routes)).expect_err("CONNECT is not supported");
    assert_eq!(
        err.to_string(),
        "route_config \"r1\": virtual_hosts[0].routes[2].match.connect_matcher is not supported"
    );
}

#[test]
fn unsupported_field_left_set_is_rejected_by_name() {
    let mut route = prefix_route("/", "c1");
    if let Some(rds::route::Action::Route(a)) = &mut route.action {
        a.request_mirror_policies = vec![Default::default()];
    }
    let err = RouteConfig::try_from(route_config("r1", vec![route]))
        .expect_err("mirroring is not supported");
    assert_eq!(
        err.to_string(),
        "route_config \"r1\": virtual_hosts[0].routes[0].route.request_mirror_policies is not supported"
    );
}

#[test]
fn bad_regex_names_the_resource_and_field() {
    let err = RouteConfig::try_from(route_config("r1", vec![regex_route("a(b", "c1")]))
        .expect_err("bad regex");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "route_config \"r1\": virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex"
        ),
        "{text}"
    );
}

#[test]
fn header_and_query_matchers_translate_with_envoy_semantics() {
    let mut route = prefix_route("/", "c1");
    if let Some(m) = &mut route.r#match {
        m.headers = vec![
            rds::HeaderMatcher {
                name: "X-Tenant".to_owned(),
                header_match_specifier: Some(
                    rds::header_matcher::HeaderMatchSpecifier::StringMatch(
                        matcher::StringMatcher {
                            match_pattern: Some(matcher::string_matcher::MatchPattern::Prefix(
                                "ACME".to_owned(),
                            )),
                            ignore_case: true,
                        },
                    ),
                ),
                invert_match: true,
                ..Default::default()
            },
            rds::HeaderMatcher {
                name: "x-debug".to_owned(),
                ..Default::default()
            },
        ];
        m.query_parameters = vec![rds::QueryParameterMatcher {
            name: "v".to_owned(),
            query_parameter_match_specifier: Some(
                rds::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            ),
        }];
        m.case_sensitive = Some(BoolValue { value: false });
        m.grpc = Some(Default::default());
    }
    let rc = RouteConfig::try_from(route_config("r1", vec![route])).expect("valid");
    let m = &rc.virtual_hosts[0].routes[0].r#match;
    assert!(!m.case_sensitive);
    assert!(m.grpc);
    let tenant = &m.headers[0];
    assert_eq!(tenant.name, "x-tenant", "header names are lower-cased");
    assert!(tenant.invert_match);
    assert!(
        !tenant.matches(Some("acme-corp")),
        "ignore_case prefix, inverted"
    );
    assert!(tenant.matches(Some("other")));
    assert_eq!(
        m.headers[1].matcher,
        HeaderMatch::Present(true),
        "no specifier means present"
    );
    assert!(m.query_parameters[0].matches(Some("")));
}

#[test]
fn weighted_clusters_total_must_match_the_weights() {
    let weighted = |total: Option<u32>| {
        let mut route = prefix_route("/", "c1");
        if let Some(rds::route::Action::Route(a)) = &mut route.action {
            #[allow(deprecated)]
            let w = rds::WeightedCluster {
                clusters: vec![
                    rds::weighted_cluster::ClusterWeight {
                        name: "a".to_owned(),
                        weight: Some(UInt32Value { value: 30 }),
                        ..Default::default()
                    },
                    rds::weighted_cluster::ClusterWeight {
                        name: "b".to_owned(),
                        weight: Some(UInt32Value { value: 70 }),
                        ..Default::default()
                    },
                ],
                total_weight: total.map(|value| UInt32Value { value }),
                ..Default::default()
            };
            a.cluster_specifier = Some(rds::route_action::ClusterSpecifier::WeightedClusters(w));
        }
        RouteConfig::try_from(route_config("r1", vec![route]))
    };
    let rc = weighted(None).expect("valid");
    let ClusterSpecifier::WeightedClusters {
        total_weight,
        clusters,
    } = &forward(&rc.virtual_hosts[0].routes[0]).cluster
    else {
        panic!("weighted expected");
    };
    assert_eq!(*total_weight, 100);
    assert_eq!(clusters[1].weight, 70);
    let err = weighted(Some(99)).expect_err("mismatched total");
    assert!(
        err.to_string()
            .ends_with("route.weighted_clusters.total_weight: is 99 but the weights add up to 100"),
        "{err}"
    );
}

#[test]
fn rewrites_redirects_and_direct_responses_translate() {
    let mut rewrite = prefix_route("/old", "c1");
    if let Some(rds::route::Action::Route(a)) = &mut rewrite.action {
        a.prefix_rewrite = "/new".to_owned();
        a.regex_rewrite = Some(matcher::RegexMatchAndSubstitute {
            pattern: Some(matcher::RegexMatcher {
                regex: "^/v(\\d+)/".to_owned(),
                ..Default::default()
            }),
            substitution: "/version/\\1/".to_owned(),
        });
        a.host_rewrite_specifier = Some(
            rds::route_action::HostRewriteSpecifier::HostRewriteLiteral("svc.local".to_owned()),
        );
    }
    let redirect = rds::Route {
        r#match: rewrite.r#match.clone(),
        action: Some(rds::route::Action::Redirect(rds::RedirectAction {
            scheme_rewrite_specifier: Some(
                rds::redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true),
            ),
            path_rewrite_specifier: Some(
                rds::redirect_action::PathRewriteSpecifier::PrefixRewrite("/p".to_owned()),
            ),
            response_code: rds::redirect_action::RedirectResponseCode::PermanentRedirect as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    let direct = rds::Route {
        r#match: rewrite.r#match.clone(),
        action: Some(rds::route::Action::DirectResponse(
            rds::DirectResponseAction {
                status: 503,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let rc =
        RouteConfig::try_from(route_config("r1", vec![rewrite, redirect, direct])).expect("valid");
    let routes = &rc.virtual_hosts[0].routes;
    let f = forward(&routes[0]);
    assert_eq!(f.prefix_rewrite.as_deref(), Some("/new"));
    assert_eq!(f.host_rewrite_literal.as_deref(), Some("svc.local"));
    let rewrite = f.regex_rewrite.as_ref().expect("regex rewrite");
    assert_eq!(
        rewrite
            .pattern
            .replace_all("/v2/items", rewrite.substitution.as_str()),
        "/version/2/items"
    );
    let RouteAction::Redirect(r) = &routes[1].action else {
        panic!("redirect expected");
    };
    assert_eq!((r.scheme.as_deref(), r.response_code), (Some("https"), 308));
    assert_eq!(r.path, Some(PathRedirect::Prefix("/p".to_owned())));
    assert_eq!(
        routes[2].action,
        RouteAction::DirectResponse {
            status: 503,
            body: None
        }
    );
}

#[test]
fn ignore_port_in_host_matching_is_carried_to_the_route_table() {
    let mut config = route_config("r1", vec![prefix_route("/", "c")]);
    config.ignore_port_in_host_matching = true;
    let translated = mesh_xds::config::RouteConfig::try_from(config).expect("honoured");
    assert!(translated.ignore_port_in_host_matching);
}
