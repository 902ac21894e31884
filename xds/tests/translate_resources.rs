//! Translation of listeners, clusters and endpoints: Envoy defaults, HCM, RBAC, TLS, and
//! errors that name the resource and the field path.

mod common;

use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as eds;
use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use mesh_xds::config::{
    Cluster, HealthStatus, LbPolicy, Listener, LoadAssignment, RetryBudget, StringMatcher,
    UpstreamProtocol,
};

#[test]
fn cluster_defaults_follow_envoy() {
    let cluster = Cluster::try_from(eds_cluster("c1")).expect("valid");
    assert_eq!(
        cluster.eds_service_name(),
        Some("c1"),
        "service_name defaults to the cluster name"
    );
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(cluster.protocol, UpstreamProtocol::Http1);
    let cb = cluster.circuit_breakers;
    assert_eq!(
        (
            cb.max_connections,
            cb.max_pending_requests,
            cb.max_requests,
            cb.max_retries
        ),
        (1024, 1024, 1024, 3)
    );
    let mut unset = static_cluster("s1", 80);
    unset.connect_timeout = None;
    assert_eq!(
        Cluster::try_from(unset).expect("valid").connect_timeout,
        Duration::from_secs(5)
    );
}

#[test]
fn retry_budget_takes_envoy_defaults_and_refuses_a_share_past_100_percent() {
    use cds::circuit_breakers::Thresholds;
    use cds::circuit_breakers::thresholds::RetryBudget as PbRetryBudget;
    use envoy_types::pb::envoy::r#type::v3::Percent;
    let with = |budget: PbRetryBudget| {
        let mut c = eds_cluster("c1");
        c.circuit_breakers = Some(cds::CircuitBreakers {
            thresholds: vec![Thresholds {
                retry_budget: Some(budget),
                ..Default::default()
            }],
            ..Default::default()
        });
        Cluster::try_from(c)
    };
    let defaults = with(PbRetryBudget::default()).expect("valid");
    assert_eq!(
        defaults.circuit_breakers.retry_budget,
        Some(RetryBudget {
            budget_percent: 20.0,
            min_retry_concurrency: 3
        })
    );
    let set = with(PbRetryBudget {
        budget_percent: Some(Percent { value: 50.0 }),
        min_retry_concurrency: Some(UInt32Value { value: 0 }),
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(
        set.circuit_breakers.retry_budget,
        Some(RetryBudget {
            budget_percent: 50.0,
            min_retry_concurrency: 0
        })
    );
    let err = with(PbRetryBudget {
        budget_percent: Some(Percent { value: 150.0 }),
        ..Default::default()
    })
    .expect_err("150 %");
    assert_eq!(
        err.to_string(),
        "cluster \"c1\": circuit_breakers.thresholds[0].retry_budget.budget_percent.value: \
         150 is not a percentage between 0 and 100"
    );
    assert_eq!(
        Cluster::try_from(eds_cluster("c1"))
            .expect("valid")
            .circuit_breakers
            .retry_budget,
        None,
        "no budget unless configured: max_retries applies"
    );
}

#[test]
fn cluster_http2_comes_from_typed_protocol_options() {
    let mut c = eds_cluster("c1");
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
                },
            ),
        ),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        any(&options),
    );
    assert_eq!(
        Cluster::try_from(c).expect("valid").protocol,
        UpstreamProtocol::Http2
    );
}

#[test]
fn cluster_provided_lb_policy_and_a_second_health_check_are_named() {
    let mut c = eds_cluster("c1");
    c.lb_policy = cds::cluster::LbPolicy::ClusterProvided as i32;
    assert_eq!(
        Cluster::try_from(c)
            .expect_err("cluster provided")
            .to_string(),
        "cluster \"c1\": lb_policy: CLUSTER_PROVIDED is not supported"
    );
    let mut c = eds_cluster("c1");
    c.health_checks = vec![Default::default(), Default::default()];
    assert_eq!(
        Cluster::try_from(c)
            .expect_err("two health checks")
            .to_string(),
        "cluster \"c1\": health_checks[1]: only one health check per cluster is supported"
    );
}

#[test]
fn cluster_metadata_is_kept_as_json() {
    let mut c = eds_cluster("c1");
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "serve".to_owned(),
        envoy_types::pb::google::protobuf::Value {
            kind: Some(envoy_types::pb::google::protobuf::value::Kind::BoolValue(
                true,
            )),
        },
    );
    c.metadata = Some(core::Metadata {
        filter_metadata: [(
            "mesh-host.grpc".to_owned(),
            envoy_types::pb::google::protobuf::Struct { fields },
        )]
        .into(),
        ..Default::default()
    });
    let cluster = Cluster::try_from(c).expect("valid");
    assert_eq!(
        cluster.metadata["mesh-host.grpc"],
        serde_json::json!({"serve": true})
    );
}

