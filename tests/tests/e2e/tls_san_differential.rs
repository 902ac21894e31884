//! Certificate SAN matchers against a real Envoy 1.40, both ways.
//!
//! Upstream: one bootstrap, whose
//! clusters all reach the same TLS upstream (a real Envoy presenting a workload
//! certificate: a SPIFFE id, a wildcard DNS name and 127.0.0.1) with different
//! validation contexts, is loaded into Envoy and into mesh-host. Each cluster
//! is asked once through both proxies: both must reach the upstream (its 200)
//! or both must refuse the certificate (503), and Envoy must do what the case
//! says, so the cases document Envoy's rules.
//!
//! The clusters send Istio's SNI (`outbound_.8443_._.backend...`), which names
//! no certificate: with SAN matchers only the matchers decide. A cluster
//! without matchers is asked without SNI, where mesh-host checks the endpoint's
//! address (Envoy checks no name; README, "Egress").
//!
//! Downstream: listeners requiring client certificates, each with its own SAN
//! matchers, in one bootstrap loaded into both proxies; clients with a
//! SPIFFE identity and with another one must be let in or turned away alike.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mesh_host_tests::bootstrap::{HCM, ROUTER, http_listener, static_cluster};
use mesh_host_tests::client;
use mesh_host_tests::component;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;

const BACKEND: &str = "spiffe://cluster.local/ns/default/sa/backend";
const ISTIO_SNI: &str = "outbound_.8443_._.backend.default.svc.cluster.local";

/// A cluster of the bootstrap: its name (and the `<name>.test` authority that routes to it),
/// its validation context's SAN matchers (YAML flow fields, after `trusted_ca`), whether it
/// trusts the upstream's certificate or another one, and whether Envoy reaches the upstream.
struct Case {
    name: &'static str,
    sans: &'static str,
    right_ca: bool,
    sni: bool,
    reaches: bool,
}

const fn case(name: &'static str, sans: &'static str, reaches: bool) -> Case {
    Case {
        name,
        sans,
        right_ca: true,
        sni: true,
        reaches,
    }
}

/// The cases: a table, one case a line, so rustfmt is kept out.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        case("uri-exact", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, true),
        case("uri-other", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/other" } }]"#, false),
        case("uri-prefix", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { prefix: "spiffe://cluster.local/ns/default/" } }]"#, true),
        case("uri-regex", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { safe_regex: { regex: "spiffe://cluster\\.local/ns/[a-z]+/sa/back.*" } } }]"#, true),
        case("uri-case", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "SPIFFE://cluster.local/ns/default/sa/backend" } }]"#, false),
        case("uri-ignore-case", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "SPIFFE://cluster.local/ns/default/sa/backend", ignore_case: true } }]"#, true),
        case("dns-given-uri", r#"match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, false),
        case("dns-wildcard", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: api.backend.test } }]", true),
        case("dns-wildcard-case", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: API.Backend.test } }]", true),
        case("dns-wildcard-bare", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: backend.test } }]", false),
        case("dns-wildcard-deep", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: a.b.backend.test } }]", false),
        case("dns-suffix", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { suffix: .backend.test } }]", true),
        case("dns-prefix-text", "match_typed_subject_alt_names: [{ san_type: DNS, matcher: { prefix: api. } }]", false),
        case("ip", r#"match_typed_subject_alt_names: [{ san_type: IP_ADDRESS, matcher: { exact: "127.0.0.1" } }]"#, true),
        case("ip-other", r#"match_typed_subject_alt_names: [{ san_type: IP_ADDRESS, matcher: { exact: "127.0.0.2" } }]"#, false),
        case("email", "match_typed_subject_alt_names: [{ san_type: EMAIL, matcher: { exact: ops@backend.test } }]", false),
        case("one-of-several", r#"match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: other.test } }, { san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, true),
        case("untyped", r#"match_subject_alt_names: [{ exact: "spiffe://cluster.local/ns/default/sa/backend" }]"#, true),
        case("untyped-ip", r#"match_subject_alt_names: [{ exact: "127.0.0.1" }]"#, true),
        case("untyped-other", r#"match_subject_alt_names: [{ exact: "spiffe://cluster.local/ns/default/sa/other" }]"#, false),
        case("typed-over-untyped", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/other" } }], match_subject_alt_names: [{ exact: "spiffe://cluster.local/ns/default/sa/backend" }]"#, false),
        Case { right_ca: false, ..case("wrong-ca", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, false) },
        // Without SNI the endpoint's address is a name the certificate is valid for: the
        // matchers must still refuse it.
        Case { sni: false, ..case("uri-other-no-sni", r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/other" } }]"#, false) },
        Case { sni: false, ..case("ca-only", "", true) },
        Case { sni: false, right_ca: false, ..case("ca-only-wrong-ca", "", false) },
    ]
}

/// Fails when Envoy did not do what a case says (with Envoy's log) or mesh-host did
/// otherwise than Envoy.
fn assert_agreement(envoy: &Envoy, envoy_unexpected: &[String], disagreements: &[String]) {
    let envoy_log = if envoy_unexpected.is_empty() {
        String::new()
    } else {
        format!("\nenvoy log:\n{}", envoy.log())
    };
    assert!(
        envoy_unexpected.is_empty() && disagreements.is_empty(),
        "Envoy differs from the expectation in {}:\n  {}\n\
         mesh-host disagrees with Envoy in {}:\n  {}{envoy_log}",
        envoy_unexpected.len(),
        envoy_unexpected.join("\n  "),
        disagreements.len(),
        disagreements.join("\n  "),
    );
}

/// The upstream: a real Envoy terminating TLS with `server`'s certificate on `port`.
fn upstream_bootstrap(port: u16, server: &TestCert) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: tls-upstream
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{{ certificate_chain: {{ filename: "{cert}" }}, private_key: {{ filename: "{key}" }} }}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "over tls" }} }} }}] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
  clusters: []
