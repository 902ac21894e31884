//! The mesh config file: per-workload gRPC flags and limits, workloads bound
//! by Host name (no bootstrap) or by xDS cluster (with one).

use http::Request;
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component, grpcio};

/// mesh-host on a config file that listens on a free port and serves
/// `workloads` (the YAML list under `workloads:`).
fn start_with_workloads(workloads: &str) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    let config = format!("listen: 127.0.0.1:{}\nworkloads:{workloads}", free_port());
    std::fs::write(&path, config).expect("write config");
    let host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);
    (dir, host)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_flags_and_hosts_come_from_the_config_file_per_workload() {
    let workloads = format!(
        r#"
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
    let (_dir, host) = start_with_workloads(&workloads);
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

#[tokio::test(flavor = "multi_thread")]
async fn rbac_and_the_local_rate_limit_guard_each_workload_over_http_and_grpc() {
    let workloads = format!(
        r#"
- name: guarded
  component: {hello}
  hosts: [guarded.test]
  policy:
    rbac:
      action: ALLOW
      policies:
        loopback-reads:
          permissions: [{{ and_rules: {{ rules: [{{ method: GET }}, {{ not_rule: {{ url_path: {{ prefix: /admin }} }} }}] }} }}]
          principals: [{{ direct_remote_ip: 127.0.0.0/8 }}]
        admins:
          permissions: [{{ url_path: {{ prefix: /admin }} }}]
          principals: [{{ header: {{ name: x-role, string_match: {{ exact: admin }} }} }}]
- name: limited
  component: {hello}
  hosts: [limited.test]
  policy:
    rate_limit: {{ max_tokens: 3, tokens_per_fill: 3, fill_interval: 1h }}
- name: streams-only
  component: {greeter}
  hosts: [streams.test]
  policy:
    grpc: {{ serve: true }}
    rbac: {{ action: ALLOW, policies: {{ streams: {{ permissions: [{{ url_path: {{ exact: /routeguide.RouteGuide/ListFeatures }} }}], principals: [{{ any: true }}] }} }} }}
- name: one-call
  component: {greeter}
  hosts: [once.test]
  policy:
    grpc: {{ serve: true }}
    rate_limit: {{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 1h }}
"#,
        greeter = component("greeter").display(),
        hello = component("hello").display(),
    );
    let (_dir, host) = start_with_workloads(&workloads);
    let send = |method: &str, host_name: &str, uri: &str, role: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host_name);
        if let Some(role) = role {
            request = request.header("x-role", role);
        }
        let request = request.body(client::empty()).expect("request");
        let addr = host.addr;
        async move {
            let (status, headers, body, _) =
                client::read_all(client::http1(addr, request).await).await;
            let reason = headers
                .get("x-mesh-host-reason")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (
                status.as_u16(),
                reason,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };

    let hello = "Hello from mesh-host!\n".to_owned();
    let denied = (
        403,
        "rbac_access_denied".to_owned(),
        "RBAC: access denied".to_owned(),
    );
    assert_eq!(
        send("GET", "guarded.test", "/", None).await,
        (200, String::new(), hello.clone())
    );
    assert_eq!(send("POST", "guarded.test", "/", None).await, denied);
    assert_eq!(send("GET", "guarded.test", "/admin/x", None).await, denied);
    assert_eq!(
        send("GET", "guarded.test", "/admin/x", Some("viewer")).await,
        denied
    );
    assert_eq!(
        send("POST", "guarded.test", "/admin/x", Some("admin")).await,
        (200, String::new(), hello.clone())
    );

    for _ in 0..3 {
        assert_eq!(send("GET", "limited.test", "/", None).await.0, 200);
    }
    assert_eq!(
        send("GET", "limited.test", "/", None).await,
        (
            429,
            "local_rate_limited".to_owned(),
            "local_rate_limited".to_owned()
        )
    );
    assert_eq!(
        send("GET", "guarded.test", "/", None).await.0,
        200,
        "each workload has its own bucket"
    );

    let target = host.addr.to_string();
    let grpc = |authority: &'static str, method: &'static str| {
        let target = target.clone();
        async move {
            grpcio::call(&[
                "--target",
                &target,
                "--authority",
                authority,
                "--method",
                method,
                "--name",
                "rbac",
            ])
            .await
            .code
        }
    };
    assert_eq!(grpc("streams.test", "ListFeatures").await, "OK");
    assert_eq!(grpc("streams.test", "SayHello").await, "PERMISSION_DENIED");
    assert_eq!(grpc("once.test", "SayHello").await, "OK");
    assert_eq!(
        grpc("once.test", "SayHello").await,
        "UNAVAILABLE",
        "Envoy maps a local rate limit's 429 to UNAVAILABLE"
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

/// `mesh-host validate --config FILE`: its exit status and what it printed.
fn validate_config(path: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(mesh_host_tests::mesh_host_bin())
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .expect("run validate");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[test]
fn validate_checks_a_config_file_its_components_and_its_bootstrap() {
    component("hello");
    component("outbound");
    let example = mesh_host_tests::workspace_root().join("examples/mesh.yaml");
    let (ok, printed) = validate_config(&example);
    assert!(ok, "{printed}");
    assert!(printed.contains("mesh.yaml: OK (2 workloads)"), "{printed}");
    assert!(printed.contains("mesh-egress.yaml: OK"), "{printed}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nworkloads:\n- name: a\n  component: missing.wasm\n  hosts: [a.test]\n",
    )
    .expect("write");
    let (ok, printed) = validate_config(&path);
    assert!(!ok, "a missing component must fail validation: {printed}");
    assert!(
        printed.contains("broken.yaml: workloads[0].component: cannot read"),
        "{printed}"
    );

    std::fs::write(
        &path,
        format!(
            "bootstrap: envoy.yaml\nworkloads:\n- name: a\n  component: {}\n  clusters: [a]\n  policy:\n    rate_limit: {{ max_tokens: 0, fill_interval: 1s }}\n",
            component("hello").display()
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("envoy.yaml"),
        "static_resources: { listeners: [] }\n",
    )
    .expect("write bootstrap");
    let (ok, printed) = validate_config(&path);
    assert!(!ok, "a bad policy must fail validation: {printed}");
    assert!(
        printed.contains("broken.yaml: workloads[0].policy.rate_limit.max_tokens"),
        "{printed}"
    );
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
    let workloads = format!(
        r#"
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
        config = component("config").display(),
    );
    let (_dir, host) = start_with_workloads(&workloads);

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