#[test]
fn endpoint_weight_defaults_to_one_and_health_is_kept() {
    let mut cla = assignment("c1", &[80, 81]);
    cla.endpoints[0].lb_endpoints[1].health_status = core::HealthStatus::Draining as i32;
    cla.endpoints[0].priority = 1;
    let la = LoadAssignment::try_from(cla).expect("valid");
    let endpoints = &la.endpoints[0];
    assert_eq!(endpoints.priority, 1);
    assert_eq!(endpoints.endpoints[0].weight, 1);
    assert_eq!(endpoints.endpoints[1].health, HealthStatus::Draining);
    assert!(!endpoints.endpoints[1].health.is_routable());
}

#[test]
fn endpoint_without_port_is_named() {
    let mut cla = assignment("c1", &[80]);
    if let Some(eds::lb_endpoint::HostIdentifier::Endpoint(ep)) =
        &mut cla.endpoints[0].lb_endpoints[0].host_identifier
        && let Some(core::address::Address::SocketAddress(s)) =
            ep.address.as_mut().and_then(|a| a.address.as_mut())
    {
        s.port_specifier = None;
    }
    let err = LoadAssignment::try_from(cla).expect_err("no port");
    assert_eq!(
        err.to_string(),
        "load_assignment \"c1\": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value is missing"
    );
}

