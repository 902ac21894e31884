//! The mesh config file: per-workload gRPC flags and limits, workloads bound
//! by Host name (no bootstrap) or by xDS cluster (with one).

use http::Request;
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component, grpcio};

#[tokio::test(flavor = "multi_thread")]
async fn grpc_flags_and_hosts_come_from_the_config_file_per_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        r#"
listen: 127.0.0.1:{port}
workloads:
- name: greeter
  component: {greeter}
  hosts: [greeter.test]
  policy:
    grpc: {{ serve: true, outbound: true }}
- name: plain-greeter
  component: {greeter}
  hosts: [plain.test]
- name: hello
  component: {hello}
  hosts: [hello.test]
  policy:
    limits: {{ request_timeout: 2s, memory: 64MiB }}
"#,
        greeter = component("greeter").display(),
        hello = component("hello").display(),
    );
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, config).expect("write config");
    let host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);
    let target = host.addr.to_string();

    let allowed = grpcio::call(&[
        "--target",
        &target,
        "--authority",
        "greeter.test",
        "--name",
        "cfg",
    ])
    .await;
    assert_eq!(
        (allowed.code.as_str(), allowed.replies.as_slice()),
        ("OK", &["Hello cfg".to_owned()][..])
    );
    let denied = grpcio::call(&[
        "--target",
        &target,
        "--authority",
        "plain.test",
        "--name",
        "cfg",
    ])
    .await;
    assert_eq!(
        denied.code, "PERMISSION_DENIED",
        "grpc.serve is off for this workload"
    );

    let request = Request::get("/")
        .header("host", "hello.test")
        .body(client::empty())
        .expect("request");
    let (status, _, body, _) = client::read_all(client::http1(host.addr, request).await).await;
    assert_eq!(
        (status.as_u16(), body.as_ref()),
        (200, &b"Hello from mesh-host!\n"[..])
    );
}

/// Runs `mesh-host run --config path`, which must fail; its stderr.
fn refused(path: &std::path::Path) -> String {
    let output = std::process::Command::new(mesh_host_tests::mesh_host_bin())
        .args(["run", "--config"])
        .arg(path)
        .output()
        .expect("run");
    assert!(
        !output.status.success(),
        "mesh-host accepted {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_config_file_names_the_file_and_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nworkloads:\n- name: a\n  component: a.wasm\n  hosts: []\n  policy:\n    limits: { memory: lots }\n",
    )
    .expect("write");
    let stderr = refused(&path);
    assert!(stderr.contains("mesh.yaml"), "{stderr}");
    assert!(stderr.contains("workloads[0].hosts"), "{stderr}");
    assert!(
        stderr.contains("workloads[0].policy.limits.memory"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `examples/mesh.yaml` runs as shipped: a component calls another through
/// the egress listener, and an authority without a rule and route is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mesh_example_runs_as_is() {
    // The example points at the components' build output; fail clearly if
    // it is missing.
    component("hello");
    component("outbound");
    let example = mesh_host_tests::workspace_root().join("examples/mesh.yaml");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--config".into(),
        example.display().to_string(),
    ]);
    let call = |url: &'static str| async move {
        let request = Request::get(format!("/?url={url}"))
            .header("host", "client.example")
            .body(client::empty())
            .expect("request");
        client::read_all(client::http1(([127, 0, 0, 1], 10001).into(), request).await).await
    };
    let (status, headers, body, _) = call("http://hello.mesh/").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-upstream-status"], "200");
    assert_eq!(body, "Hello from mesh-host!\n");
    let (status, headers, _, _) = call("http://example.com/").await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-outbound-error"], "HTTP-request-denied");
    assert!(
        host.wait_for_log("no egress.allow rule matches"),
        "{}",
        host.log()
    );
}

/// GETs `path` with `host` from the mesh-host at `addr`: status and body.
async fn get_text(addr: std::net::SocketAddr, host: &str, path: &str) -> (u16, String) {
    let request = Request::get(path)
        .header("host", host)
        .body(client::empty())
        .expect("request");
    let (status, _, body, _) = client::read_all(client::http1(addr, request).await).await;
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workload_reads_its_own_wasi_config_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"
listen: 127.0.0.1:{port}
workloads:
- name: blue
  component: {config}
  hosts: [blue.test]
  config: {{ colour: blue, greeting: "Hello, blue" }}
- name: green
  component: {config}
  hosts: [green.test]
  config: {{ colour: green }}
- name: plain
  component: {config}
  hosts: [plain.test]
"#,
        port = free_port(),
        config = component("config").display(),
    );
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, config).expect("write config");
    let host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);

    assert_eq!(
        get_text(host.addr, "blue.test", "/").await,
        (200, "colour=blue\ngreeting=Hello, blue\n".to_owned())
    );
    assert_eq!(
        get_text(host.addr, "green.test", "/?key=colour").await,
        (200, "green".to_owned())
    );
    assert_eq!(
        get_text(host.addr, "green.test", "/?key=greeting").await.0,
        404
    );
    assert_eq!(
        get_text(host.addr, "plain.test", "/").await,
        (200, String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_var_flags_reach_the_embedded_default() {
    let host = MeshHost::run(
        &component("config"),
        &["--config-var", "mode=test", "--config-var", "empty="],
    );
    assert_eq!(
        get_text(host.addr, "any.test", "/").await,
        (200, "empty=\nmode=test\n".to_owned())
    );
}

#[test]
fn a_config_value_that_is_not_a_string_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nworkloads:\n- name: a\n  component: a.wasm\n  hosts: [a.test]\n  config: { retries: [1, 2] }\n",
    )
    .expect("write");
    let stderr = refused(&path);
    assert!(stderr.contains("mesh.yaml"), "{stderr}");
    assert!(stderr.contains("workloads[0].config.retries"), "{stderr}");
}
