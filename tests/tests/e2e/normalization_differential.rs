//! Differential test of the connection manager's request normalisation against a real Envoy
//! 1.40 (what istiod and Envoy Gateway set on every listener): `normalize_path`,
//! `merge_slashes`, `path_with_escaped_slashes_action` and `headers_with_underscores_action`.
//! Both proxies load one bootstrap and forward to the same echo upstream, so the path and
//! headers the upstream received are compared, with the status and redirect location.

use std::collections::HashMap;
use std::net::SocketAddr;

use mesh_host_tests::component;
use mesh_host_tests::differential::{self, Case, Expect, ListenerSpec, case, get, to};
use mesh_host_tests::echo_upstream::EchoUpstream;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;

const ROUTES: &str = r#"
name: normalization
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - { match: { prefix: /admin }, direct_response: { status: 403, body: { inline_string: admin } } }
  - { match: { prefix: / }, route: { cluster: backend } }
"#;

/// Listener name, its connection manager's normalisation settings.
const LISTENERS: &[(&str, &str)] = &[
    ("normalize", "normalize_path: true\nmerge_slashes: true"),
    ("normalize-only", "normalize_path: true"),
    ("merge-only", "merge_slashes: true"),
    (
        "reject-escaped",
        "path_with_escaped_slashes_action: REJECT_REQUEST",
    ),
    (
        "unescape-forward",
        "path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD\nnormalize_path: true",
    ),
    (
        "unescape-redirect",
        "path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT",
    ),
    (
        "drop-underscores",
        "common_http_protocol_options: { headers_with_underscores_action: DROP_HEADER }",
    ),
    ("plain", ""),
];

fn bootstrap(ports: &HashMap<&'static str, u16>, upstream: &EchoUpstream) -> String {
    let specs: Vec<ListenerSpec<'_>> = LISTENERS
        .iter()
        .map(|(name, manager)| ListenerSpec {
            name,
            port: ports[name],
            routes: ROUTES,
            filters: "",
            tls: None,
            manager,
        })
        .collect();
    differential::bootstrap(&specs, std::slice::from_ref(upstream))
}

fn cases() -> Vec<Case> {
    let on = |listener: &'static str, path: &'static str| get("n.test", path).on(listener);
    let bad = || Expect::Local(400);
    vec![
        case(
            "normalize_dot_dot",
            on("normalize", "/a/b/../c"),
            to("backend").path("/a/c"),
        ),
        case(
            "normalize_dot",
            on("normalize", "/a/./b"),
            to("backend").path("/a/b"),
        ),
        case(
            "normalize_above_root",
            on("normalize", "/../a"),
            to("backend").path("/a"),
        ),
        case(
            "normalize_trailing_dot_dot",
            on("normalize", "/a/b/.."),
            to("backend").path("/a/"),
        ),
        case(
            "normalize_encoded_dots",
            on("normalize", "/a/%2e%2e/b"),
            to("backend").path("/b"),
        ),
        case(
            "normalize_unreserved_escapes",
            on("normalize", "/%7euser/%41"),
            to("backend").path("/~user/A"),
        ),
        case(
            "normalize_keeps_other_escapes_as_written",
            on("normalize", "/a%2fb%3a"),
            to("backend").path("/a%2fb%3a"),
        ),
        case(
            "normalize_leaves_the_query",
            on("normalize", "/a/../b?x=/../y"),
            to("backend").path("/b?x=/../y"),
        ),
        case(
            "normalize_then_route_sees_the_normalized_path",
            on("normalize", "/public/../admin/x"),
            Expect::Direct(403, "admin"),
        ),
        case(
            "merge_slashes",
            on("normalize", "//a///b/"),
            to("backend").path("/a/b/"),
        ),
        case(
            "merge_slashes_over_h2c",
            on("normalize", "/a//b").h2c(),
            to("backend").path("/a/b"),
        ),
        case(
            "normalize_without_merging",
            on("normalize-only", "//a/./b"),
            to("backend").path("//a/b"),
        ),
        case(
            "merge_without_normalizing",
            on("merge-only", "//a/./b"),
            to("backend").path("/a/./b"),
        ),
        case(
            "plain_keeps_dot_segments",
            on("plain", "/a/../b"),
            to("backend"),
        ),
        case(
            "plain_keeps_escaped_slashes",
            on("plain", "/a%2Fb"),
            to("backend"),
        ),
        case(
            "reject_escaped_slash",
            on("reject-escaped", "/a%2Fb"),
            bad(),
        ),
        case(
            "reject_escaped_backslash",
            on("reject-escaped", "/a%5cb"),
            bad(),
        ),
        case(
            "reject_escaped_passes_a_clean_path",
            on("reject-escaped", "/a/b"),
            to("backend"),
        ),
        case(
            "unescape_and_forward",
            on("unescape-forward", "/a%2Fb"),
            to("backend").path("/a/b"),
        ),
        case(
            "unescape_and_redirect",
            on("unescape-redirect", "/a%2Fb?q=1"),
            Expect::Redirect(307, "/a/b?q=1"),
        ),
        case(
            "unescape_and_redirect_passes_a_clean_path",
            on("unescape-redirect", "/a/b"),
            to("backend"),
        ),
        case(
            "drop_headers_with_underscores",
            on("drop-underscores", "/")
                .header("x_under", "1")
                .header("x-dash", "1"),
            to("backend")
                .header("x_under", None)
                .header("x-dash", Some("1")),
        ),
        case(
            "plain_keeps_headers_with_underscores",
            on("plain", "/").header("x_under", "1"),
            to("backend").header("x_under", Some("1")),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_normalize_requests_alike() {
    let cases = cases();
    let upstream = EchoUpstream::start("backend").await.expect("echo upstream");
    let ports = |_: ()| -> HashMap<&'static str, u16> {
        LISTENERS
            .iter()
            .map(|(name, _)| (*name, free_port()))
            .collect()
    };
    let (envoy_ports, mesh_ports) = (ports(()), ports(()));
    let Some(envoy) = Envoy::start(&bootstrap(&envoy_ports, &upstream)).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap(&mesh_ports, &upstream)).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("unused={}", component("hello").display()),
    ]);
    let addrs = |ports: &HashMap<&'static str, u16>| -> HashMap<&'static str, SocketAddr> {
        ports
            .iter()
            .map(|(name, port)| (*name, SocketAddr::from(([127, 0, 0, 1], *port))))
            .collect()
    };
    let report = differential::run(&cases, &addrs(&envoy_ports), &addrs(&mesh_ports)).await;
    let envoy_log = if report.envoy_unexpected.is_empty() {
        String::new()
    } else {
        format!("\nenvoy log:\n{}", envoy.log())
    };
    assert!(
        report.is_clean(),
        "{} cases; Envoy differs from the expectation in {}:\n  {}\n\
         mesh-host disagrees with Envoy in {}:\n  {}{envoy_log}",
        cases.len(),
        report.envoy_unexpected.len(),
        report.envoy_unexpected.join("\n  "),
        report.disagreements.len(),
        report.disagreements.join("\n  "),
    );
}