#[test]
fn listener_translates_hcm_settings() {
    let mut manager = hcm_rds("r1");
    manager.codec_type = hcm::http_connection_manager::CodecType::Http2 as i32;
    manager.request_timeout = Some(PbDuration {
        seconds: 10,
        nanos: 0,
    });
    manager.xff_num_trusted_hops = 2;
    manager.server_name = "mesh-host".to_owned();
    let mut l = listener_with("l1", 8080, &manager);
    l.traffic_direction = core::TrafficDirection::Outbound as i32;
    l.bind_to_port = Some(BoolValue { value: false });
    let listener = Listener::try_from(l).expect("valid");
    assert_eq!(listener.address.to_string(), "127.0.0.1:8080");
    assert_eq!(listener.bind_to_port, Some(false));
    assert_eq!(listener.rds_names().collect::<Vec<_>>(), vec!["r1"]);
    let http = &listener.filter_chains[0].http;
    assert_eq!(http.codec, mesh_xds::config::CodecType::Http2);
    assert_eq!(http.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(
        http.stream_idle_timeout,
        Some(Duration::from_secs(300)),
        "Envoy's default"
    );
    assert_eq!(http.max_request_headers_kb, 60);
    assert_eq!(http.xff_num_trusted_hops, 2);
    assert_eq!(http.server_name.as_deref(), Some("mesh-host"));
    assert!(!http.skip_xff_append);
    assert_eq!(
        http.server_header_transformation,
        mesh_xds::config::ServerHeaderTransformation::Overwrite,
        "Envoy's default"
    );
}

#[test]
fn listener_translates_server_header_transformation_and_skip_xff_append() {
    let mut manager = hcm_rds("r1");
    manager.server_header_transformation =
        hcm::http_connection_manager::ServerHeaderTransformation::PassThrough as i32;
    manager.skip_xff_append = true;
    let listener = Listener::try_from(listener_with("l1", 8080, &manager)).expect("valid");
    let http = &listener.filter_chains[0].http;
    assert_eq!(
        http.server_header_transformation,
        mesh_xds::config::ServerHeaderTransformation::PassThrough
    );
    assert!(http.skip_xff_append);
}

#[test]
fn listener_translates_the_routers_suppress_envoy_headers() {
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use prost::Message;
    let mut manager = hcm_rds("r1");
    let listener = Listener::try_from(listener_with("l1", 8080, &manager)).expect("valid");
    assert!(!listener.filter_chains[0].http.suppress_envoy_headers);
    let router = Router {
        suppress_envoy_headers: true,
        ..Default::default()
    };
    manager.http_filters[0].config_type = Some(hcm::http_filter::ConfigType::TypedConfig(Any {
        type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router".into(),
        value: router.encode_to_vec(),
    }));
    let listener = Listener::try_from(listener_with("l1", 8080, &manager)).expect("valid");
    assert!(listener.filter_chains[0].http.suppress_envoy_headers);
}

#[test]
fn filter_chains_with_the_same_server_names_are_rejected_as_envoy_does() {
    let manager = hcm_rds("r1");
    let mut l = listener_with("l1", 8080, &manager);
    let chain = l.filter_chains[0].clone();
    let with_names = |names: &[&str]| lds::FilterChain {
        filter_chain_match: Some(lds::FilterChainMatch {
            server_names: names.iter().map(|name| (*name).to_owned()).collect(),
            ..Default::default()
        }),
        ..chain.clone()
    };
    l.filter_chains = vec![with_names(&["a.test"]), with_names(&["b.test", "A.test"])];
    let error = Listener::try_from(l.clone()).expect_err("same server name twice");
    assert_eq!(
        error.to_string(),
        "listener \"l1\": filter_chains[1].filter_chain_match: multiple filter chains with the same matching rules: filter_chains[0] also matches server name a.test"
    );

    l.filter_chains = vec![chain.clone(), chain.clone()];
    let error = Listener::try_from(l.clone()).expect_err("two catch-all chains");
    assert!(
        error.to_string().contains("also matches no server_names"),
        "{error}"
    );

    l.filter_chains = vec![with_names(&["a.test"]), with_names(&["*.a.test"]), chain];
    let listener = Listener::try_from(l).expect("distinct names and one catch-all are valid");
    assert_eq!(listener.filter_chains.len(), 3);
}

#[test]
fn hcm_must_end_with_the_router() {
    let mut manager = hcm_rds("r1");
    manager.http_filters.clear();
    let err = Listener::try_from(listener_with("l1", 8080, &manager)).expect_err("no router");
    assert!(
        err.to_string()
            .contains("envoy.filters.http.router must be the last HTTP filter"),
        "{err}"
    );
}

#[test]
fn unknown_http_filter_is_rejected_unless_optional_or_a_no_op() {
    let filter = |url: &str, optional: bool| hcm::HttpFilter {
        name: url.rsplit('.').next().unwrap_or_default().to_owned(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(Any {
            type_url: url.to_owned(),
            value: Vec::new(),
        })),
        is_optional: optional,
        ..Default::default()
    };
    let with = |f: hcm::HttpFilter| {
        let mut manager = hcm_rds("r1");
        manager.http_filters.insert(0, f);
        Listener::try_from(listener_with("l1", 8080, &manager))
    };
    let lua = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua";
    let err = with(filter(lua, false)).expect_err("lua changes behaviour");
    assert_eq!(
        err.to_string(),
        format!(
            "listener \"l1\": filter_chains[0].filters[0].typed_config.http_filters[0]: HTTP filter {lua} is not supported"
        )
    );
    assert!(
        with(filter(lua, true)).is_ok(),
        "optional filters may be skipped"
    );
    assert!(
        with(filter(
            "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
            false
        ))
        .is_ok()
    );
}

#[test]
fn rbac_filter_translates_permissions_and_principals() {
    let policy = rbac::Policy {
        permissions: vec![rbac::Permission {
            rule: Some(rbac::permission::Rule::AndRules(rbac::permission::Set {
                rules: vec![
                    rbac::Permission {
                        rule: Some(rbac::permission::Rule::DestinationPort(8080)),
                    },
                    rbac::Permission {
                        rule: Some(rbac::permission::Rule::NotRule(Box::new(
                            rbac::Permission {
                                rule: Some(rbac::permission::Rule::UrlPath(matcher::PathMatcher {
                                    rule: Some(matcher::path_matcher::Rule::Path(
                                        matcher::StringMatcher {
                                            match_pattern: Some(
                                                matcher::string_matcher::MatchPattern::Prefix(
                                                    "/admin".to_owned(),
                                                ),
                                            ),
                                            ignore_case: false,
                                        },
                                    )),
                                })),
                            },
                        ))),
                    },
                ],
            })),
        }],
        principals: vec![rbac::Principal {
            identifier: Some(rbac::principal::Identifier::Authenticated(
                rbac::principal::Authenticated {
                    principal_name: Some(matcher::StringMatcher {
                        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(
                            "spiffe://mesh/ns/a/sa/b".to_owned(),
                        )),
                        ignore_case: false,
                    }),
                },
            )),
        }],
        ..Default::default()
    };
    let filter = RbacFilter {
        rules: Some(rbac::Rbac {
            action: rbac::rbac::Action::Deny as i32,
            policies: [("deny-admin".to_owned(), policy)].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut manager = hcm_rds("r1");
    manager.http_filters.insert(
        0,
        hcm::HttpFilter {
            name: "envoy.filters.http.rbac".to_owned(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(&filter))),
            ..Default::default()
        },
    );
    let listener = Listener::try_from(listener_with("l1", 8080, &manager)).expect("valid");
    let filter = &listener.filter_chains[0].http.http_filters[0];
    assert_eq!(filter.name, "envoy.filters.http.rbac");
    let mesh_xds::config::HttpFilterConfig::Rbac(config) = &filter.config else {
        panic!("RBAC filter expected: {filter:?}");
    };
    let rules = config.rules.clone().expect("rules");
    assert_eq!(rules.action, mesh_xds::config::RbacAction::Deny);
    let policy = &rules.policies["deny-admin"];
    assert!(
        matches!(&policy.permissions[0], mesh_xds::config::Permission::And(rules) if rules.len() == 2)
    );
    assert!(matches!(
        &policy.principals[0],
        mesh_xds::config::Principal::Authenticated(Some(_))
    ));
}

#[test]
fn downstream_tls_translates_with_one_certificate() {
    let cert = tls::TlsCertificate {
        certificate_chain: Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::Filename(
                "/etc/certs/cert.pem".to_owned(),
            )),
            ..Default::default()
        }),
        private_key: Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::InlineString("KEY".to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let trusted_ca = tls::CertificateValidationContext {
        trusted_ca: Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::Filename(
                "/etc/certs/ca.pem".to_owned(),
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let context_with =
        |sds: bool, ca: Option<tls::CertificateValidationContext>| DownstreamTlsContext {
            common_tls_context: Some(tls::CommonTlsContext {
                tls_certificates: vec![cert.clone()],
                validation_context_type: ca
                    .map(tls::common_tls_context::ValidationContextType::ValidationContext),
                alpn_protocols: vec!["h2".to_owned(), "http/1.1".to_owned()],
                tls_certificate_sds_secret_configs: if sds {
                    vec![Default::default()]
                } else {
                    Vec::new()
                },
                ..Default::default()
            }),
            require_client_certificate: Some(BoolValue { value: true }),
            ..Default::default()
        };
    let context = |sds: bool| context_with(sds, Some(trusted_ca.clone()));
    let with = |ctx: DownstreamTlsContext| {
        let mut l: lds::Listener = listener("l1", 8443, "r1");
        l.filter_chains[0].transport_socket = Some(core::TransportSocket {
            name: "envoy.transport_sockets.tls".to_owned(),
            config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(&ctx))),
        });
        Listener::try_from(l)
    };
    let listener = with(context(false)).expect("valid");
    let tls = listener.filter_chains[0].tls.clone().expect("tls");
    assert_eq!(tls.alpn_protocols, vec!["h2", "http/1.1"]);
    assert_eq!(
        tls.client_certificates,
        Some(mesh_xds::config::ClientCertificates {
            trusted_ca: mesh_xds::config::DataSource::Filename("/etc/certs/ca.pem".into()),
            required: true,
            subject_alt_names: Vec::new(),
        })
    );
    assert_eq!(
        tls.certificate.private_key,
        mesh_xds::config::DataSource::Inline(b"KEY".to_vec().into())
    );
    let err = with(context(true)).expect_err("an inline certificate and one by SDS");
    assert_eq!(
        err.to_string(),
        "listener \"l1\": filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates: only one certificate is supported"
    );
    let err = with(context_with(false, None)).expect_err("client certificates without a CA");
    assert!(
        err.to_string()
            .contains("filter_chains[0].transport_socket.typed_config.require_client_certificate"),
        "{err}"
    );
}

/// A STATIC cluster whose TLS context has `validation_context` (Envoy YAML, inline).
fn cluster_validating(
    validation_context: &str,
) -> Result<Cluster, mesh_xds::translate::TranslateError> {
    let cluster: cds::Cluster = mesh_xds::test_control_plane::resource_from_yaml(&format!(
        r#"
name: backend
type: STATIC
load_assignment:
  cluster_name: backend
  endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8443 }} }} }} }}] }}]
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      validation_context: {validation_context}
"#
    ))
    .expect("cluster yaml");
    Cluster::try_from(cluster)
}

