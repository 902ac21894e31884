//! SDS: secrets named by listeners and clusters, asked for by name over ADS (SotW and
//! delta), checked on arrival, put in place of their names when a snapshot is published,
//! and static secrets from the bootstrap. Each test is named after the rule it checks.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ads::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::google::protobuf::Any;
use mesh_xds::ads::{AdsClient, AdsClientConfig, AdsState, Outgoing};
use mesh_xds::bootstrap::{AdsApi, Bootstrap, Format};
use mesh_xds::config::{
    DataSource, Listener, MeshConfig, ResourceKind, SanMatcher, SanType, StringMatcher,
};
use mesh_xds::dump::DumpQuery;
use mesh_xds::store::ConfigStore;
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane, resource_from_yaml};

const SDS: ResourceKind = ResourceKind::Secret;

/// A self-signed certificate and its key, as PEM.
struct Pem {
    cert: String,
    key: String,
}

fn pem(name: &str) -> Pem {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("rcgen");
    Pem {
        cert: certified.cert.pem(),
        key: certified.key_pair.serialize_pem(),
    }
}

/// A listener on 127.0.0.1 whose only chain serves TLS with the ADS secret `secret`.
fn tls_listener(name: &str, secret: &str) -> lds::Listener {
    let mut l = listener(name, 10443, "r1");
    l.filter_chains[0].transport_socket = Some(tls_socket(&downstream_tls_sds(secret, &["h2"])));
    l
}

fn listener_any_tls(name: &str, secret: &str) -> (&'static str, Any) {
    (leak(name), any(&tls_listener(name, secret)))
}

fn secret_any(
    secret: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret,
) -> (&'static str, Any) {
    (leak(&secret.name), any(secret))
}

/// The Secret subscription among `requests`: the names it asks for (SotW: all; delta:
/// added) and, for delta, the names it drops.
fn secret_subscription(requests: &[Outgoing]) -> Option<(Vec<String>, Vec<String>)> {
    requests
        .iter()
        .find(|r| type_url(r) == SDS.type_url() && error_message(r).is_none())
        .filter(|r| match r {
            Outgoing::Sotw(q) => q.response_nonce.is_empty() || !q.resource_names.is_empty(),
            Outgoing::Delta(q) => {
                !q.resource_names_subscribe.is_empty() || !q.resource_names_unsubscribe.is_empty()
            }
        })
        .map(|r| match r {
            Outgoing::Sotw(q) => (q.resource_names.clone(), Vec::new()),
            Outgoing::Delta(q) => (
                q.resource_names_subscribe.clone(),
                q.resource_names_unsubscribe.clone(),
            ),
        })
}

/// The PEM a published listener's first chain serves.
fn served_certificate(config: &MeshConfig, listener: &str) -> Option<Vec<u8>> {
    let tls = config.listeners.get(listener)?.filter_chains[0]
        .tls
        .clone()?;
    match tls.certificate.cert_chain {
        DataSource::Inline(bytes) => Some(bytes.to_vec()),
        DataSource::Filename(_) => None,
    }
}

/// Gives `state` the listener `l1`, whose certificate is the ADS secret `cert`, and its
/// routes, so that only the secret is missing.
fn with_tls_listener(state: &mut AdsState, api: AdsApi) {
    state.handle(
        response(
            api,
            LDS,
            "1",
            "n1",
            vec![listener_any_tls("l1", "cert")],
            &[],
        ),
        Instant::now(),
    );
    state.handle(
        response(api, RDS, "1", "r1", vec![route_any("r1", "c1")], &[]),
        Instant::now(),
    );
}

fn publish(state: &AdsState) -> Arc<MeshConfig> {
    ConfigStore::new(MeshConfig::default()).publish(state.resources())
}

