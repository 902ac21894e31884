//! The mesh handler on a standard Envoy v3 bootstrap: listeners, virtual
//! hosts and routes from the file, clusters bound to in-process components
//! with `--workload`, direct responses, rewrites and header mutations.

use http::Request;
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component};

fn bootstrap(port: u16) -> String {
    format!(
        r#"
node: {{ id: mesh-test, cluster: test }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            name: routes
            virtual_hosts:
            - name: mesh
              domains: ["mesh.test"]
              response_headers_to_add:
              - header: {{ key: x-vhost, value: mesh }}
              routes:
              - match: {{ path: /healthz }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
              - match: {{ prefix: /echo/ }}
                route: {{ cluster: echo, prefix_rewrite: /rewritten/ }}
                request_headers_to_add:
                - header: {{ key: x-route, value: echo-route }}
              - match: {{ prefix: /missing }}
                route: {{ cluster: nowhere }}
              - match: {{ prefix: / }}
                route: {{ cluster: hello }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

async fn get(host: &MeshHost, authority: &str, path: &str) -> (u16, http::HeaderMap, String) {
    let request = Request::get(path)
        .header("host", authority)
        .body(client::empty())
        .expect("request");
    let (status, headers, body, _) =
        client::read_all(client::http1(host.addr, request).await).await;
    (
        status.as_u16(),
        headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_bootstrap_routes_to_in_process_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    let port = free_port();
    std::fs::write(&path, bootstrap(port)).expect("write bootstrap");
    let hello = format!("hello={}", component("hello").display());
    let echo = format!("echo={}", component("echo").display());
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        hello,
        "--workload".into(),
        echo,
    ]);
    assert_eq!(host.addr.port(), port);

    let (status, headers, body) = get(&host, "mesh.test", "/").await;
    assert_eq!((status, body.as_str()), (200, "Hello from mesh-host!\n"));
    assert_eq!(
        headers["x-vhost"], "mesh",
        "virtual-host response headers are added"
    );

    let (status, _, body) = get(&host, "mesh.test", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, headers, _) = get(&host, "mesh.test", "/echo/some/thing?x=1").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-echo-path"], "/rewritten/some/thing?x=1",
        "prefix_rewrite"
    );
    assert_eq!(
        headers["x-echo-req-x-route"], "echo-route",
        "route request headers are added"
    );

    let (status, _, _) = get(&host, "mesh.test", "/missing").await;
    assert_eq!(status, 503, "a cluster nobody serves is 503");

    let (status, _, _) = get(&host, "other.test", "/").await;
    assert_eq!(status, 404, "no virtual host matches");
}

#[test]
fn the_example_bootstrap_is_accepted() {
    let example = mesh_host_tests::workspace_root().join("examples/mesh-hello.yaml");
    let text = std::fs::read_to_string(&example).expect("read example");
    assert!(text.contains("port_value: 10000"));
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        example.display().to_string(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
    ]);
    assert_eq!(host.addr.port(), 10000);
}

#[test]
fn validate_accepts_the_example_and_names_file_and_field_of_an_error() {
    let example = mesh_host_tests::workspace_root().join("examples/mesh-hello.yaml");
    let output = std::process::Command::new(mesh_host_tests::mesh_host_bin())
        .args(["validate", "--bootstrap"])
        .arg(&example)
        .output()
        .expect("run validate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK (1 listeners, 1 clusters)"));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&example)
        .expect("read")
        .replace("port_value: 10000", "port_value: not-a-port");
    std::fs::write(&bad, text).expect("write");
    let output = std::process::Command::new(mesh_host_tests::mesh_host_bin())
        .args(["validate", "--bootstrap"])
        .arg(&bad)
        .output()
        .expect("run validate");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.yaml"), "names the file: {stderr}");
    assert!(stderr.contains("port_value"), "names the field: {stderr}");
}