#[test]
fn upstream_san_matchers_keep_their_type_and_need_a_ca_as_in_envoy() {
    use mesh_xds::config::{SanMatcher, SanType};
    let sans = |validation: &str| {
        cluster_validating(validation)
            .expect("valid")
            .tls
            .expect("TLS")
            .subject_alt_names
    };
    let ca = "trusted_ca: { filename: ca.pem }";
    let spiffe = StringMatcher::exact("spiffe://cluster.local/ns/default/sa/backend");
    assert_eq!(
        sans(&format!(
            "{{ {ca}, match_typed_subject_alt_names: [{{ san_type: URI, matcher: {{ exact: \"spiffe://cluster.local/ns/default/sa/backend\" }} }}] }}"
        )),
        vec![SanMatcher {
            san_type: SanType::Uri,
            matcher: spiffe.clone(),
        }]
    );
    // The deprecated untyped list is tried against every SAN type but OTHER_NAME...
    assert_eq!(
        sans(&format!(
            "{{ {ca}, match_subject_alt_names: [{{ exact: \"spiffe://cluster.local/ns/default/sa/backend\" }}] }}"
        ))
        .into_iter()
        .map(|san| (san.san_type, san.matcher == spiffe))
        .collect::<Vec<_>>(),
        vec![
            (SanType::Dns, true),
            (SanType::Uri, true),
            (SanType::Email, true),
            (SanType::IpAddress, true),
        ]
    );
    // ...and ignored next to typed matchers, as Envoy 1.40 does.
    assert_eq!(
        sans(&format!(
            "{{ {ca}, match_typed_subject_alt_names: [{{ san_type: DNS, matcher: {{ exact: a.test }} }}], match_subject_alt_names: [{{ exact: b.test }}] }}"
        )),
        vec![SanMatcher {
            san_type: SanType::Dns,
            matcher: StringMatcher::exact("a.test"),
        }]
    );

    let refused = |validation: &str| {
        cluster_validating(validation)
            .expect_err("refused")
            .to_string()
    };
    let err = refused(
        "{ match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: spiffe://a } }] }",
    );
    assert!(
        err.contains("match_typed_subject_alt_names")
            && err.contains("without trusted CA is insecure"),
        "{err}"
    );
    let err = refused(&format!(
        "{{ {ca}, match_typed_subject_alt_names: [{{ san_type: OTHER_NAME, oid: 1.3.6.1.4.1.311.20.2.3, matcher: {{ exact: x }} }}] }}"
    ));
    assert!(
        err.contains("match_typed_subject_alt_names[0].san_type") && err.contains("not supported"),
        "{err}"
    );
    let err = refused(&format!(
        "{{ {ca}, match_typed_subject_alt_names: [{{ matcher: {{ exact: x }} }}] }}"
    ));
    assert!(
        err.contains("match_typed_subject_alt_names[0].san_type"),
        "{err}"
    );
}

