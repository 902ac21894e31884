//! Route-level settings Envoy Gateway and istiod send on every route configuration,
//! against a real Envoy 1.40 with the differential harness: virtual hosts matched without
//! the authority's port (`ignore_port_in_host_matching`), and direct responses whose body
//! comes from `body_format`.

use std::collections::HashMap;
use std::net::SocketAddr;

use mesh_host_tests::differential::{self, Case, ListenerSpec, case, get, to};
use mesh_host_tests::echo_upstream::EchoUpstream;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component};

/// Envoy Gateway's shape: the port is ignored, hostnames are listed without one.
const PORTLESS_ROUTES: &str = r#"
name: portless
ignore_port_in_host_matching: true
virtual_hosts:
- {name: www, domains: ["www.example.com"], routes: [{match: {prefix: /}, route: {cluster: www}}]}
- {name: wildcard, domains: ["*.example.org"], routes: [{match: {prefix: /}, route: {cluster: wildcard}}]}
- {name: ported, domains: ["ported.example.com:8080"], routes: [{match: {prefix: /}, route: {cluster: ported}}]}
- name: formatted
  domains: ["formatted.test"]
  routes:
  - match: {path: /text}
    direct_response: {status: 404, body_format: {text_format: "not here\n"}}
  - match: {path: /typed}
    direct_response: {status: 503, body_format: {text_format: "{\"error\":\"down\"}", content_type: application/json}}
  - match: {path: /operators}
    direct_response:
      status: 429
      body: {inline_string: slow down}
      body_format: {text_format: "%RESPONSE_CODE%: %LOCAL_REPLY_BODY% (100%%)\n"}
  - match: {path: /source}
    direct_response: {status: 200, body_format: {text_format_source: {inline_string: "from a source"}}}
"#;

/// The same hosts without `ignore_port_in_host_matching`: the port is part of the match.
const PORTED_ROUTES: &str = r#"
name: ported
virtual_hosts:
- {name: www, domains: ["www.example.com"], routes: [{match: {prefix: /}, route: {cluster: www}}]}
"#;

const CLUSTERS: &[&str] = &["www", "wildcard", "ported"];
const UNUSED_WORKLOAD_CLUSTER: &str = "gateway-routes-unused";

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        case("ignore_port_in_host_matching_matches_a_host_with_a_port",
             get("www.example.com:8080", "/").on("portless"), to("www")),
        case("ignore_port_in_host_matching_matches_a_host_without_a_port",
             get("www.example.com", "/").on("portless"), to("www")),
        case("ignore_port_in_host_matching_applies_to_wildcards",
             get("a.example.org:443", "/").on("portless"), to("wildcard")),
        case("ignore_port_in_host_matching_does_not_strip_a_domains_port",
             get("ported.example.com:8080", "/").on("portless"), differential::Expect::Local(404)),
        case("without_ignore_port_the_port_is_matched",
             get("www.example.com:8080", "/").on("ported"), differential::Expect::Local(404)),
        case("body_format_text_format_is_the_body_as_text_plain",
             get("formatted.test", "/text").on("portless"),
             differential::Expect::Direct(404, "not here\n")),
        case("body_format_content_type_is_used",
             get("formatted.test", "/typed").on("portless"),
             differential::Expect::Direct(503, "{\"error\":\"down\"}")),
        // Envoy renders a direct response's body before the response has a code.
        case("body_format_renders_local_reply_body_and_response_code_as_envoy_does",
             get("formatted.test", "/operators").on("portless"),
             differential::Expect::Direct(429, "0: slow down (100%)\n")),
        case("body_format_text_format_source_inline",
             get("formatted.test", "/source").on("portless"),
             differential::Expect::Direct(200, "from a source")),
    ]
}

fn bootstrap(ports: (u16, u16), upstreams: &[EchoUpstream]) -> String {
    let listeners = [
        ListenerSpec {
            name: "portless",
            port: ports.0,
            routes: PORTLESS_ROUTES,
            filters: "",
            tls: None,
            manager: "",
        },
        ListenerSpec {
            name: "ported",
            port: ports.1,
            routes: PORTED_ROUTES,
            filters: "",
            tls: None,
            manager: "",
        },
    ];
    differential::bootstrap(&listeners, upstreams)
}

fn listeners(ports: (u16, u16)) -> HashMap<&'static str, SocketAddr> {
    HashMap::from([
        ("portless", SocketAddr::from(([127, 0, 0, 1], ports.0))),
        ("ported", SocketAddr::from(([127, 0, 0, 1], ports.1))),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_agree_on_port_blind_hosts_and_formatted_direct_responses() {
    let cases = cases();
    let mut upstreams = Vec::new();
    for cluster in CLUSTERS {
        upstreams.push(EchoUpstream::start(cluster).await.expect("echo upstream"));
    }
    let envoy_ports = (free_port(), free_port());
    let Some(_envoy) = Envoy::start(&bootstrap(envoy_ports, &upstreams)).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let mesh_ports = (free_port(), free_port());
    std::fs::write(&path, bootstrap(mesh_ports, &upstreams)).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("{UNUSED_WORKLOAD_CLUSTER}={}", component("hello").display()),
    ]);
    let report = differential::run(&cases, &listeners(envoy_ports), &listeners(mesh_ports)).await;
    // The harness compares `x-` response headers only; the content type of formatted
    // bodies is compared here.
    for (path, content_type) in [("/text", "text/plain"), ("/typed", "application/json")] {
        for (proxy, port) in [("Envoy", envoy_ports.0), ("mesh-host", mesh_ports.0)] {
            let request = http::Request::get(path)
                .header("host", "formatted.test")
                .body(client::empty())
                .expect("request");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let (_, headers, _, _) = client::read_all(client::http1(addr, request).await).await;
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some(content_type),
                "{proxy} {path}"
            );
        }
    }
    assert!(
        report.is_clean(),
        "Envoy differs from the expectation in:\n  {}\nmesh-host disagrees with Envoy in:\n  {}",
        report.envoy_unexpected.join("\n  "),
        report.disagreements.join("\n  "),
    );
}