both_variants! {
    a_listener_naming_a_secret_subscribes_to_it_by_name_and_warms_until_it_arrives => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let step = state.handle(
            response(api, LDS, "1", "n1", vec![listener_any_tls("l1", "cert")], &[]),
            Instant::now(),
        );
        assert_eq!(error_message(&step.requests[0]), None, "the listener is ACKed");
        state.handle(response(api, RDS, "1", "r1", vec![route_any("r1", "c1")], &[]), Instant::now());
        let (names, _) = secret_subscription(&step.requests).expect("a Secret subscription");
        assert_eq!(names, vec!["cert".to_owned()], "asked for by name, never as a wildcard");
        assert!(
            !publish(&state).listeners.contains_key("l1"),
            "without its certificate the listener warms"
        );

        let pem = pem("a.test");
        let step = state.handle(
            response(api, SDS, "1", "n2", vec![secret_any(&certificate_secret("cert", &pem.cert, &pem.key))], &[]),
            Instant::now(),
        );
        assert_eq!(error_message(&step.requests[0]), None, "the secret is ACKed");
        assert!(step.changed);
        let config = publish(&state);
        assert_eq!(
            served_certificate(&config, "l1").as_deref(),
            Some(pem.cert.as_bytes()),
            "the published listener carries the secret's certificate"
        );
    };

    a_new_secret_version_replaces_the_certificate_of_the_published_listener => |api| {
        let mut state = new_state(api);
        state.start_stream();
        with_tls_listener(&mut state, api);
        let (first, second) = (pem("a.test"), pem("a.test"));
        state.handle(
            response(api, SDS, "1", "n2", vec![secret_any(&certificate_secret("cert", &first.cert, &first.key))], &[]),
            Instant::now(),
        );
        let step = state.handle(
            response(api, SDS, "2", "n3", vec![secret_any(&certificate_secret("cert", &second.cert, &second.key))], &[]),
            Instant::now(),
        );
        assert!(step.changed);
        assert_eq!(served_certificate(&publish(&state), "l1").as_deref(), Some(second.cert.as_bytes()));
    };

    a_secret_that_fails_validation_is_nacked_by_name_and_field_and_the_last_good_one_stays => |api| {
        let mut state = new_state(api);
        state.start_stream();
        with_tls_listener(&mut state, api);
        let (good, other) = (pem("a.test"), pem("b.test"));
        state.handle(
            response(api, SDS, "1", "n2", vec![secret_any(&certificate_secret("cert", &good.cert, &good.key))], &[]),
            Instant::now(),
        );
        // The key of another certificate.
        let step = state.handle(
            response(api, SDS, "2", "n3", vec![secret_any(&certificate_secret("cert", &good.cert, &other.key))], &[]),
            Instant::now(),
        );
        let nack = error_message(&step.requests[0]).expect("NACK");
        assert!(
            nack.starts_with("secret \"cert\": tls_certificate.private_key: does not match the certificate"),
            "{nack}"
        );
        // Not PEM at all.
        let step = state.handle(
            response(api, SDS, "3", "n4", vec![secret_any(&certificate_secret("cert", "not a certificate", &good.key))], &[]),
            Instant::now(),
        );
        let nack = error_message(&step.requests[0]).expect("NACK");
        assert!(nack.starts_with("secret \"cert\": tls_certificate.certificate_chain:"), "{nack}");
        assert_eq!(served_certificate(&publish(&state), "l1").as_deref(), Some(good.cert.as_bytes()));
    };

    a_secret_of_the_wrong_kind_is_nacked => |api| {
        let mut state = new_state(api);
        state.start_stream();
        state.handle(response(api, LDS, "1", "n1", vec![listener_any_tls("l1", "cert")], &[]), Instant::now());
        let ca = pem("ca.test");
        let step = state.handle(
            response(api, SDS, "1", "n2", vec![secret_any(&validation_secret("cert", &ca.cert))], &[]),
            Instant::now(),
        );
        let nack = error_message(&step.requests[0]).expect("NACK");
        assert!(nack.starts_with("secret \"cert\": validation_context: listener \"l1\" needs a tls_certificate"), "{nack}");
    };

    a_secret_nothing_names_any_more_is_unsubscribed => |api| {
        let mut state = new_state(api);
        state.start_stream();
        state.handle(response(api, LDS, "1", "n1", vec![listener_any_tls("l1", "cert")], &[]), Instant::now());
        let step = state.handle(response(api, LDS, "2", "n2", vec![listener_any("l2", "r1")], &["l1"]), Instant::now());
        let (names, removed) = secret_subscription(&step.requests).expect("a Secret subscription change");
        match api {
            AdsApi::StateOfTheWorld => assert!(names.is_empty(), "{names:?}"),
            AdsApi::Delta => assert_eq!(removed, vec!["cert".to_owned()]),
        }
    };

    secrets_are_asked_for_again_on_a_new_stream => |api| {
        let mut state = new_state(api);
        state.start_stream();
        state.handle(response(api, LDS, "1", "n1", vec![listener_any_tls("l1", "cert")], &[]), Instant::now());
        let requests = state.start_stream();
        let secrets = requests
            .iter()
            .find(|r| type_url(r) == SDS.type_url())
            .expect("the Secret subscription is renewed");
        assert_eq!(subscribed(secrets), vec!["cert".to_owned()]);
    };

    a_listener_naming_a_static_secret_the_bootstrap_lacks_is_nacked => |api| {
        let mut state = new_state(api);
        state.start_stream();
        let mut l = tls_listener("l1", "cert");
        let mut context = downstream_tls_sds("missing", &[]);
        if let Some(common) = context.common_tls_context.as_mut() {
            common.tls_certificate_sds_secret_configs[0].sds_config = None;
        }
        l.filter_chains[0].transport_socket = Some(tls_socket(&context));
        let step = state.handle(response(api, LDS, "1", "n1", vec![(leak("l1"), any(&l))], &[]), Instant::now());
        let nack = error_message(&step.requests[0]).expect("NACK");
        assert!(nack.contains("listener \"l1\": filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]: no static secret \"missing\""), "{nack}");
    };
}