/// A listener terminating TLS whose `validation_context` is the given YAML flow mapping.
fn listener_validating(
    validation_context: &str,
) -> Result<Listener, mesh_xds::translate::TranslateError> {
    let listener: lds::Listener = mesh_xds::test_control_plane::resource_from_yaml(&format!(
        r#"
name: mtls
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8443 }} }}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      require_client_certificate: true
      common_tls_context:
        tls_certificates: [{{ certificate_chain: {{ filename: cert.pem }}, private_key: {{ filename: key.pem }} }}]
        validation_context: {validation_context}
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: mtls
      route_config: {{ virtual_hosts: [{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}] }}] }}
      http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
"#
    ))
    .expect("listener yaml");
    Listener::try_from(listener)
}

#[test]
fn client_certificate_san_matchers_are_kept_and_need_a_ca() {
    use mesh_xds::config::{SanMatcher, SanType};
    let listener = listener_validating(
        r#"{ trusted_ca: { filename: ca.pem }, match_typed_subject_alt_names: [{ san_type: URI, matcher: { prefix: "spiffe://cluster.local/" } }] }"#,
    )
    .expect("valid");
    let client = listener.filter_chains[0]
        .tls
        .clone()
        .expect("TLS")
        .client_certificates
        .expect("client certificates");
    assert_eq!(
        client.subject_alt_names,
        vec![SanMatcher {
            san_type: SanType::Uri,
            matcher: StringMatcher {
                pattern: mesh_xds::config::StringPattern::Prefix(
                    "spiffe://cluster.local/".to_owned()
                ),
                ignore_case: false,
            },
        }]
    );
    let err = listener_validating(
        "{ match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: client.test } }] }",
    )
    .expect_err("SAN matchers without a CA")
    .to_string();
    assert!(
        err.contains("validation_context.match_typed_subject_alt_names")
            && err.contains("without trusted CA is insecure"),
        "{err}"
    );
}