"#,
        cert = server.cert.display(),
        key = server.key.display(),
    )
}

/// The bootstrap both proxies load: a listener on `port` routing `<case>.test` to the case's
/// cluster, each cluster a TLS client of the upstream on `upstream_port`.
fn bootstrap(
    port: u16,
    upstream_port: u16,
    right_ca: &TestCert,
    wrong_ca: &TestCert,
    cases: &[Case],
) -> String {
    let virtual_hosts: Vec<String> = cases
        .iter()
        .map(|case| {
            format!(
                r#"{{ name: {name}, domains: ["{name}.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: {name} }} }}] }}"#,
                name = case.name
            )
        })
        .collect();
    let listener = http_listener(
        "front",
        port,
        "",
        &format!("[{}]", virtual_hosts.join(", ")),
    );
    let clusters: String = cases
        .iter()
        .map(|case| {
            let ca = if case.right_ca { right_ca } else { wrong_ca };
            let sni = if case.sni {
                format!("sni: {ISTIO_SNI}, ")
            } else {
                String::new()
            };
            let sans = if case.sans.is_empty() {
                String::new()
            } else {
                format!(", {}", case.sans)
            };
            static_cluster(
                case.name,
                &[upstream_port],
                &format!(
                    r#"transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, {sni}common_tls_context: {{ validation_context: {{ trusted_ca: {{ filename: "{ca}" }}{sans} }} }} }} }}"#,
                    ca = ca.cert.display(),
                ),
            )
        })
        .collect();
    format!(
        "node: {{ id: upstream-tls, cluster: upstream-tls }}\nstatic_resources:\n  listeners:{listener}\n  clusters:{clusters}\n"
    )
}

/// The status and body a GET of `<name>.test` gets through the proxy on `port`.
async fn ask(port: u16, name: &str) -> (StatusCode, String) {
    let request = Request::get("/")
        .header("host", format!("{name}.test"))
        .body(client::empty())
        .expect("request");
    let response = client::http1(([127, 0, 0, 1], port).into(), request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned())
        .unwrap_or_else(|error| format!("(body failed: {error})"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_san_matchers_accept_and_refuse_certificates_as_envoy_does() {
    let server = TestCert::for_identity(BACKEND, &["*.backend.test"]);
    let stranger = TestCert::for_uri("spiffe://cluster.local/ns/default/sa/stranger");
    let upstream_port = free_port();
    let Some(_upstream) = Envoy::start(&upstream_bootstrap(upstream_port, &server)).await else {
        return;
    };

    let cases = cases();
    let envoy_port = free_port();
    let Some(envoy) = Envoy::start(&bootstrap(
        envoy_port,
        upstream_port,
        &server,
        &stranger,
        &cases,
    ))
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let mesh_port = free_port();
    let config = bootstrap(mesh_port, upstream_port, &server, &stranger, &cases);
    std::fs::write(&path, config).expect("write bootstrap");
    // Killed on drop, at the end of the test.
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("upstream-tls-unused={}", component("hello").display()),
    ]);

    let mut envoy_unexpected = Vec::new();
    let mut disagreements = Vec::new();
    for case in &cases {
        let from_envoy = ask(envoy_port, case.name).await;
        let from_mesh = ask(mesh_port, case.name).await;
        let expected = if case.reaches {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if from_envoy.0 != expected || (case.reaches && from_envoy.1 != "over tls") {
            envoy_unexpected.push(format!(
                "{}: Envoy answered {from_envoy:?}, the case says {expected}",
                case.name
            ));
        }
        let reached = |(status, body): &(StatusCode, String)| (*status, body == "over tls");
        if reached(&from_envoy) != reached(&from_mesh) {
            disagreements.push(format!(
                "{}: Envoy {from_envoy:?}, mesh-host {from_mesh:?}",
                case.name
            ));
        }
    }
    assert_agreement(&envoy, &envoy_unexpected, &disagreements);
}

/// A listener requiring client certificates with these SAN matchers (YAML flow fields after
/// `trusted_ca`), and whether the `backend` and the `stranger` identity get in.
struct ListenerCase {
    name: &'static str,
    sans: &'static str,
    backend_in: bool,
    stranger_in: bool,
}

#[rustfmt::skip]
const LISTENER_CASES: &[ListenerCase] = &[
    ListenerCase { name: "any", sans: "", backend_in: true, stranger_in: true },
    ListenerCase { name: "backend-only", sans: r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, backend_in: true, stranger_in: false },
    ListenerCase { name: "namespace", sans: r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { prefix: "spiffe://cluster.local/ns/default/" } }]"#, backend_in: true, stranger_in: true },
    ListenerCase { name: "other-namespace", sans: r#"match_typed_subject_alt_names: [{ san_type: URI, matcher: { prefix: "spiffe://cluster.local/ns/other/" } }]"#, backend_in: false, stranger_in: false },
    ListenerCase { name: "dns-type", sans: r#"match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: "spiffe://cluster.local/ns/default/sa/backend" } }]"#, backend_in: false, stranger_in: false },
    ListenerCase { name: "untyped", sans: r#"match_subject_alt_names: [{ suffix: "/sa/stranger" }]"#, backend_in: false, stranger_in: true },
];

/// The listeners of [`LISTENER_CASES`] on `ports`, terminating TLS with `server`'s
/// certificate and trusting the client certificates in `client_ca`.
fn mtls_bootstrap(ports: &[u16], server: &TestCert, client_ca: &std::path::Path) -> String {
    let listeners: String = LISTENER_CASES
        .iter()
        .zip(ports)
        .map(|(case, port)| {
            let sans = if case.sans.is_empty() {
                String::new()
            } else {
                format!(", {}", case.sans)
            };
            format!(
                r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{{ certificate_chain: {{ filename: "{cert}" }}, private_key: {{ filename: "{key}" }} }}]
            validation_context: {{ trusted_ca: {{ filename: "{ca}" }}{sans} }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "in" }} }} }}] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}"#,
                name = case.name,
                cert = server.cert.display(),
                key = server.key.display(),
                ca = client_ca.display(),
            )
        })
        .collect();
    format!(
        "node: {{ id: mtls-sans, cluster: mtls-sans }}\nstatic_resources:\n  listeners:{listeners}\n  clusters: []\n"
    )
}