#[test]
fn a_delta_removal_of_a_secret_still_in_use_is_ignored_as_envoy_ignores_it() {
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.start_stream();
    with_tls_listener(&mut state, api);
    let pem = pem("a.test");
    state.handle(
        response(
            api,
            SDS,
            "1",
            "n2",
            vec![secret_any(&certificate_secret("cert", &pem.cert, &pem.key))],
            &[],
        ),
        Instant::now(),
    );
    let step = state.handle(
        response(api, SDS, "2", "n3", Vec::new(), &["cert"]),
        Instant::now(),
    );
    assert_eq!(error_message(&step.requests[0]), None, "ACKed");
    assert_eq!(
        served_certificate(&publish(&state), "l1").as_deref(),
        Some(pem.cert.as_bytes())
    );
}

#[test]
fn a_listener_whose_secret_never_arrives_stays_out_of_the_snapshot_after_the_warming_timeout() {
    let api = AdsApi::StateOfTheWorld;
    let mut state = AdsState::new(api, &node(), Duration::from_millis(10));
    state.start_stream();
    let start = Instant::now();
    state.handle(
        response(
            api,
            LDS,
            "1",
            "n1",
            vec![listener_any_tls("l1", "cert")],
            &[],
        ),
        start,
    );
    state.on_timer(start + Duration::from_secs(1));
    assert!(
        !publish(&state).listeners.contains_key("l1"),
        "a listener cannot serve TLS without its certificate: it binds nothing"
    );
}

fn translate_listener(yaml: &str) -> Result<Listener, String> {
    let proto: lds::Listener = resource_from_yaml(yaml).map_err(|e| e.to_string())?;
    Listener::try_from(proto).map_err(|e| e.to_string())
}

const TLS_LISTENER_HEAD: &str = r#"
name: l1
address: { socket_address: { address: 127.0.0.1, port_value: 10443 } }
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: l1
      rds: { route_config_name: r1, config_source: { ads: {} } }
      http_filters:
      - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
"#;

#[test]
fn an_sds_config_other_than_ads_is_refused_naming_the_field() {
    for (source, field) in [
        (
            "{ api_config_source: { api_type: GRPC, grpc_services: [{ envoy_grpc: { cluster_name: sds-grpc } }] } }",
            "sds_config.api_config_source",
        ),
        (
            "{ path_config_source: { path: /etc/sds.yaml } }",
            "sds_config.path_config_source",
        ),
    ] {
        let yaml = format!(
            "{TLS_LISTENER_HEAD}      common_tls_context:\n        tls_certificate_sds_secret_configs:\n        - {{ name: default, sds_config: {source} }}\n"
        );
        let error = translate_listener(&yaml).expect_err("refused");
        assert!(
            error.ends_with(&format!(
                "common_tls_context.tls_certificate_sds_secret_configs[0].{field} is not supported"
            )),
            "{error}"
        );
    }
}

