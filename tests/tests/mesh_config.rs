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

#[test]
fn a_bad_config_file_names_the_file_and_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nworkloads:\n- name: a\n  component: a.wasm\n  hosts: []\n  policy:\n    limits: { memory: lots }\n",
    )
    .expect("write");
    let output = std::process::Command::new(mesh_host_tests::mesh_host_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mesh.yaml"), "{stderr}");
    assert!(stderr.contains("workloads[0].hosts"), "{stderr}");
    assert!(
        stderr.contains("workloads[0].policy.limits.memory"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