/// Whether `client` gets the listener's 200 over mTLS on `port`; the error otherwise.
async fn let_in(server: &TestCert, port: u16, client: &TestCert) -> Result<(), String> {
    let addr = ([127, 0, 0, 1], port).into();
    let (stream, _) = server
        .try_connect_as(addr, "localhost", &[b"http/1.1"], Some(client))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|error| format!("HTTP/1.1: {error}"))?;
    tokio::spawn(connection);
    let request = Request::get("/")
        .header("host", "localhost")
        .body(client::empty())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("request: {error}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("body: {error}"))?
        .to_bytes();
    if status == StatusCode::OK && body.as_ref() == b"in" {
        Ok(())
    } else {
        Err(format!("{status} {body:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_san_matchers_let_in_and_turn_away_as_envoy_does() {
    let server = TestCert::generate();
    let backend = TestCert::for_uri(BACKEND);
    let stranger = TestCert::for_uri("spiffe://cluster.local/ns/default/sa/stranger");
    let dir = tempfile::tempdir().expect("tempdir");
    let client_ca = dir.path().join("clients.pem");
    std::fs::write(&client_ca, format!("{}{}", backend.pem(), stranger.pem())).expect("CA bundle");

    let envoy_ports: Vec<u16> = LISTENER_CASES.iter().map(|_| free_port()).collect();
    let Some(envoy) = Envoy::start(&mtls_bootstrap(&envoy_ports, &server, &client_ca)).await else {
        return;
    };
    let mesh_ports: Vec<u16> = LISTENER_CASES.iter().map(|_| free_port()).collect();
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, mtls_bootstrap(&mesh_ports, &server, &client_ca))
        .expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("mtls-sans-unused={}", component("hello").display()),
    ]);

    let mut envoy_unexpected = Vec::new();
    let mut disagreements = Vec::new();
    for (i, case) in LISTENER_CASES.iter().enumerate() {
        for (who, client, expected) in [
            ("backend", &backend, case.backend_in),
            ("stranger", &stranger, case.stranger_in),
        ] {
            let from_envoy = let_in(&server, envoy_ports[i], client).await;
            let from_mesh = let_in(&server, mesh_ports[i], client).await;
            if from_envoy.is_ok() != expected {
                envoy_unexpected.push(format!(
                    "{} as {who}: Envoy {from_envoy:?}, the case says {}",
                    case.name,
                    if expected { "in" } else { "turned away" }
                ));
            }
            if from_envoy.is_ok() != from_mesh.is_ok() {
                disagreements.push(format!(
                    "{} as {who}: Envoy {from_envoy:?}, mesh-host {from_mesh:?}",
                    case.name
                ));
            }
        }
    }
    assert_agreement(&envoy, &envoy_unexpected, &disagreements);
}