#[test]
fn istio_style_ads_and_self_sources_are_accepted_with_their_fetch_timeout() {
    for source in [
        "{ ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }",
        "{ self: {} }",
    ] {
        let yaml = format!(
            "{TLS_LISTENER_HEAD}      common_tls_context:\n        tls_certificate_sds_secret_configs:\n        - {{ name: default, sds_config: {source} }}\n        combined_validation_context:\n          default_validation_context: {{}}\n          validation_context_sds_secret_config: {{ name: ROOTCA, sds_config: {source} }}\n      require_client_certificate: true\n"
        );
        translate_listener(&yaml).unwrap_or_else(|e| panic!("{source}: {e}"));
    }
}

#[test]
fn combined_validation_context_merges_the_secret_into_the_default_context() {
    let ca = pem("ca.test");
    let cluster: cds::Cluster = resource_from_yaml(
        r#"
name: backend
type: STATIC
load_assignment:
  cluster_name: backend
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8443 } } } }] }]
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: backend.test
    common_tls_context:
      combined_validation_context:
        default_validation_context:
          match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: backend.test } }]
        validation_context_sds_secret_config: { name: backend-ca, sds_config: { ads: {} } }
"#,
    )
    .expect("cluster yaml");
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    let step = state.handle(
        response(
            api,
            CDS,
            "1",
            "n1",
            vec![(leak("backend"), any(&cluster))],
            &[],
        ),
        Instant::now(),
    );
    assert_eq!(error_message(&step.requests[0]), None);
    assert_eq!(
        secret_subscription(&step.requests).map(|(names, _)| names),
        Some(vec!["backend-ca".to_owned()])
    );
    assert!(
        !publish(&state).clusters.contains_key("backend"),
        "the cluster warms on its CA"
    );
    state.handle(
        response(
            api,
            SDS,
            "1",
            "n2",
            vec![secret_any(&validation_secret("backend-ca", &ca.cert))],
            &[],
        ),
        Instant::now(),
    );
    let config = publish(&state);
    let tls = config.clusters["backend"].tls.clone().expect("TLS");
    assert_eq!(
        tls.validation_ca,
        Some(DataSource::Inline(ca.cert.as_bytes().into()))
    );
    assert_eq!(
        tls.subject_alt_names.len(),
        1,
        "the default's SAN matcher stays"
    );
    assert_eq!(
        tls.subject_alt_names[0],
        SanMatcher {
            san_type: SanType::Dns,
            matcher: StringMatcher::exact("backend.test"),
        }
    );
}

#[test]
fn san_matchers_without_a_ca_keep_the_cluster_out_of_service_after_the_secret_arrives() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
    let cluster: cds::Cluster = resource_from_yaml(
        r#"
name: backend
type: STATIC
load_assignment:
  cluster_name: backend
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8443 } } } }] }]
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      validation_context_sds_secret_config: { name: backend-sans, sds_config: { ads: {} } }
"#,
    )
    .expect("cluster yaml");
    // A validation context of SAN matchers alone: nothing to verify the certificate with.
    let mut secret = validation_secret("backend-sans", "");
    secret.r#type = Some(tls::secret::Type::ValidationContext(
        tls::CertificateValidationContext {
            match_typed_subject_alt_names: vec![tls::SubjectAltNameMatcher {
                san_type: tls::subject_alt_name_matcher::SanType::Uri as i32,
                matcher: Some(envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
                    match_pattern: Some(
                        envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(
                            "spiffe://cluster.local/ns/default/sa/backend".to_owned(),
                        ),
                    ),
                    ignore_case: false,
                }),
                oid: String::new(),
            }],
            ..Default::default()
        },
    ));
    let api = AdsApi::StateOfTheWorld;
    let mut state = new_state(api);
    state.start_stream();
    state.handle(
        response(
            api,
            CDS,
            "1",
            "n1",
            vec![(leak("backend"), any(&cluster))],
            &[],
        ),
        Instant::now(),
    );
    state.handle(
        response(api, SDS, "1", "n2", vec![secret_any(&secret)], &[]),
        Instant::now(),
    );
    assert!(
        !publish(&state).clusters.contains_key("backend"),
        "SAN matchers without a CA would prove nothing: the cluster takes no request"
    );
}

fn bootstrap_with_static_secret(pem: &Pem, reference: &str) -> String {
    let indent = |text: &str| text.replace('\n', "\n          ");
    format!(
        r#"
static_resources:
  secrets:
  - name: server-cert
    tls_certificate:
      certificate_chain:
        inline_string: |
          {cert}
      private_key:
        inline_string: |
          {key}
  listeners:
  - name: l1
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l1
          route_config: {{ virtual_hosts: [] }}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [{{ name: {reference} }}]
"#,
        cert = indent(pem.cert.trim_end()),
        key = indent(pem.key.trim_end()),
    )
}

#[test]
fn static_bootstrap_secrets_serve_listeners_that_name_them_without_sds_config() {
    let pem = pem("static.test");
    let bootstrap = Bootstrap::parse(
        &bootstrap_with_static_secret(&pem, "server-cert"),
        Format::Yaml,
        "static.yaml",
    )
    .expect("bootstrap");
    assert!(bootstrap.static_secrets.contains_key("server-cert"));
    let store = ConfigStore::from_bootstrap(&bootstrap);
    let config = store.load();
    let served = served_certificate(&config, "l1").expect("the listener is in service");
    assert_eq!(
        String::from_utf8_lossy(&served).trim_end(),
        pem.cert.trim_end()
    );

    let dump = store
        .config_dump(&DumpQuery::default(), Vec::new())
        .expect("dump");
    let text = dump.to_string();
    assert!(text.contains("\"static_secrets\""), "{text}");
    assert!(
        !text.contains("PRIVATE KEY"),
        "private keys are redacted in the dump"
    );
    assert!(text.contains("[redacted]"));
}

#[test]
fn a_static_listener_naming_a_static_secret_the_bootstrap_lacks_is_refused() {
    let pem = pem("static.test");
    let error = Bootstrap::parse(
        &bootstrap_with_static_secret(&pem, "other"),
        Format::Yaml,
        "static.yaml",
    )
    .expect_err("refused");
    assert!(
        error.to_string().contains("no static secret \"other\""),
        "{error}"
    );
}

#[test]
fn dynamic_secrets_are_dumped_with_their_private_keys_redacted() {
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.start_stream();
    state.handle(
        response(
            api,
            LDS,
            "1",
            "n1",
            vec![listener_any_tls("l1", "cert")],
            &[],
        ),
        Instant::now(),
    );
    let pem = pem("a.test");
    state.handle(
        response(
            api,
            SDS,
            "v7",
            "n2",
            vec![secret_any(&certificate_secret("cert", &pem.cert, &pem.key))],
            &[],
        ),
        Instant::now(),
    );
    let store = ConfigStore::new(MeshConfig::default());
    store.set_accepted(state.accepted_resources());
    let dump = store
        .config_dump(&DumpQuery::default(), Vec::new())
        .expect("dump");
    let secrets = dump["configs"]
        .as_array()
        .and_then(|configs| {
            configs
                .iter()
                .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.SecretsConfigDump")
        })
        .expect("a secrets dump");
    let active = &secrets["dynamic_active_secrets"][0];
    assert_eq!(active["name"], "cert");
    assert_eq!(
        active["secret"]["tls_certificate"]["private_key"]["inline_string"],
        "[redacted]"
    );
    assert_eq!(
        active["secret"]["tls_certificate"]["certificate_chain"]["inline_string"],
        pem.cert.as_str()
    );
}

/// Over a real ADS stream (the test control plane), SotW and delta: the listener appears
/// when its secret is served, and a new secret version reaches the published snapshot.
async fn rotation_over_ads(api: AdsApi) {
    let plane = TestControlPlane::start().await.expect("control plane");
    let (first, second) = (pem("a.test"), pem("a.test"));
    let snapshot = |version: &str, pem: Option<&Pem>| Snapshot {
        version: version.to_owned(),
        listeners: vec![tls_listener("l1", "cert")],
        routes: vec![route_config("r1", vec![prefix_route("/", "c1")])],
        clusters: vec![static_cluster("c1", 9)],
        secrets: pem
            .map(|p| certificate_secret("cert", &p.cert, &p.key))
            .into_iter()
            .collect(),
        ..Default::default()
    };
    plane.set_snapshot("node-1", &snapshot("v1", None));
    let store = Arc::new(ConfigStore::new(MeshConfig::default()));
    let _client = AdsClient::spawn(
        AdsClientConfig::new(plane.endpoint(), api, node()),
        store.clone(),
    );
    let asked = plane
        .wait_for_request(Duration::from_secs(10), |r| {
            r.request.type_url() == SDS.type_url()
                && match &r.request {
                    mesh_xds::test_control_plane::ReceivedRequest::Sotw(q) => {
                        q.resource_names == ["cert"]
                    }
                    mesh_xds::test_control_plane::ReceivedRequest::Delta(q) => {
                        q.resource_names_subscribe == ["cert"]
                    }
                }
        })
        .await;
    assert!(asked.is_some(), "the client asks for the secret by name");
    assert!(!store.load().listeners.contains_key("l1"), "warming");

    for (version, pem) in [("v2", &first), ("v3", &second)] {
        plane.set_snapshot("node-1", &snapshot(version, Some(pem)));
        let mut changes = store.subscribe();
        let served = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if served_certificate(&store.load(), "l1").as_deref() == Some(pem.cert.as_bytes()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        assert!(
            served.is_ok(),
            "{version}: the listener serves the secret's certificate"
        );
    }
}

#[tokio::test]
async fn secrets_rotate_over_sotw_ads() {
    rotation_over_ads(AdsApi::StateOfTheWorld).await;
}

#[tokio::test]
async fn secrets_rotate_over_delta_ads() {
    rotation_over_ads(AdsApi::Delta).await;
}

#[test]
fn a_static_listener_naming_an_ads_secret_subscribes_to_it_and_serves_once_it_arrives() {
    let unused = pem("static.test");
    let yaml = bootstrap_with_static_secret(&unused, "server-cert").replace(
        "[{ name: server-cert }]",
        "[{ name: ads-cert, sds_config: { ads: {} } }]",
    );
    let bootstrap = Bootstrap::parse(&yaml, Format::Yaml, "static.yaml").expect("bootstrap");
    let store = ConfigStore::from_bootstrap(&bootstrap);
    assert!(
        !store.load().listeners.contains_key("l1"),
        "the static listener waits for its ADS secret"
    );
    let api = AdsApi::Delta;
    let mut state = new_state(api);
    state.add_static_references(store.base());
    let requests = state.start_stream();
    let secrets = requests
        .iter()
        .find(|r| type_url(r) == SDS.type_url())
        .expect("the static listener's secret is asked for on the first stream");
    assert_eq!(subscribed(secrets), vec!["ads-cert".to_owned()]);
    let served = pem("ads.test");
    state.handle(
        response(
            api,
            SDS,
            "1",
            "n1",
            vec![secret_any(&certificate_secret(
                "ads-cert",
                &served.cert,
                &served.key,
            ))],
            &[],
        ),
        Instant::now(),
    );
    let config = store.publish(state.resources());
    assert_eq!(
        served_certificate(&config, "l1").as_deref(),
        Some(served.cert.as_bytes())
    );
}

#[test]
fn a_dynamic_listener_may_name_a_static_bootstrap_secret() {
    let pem = pem("static.test");
    let bootstrap = Bootstrap::parse(
        &bootstrap_with_static_secret(&pem, "server-cert"),
        Format::Yaml,
        "static.yaml",
    )
    .expect("bootstrap");
    let store = ConfigStore::from_bootstrap(&bootstrap);
    let mut proto = tls_listener("dynamic", "unused");
    let mut context = downstream_tls_sds("server-cert", &[]);
    if let Some(common) = context.common_tls_context.as_mut() {
        common.tls_certificate_sds_secret_configs[0].sds_config = None;
    }
    proto.filter_chains[0].transport_socket = Some(tls_socket(&context));
    let listener = Listener::try_from(proto).expect("listener");
    let mut dynamic = mesh_xds::store::DynamicResources::default();
    dynamic
        .listeners
        .insert("dynamic".to_owned(), Arc::new(listener));
    let config = store.publish(dynamic);
    let served = served_certificate(&config, "dynamic").expect("in service");
    assert_eq!(
        String::from_utf8_lossy(&served).trim_end(),
        pem.cert.trim_end()
    );
}
