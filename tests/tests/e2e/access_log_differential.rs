//! Access logs, differential against a real Envoy 1.40: both proxies load one bootstrap
//! whose listeners write file access logs (Envoy's default format, a `text_format_source`
//! and a `json_format`), get the same requests, and their lines are compared field by field.
//!
//! Values that legitimately differ are left out of the comparison, and only those:
//! - `%START_TIME%` and `%DURATION%`: each proxy's own clock and speed;
//! - `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%` and `%REQ(X-REQUEST-ID)%` in Envoy's default
//!   format: Envoy's router adds upstream timing and generates request ids, mesh-host does
//!   neither (`-`);
//! - local addresses are logged without their port (`%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`),
//!   since the two proxies listen on different ports.
//!
//! - for the request no route matches, the body and its type: Envoy's 404 is empty, mesh-host's
//!   local replies say why in a text body (`shared::Failure::response`), so `%BYTES_SENT%`
//!   and `%RESP(CONTENT-TYPE)%` of that one line differ by design.
//!
//! The upstream answers a fixed body, so `%BYTES_SENT%` compares too (an echo upstream would
//! send back the request headers each proxy added).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh_host_tests::component;
use mesh_host_tests::differential::{self, ListenerSpec, Req, get};
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use tokio::net::TcpListener;

/// The body every upstream answer carries.
const UPSTREAM_BODY: &str = "fixed upstream body";

const ROUTES: &str = r#"
name: logged
virtual_hosts:
- name: logged
  domains: ["log.test"]
  routes:
  - { name: to-backend, match: { prefix: /backend }, route: { cluster: backend } }
  - { match: { prefix: /direct }, direct_response: { status: 201, body: { inline_string: direct } } }
"#;

const TEXT_FORMAT: &str = "%START_TIME%|%REQ(:METHOD)%|%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%|%REQ(USER-AGENT):6%|%PROTOCOL%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%BYTES_RECEIVED%|%BYTES_SENT%|%DURATION%|%UPSTREAM_HOST%|%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%|%REQUESTED_SERVER_NAME%|%REQ(:AUTHORITY)%|%RESP(CONTENT-TYPE)%\\n";

/// Positions of the `|`-separated text fields that are left out: START_TIME, DURATION.
const TEXT_SKIPPED: &[usize] = &[0, 9];

/// Positions of the space-separated fields of Envoy's default format that are left out:
/// `[START_TIME]`, DURATION, X-ENVOY-UPSTREAM-SERVICE-TIME and X-REQUEST-ID.
const DEFAULT_SKIPPED: &[usize] = &[0, 8, 9, 12];

/// Members of the JSON lines that are left out.
const JSON_SKIPPED: &[&str] = &["start_time", "duration"];

/// The request answered by each proxy's own local reply (no route), and what of its line is
/// left out besides: BYTES_SENT (default format, text format, JSON) and the text format's
/// RESP(CONTENT-TYPE).
const LOCAL_REPLY_TARGET: &str = "/missing";
const LOCAL_REPLY_DEFAULT_SKIPPED: &[usize] = &[7];
const LOCAL_REPLY_TEXT_SKIPPED: &[usize] = &[8, 17];
const LOCAL_REPLY_JSON_SKIPPED: &[&str] = &["bytes_sent"];

fn manager(log: &Path, format: &str) -> String {
    format!(
        r#"access_log:
- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: "{path}"
{format}"#,
        path = log.display()
    )
}

fn bootstrap(ports: &[u16; 3], logs: &Path, upstream: SocketAddr) -> String {
    let text =
        format!("    log_format: {{ text_format_source: {{ inline_string: \"{TEXT_FORMAT}\" }} }}");
    let json = r#"    log_format:
      json_format:
        start_time: "%START_TIME%"
        method: "%REQ(:METHOD)%"
        path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
        protocol: "%PROTOCOL%"
        response_code: "%RESPONSE_CODE%"
        response_code_details: "%RESPONSE_CODE_DETAILS%"
        response_flags: "%RESPONSE_FLAGS%"
        bytes_received: "%BYTES_RECEIVED%"
        bytes_sent: "%BYTES_SENT%"
        duration: "%DURATION%"
        upstream_host: "%UPSTREAM_HOST%"
        upstream_cluster: "%UPSTREAM_CLUSTER%"
        route_name: "%ROUTE_NAME%"
        x_forwarded_for: "%REQ(X-FORWARDED-FOR)%"
        client: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
        summary: "%REQ(:METHOD)% %RESPONSE_CODE% %REQ(USER-AGENT):3%"
        nested: { authority: "%REQ(:AUTHORITY)%", literal: 7 }"#;
    let managers = [
        manager(&logs.join("default.log"), ""),
        manager(&logs.join("text.log"), &text),
        manager(&logs.join("json.log"), json),
    ];
    let names = ["default", "text", "json"];
    let specs: Vec<ListenerSpec<'_>> = (0..3)
        .map(|i| ListenerSpec {
            name: names[i],
            port: ports[i],
            routes: ROUTES,
            filters: "",
            tls: None,
            manager: &managers[i],
        })
        .collect();
    let mut yaml = differential::bootstrap(&specs, &[]);
    yaml.push_str(&format!(
        r#"  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#,
        port = upstream.port()
    ));
    yaml
}

/// An upstream answering every request with [`UPSTREAM_BODY`] after reading its body.
async fn fixed_upstream() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async {
                    use http_body_util::BodyExt;
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from_static(UPSTREAM_BODY.as_bytes())))
                            .expect("response"),
                    )
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn requests() -> Vec<Req> {
    let host = "log.test";
    vec![
        get(host, "/backend/a?x=1").header("user-agent", "differential/1"),
        get(host, "/backend/post")
            .method("POST")
            .body("eleven byte")
            .header("user-agent", "differential/2"),
        get(host, "/backend/forwarded").header("x-forwarded-for", "10.1.2.3"),
        get(host, "/backend/h2").h2c(),
        get(host, "/direct"),
        get("nowhere.test", LOCAL_REPLY_TARGET),
    ]
}

/// The lines of `path`, once it holds `count` of them.
async fn lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The differences between two text lines split at `separator`, skipping `skipped` fields.
fn text_differences(
    envoy: &str,
    mesh: &str,
    separator: char,
    skipped: &[usize],
    also_skipped: &[usize],
) -> Vec<String> {
    let envoy_fields: Vec<&str> = envoy.split(separator).collect();
    let mesh_fields: Vec<&str> = mesh.split(separator).collect();
    if envoy_fields.len() != mesh_fields.len() {
        return vec![format!("field count: envoy {envoy:?}, mesh-host {mesh:?}")];
    }
    envoy_fields
        .iter()
        .zip(&mesh_fields)
        .enumerate()
        .filter(|(i, (e, m))| !skipped.contains(i) && !also_skipped.contains(i) && e != m)
        .map(|(i, (e, m))| format!("field {i}: envoy {e:?}, mesh-host {m:?}"))
        .collect()
}

fn json_differences(envoy: &str, mesh: &str, also_skipped: &[&str]) -> Vec<String> {
    let parse = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => panic!("not a JSON object: {line:?}"),
        }
    };
    let (envoy, mesh) = (parse(envoy), parse(mesh));
    let mut keys: Vec<&String> = envoy.keys().chain(mesh.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| {
            !JSON_SKIPPED.contains(&key.as_str()) && !also_skipped.contains(&key.as_str())
        })
        .filter(|key| envoy.get(*key) != mesh.get(*key))
        .map(|key| {
            format!(
                "{key}: envoy {:?}, mesh-host {:?}",
                envoy.get(key),
                mesh.get(key)
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_write_the_same_access_log_lines() {
    let upstream = fixed_upstream().await;
    let envoy_dir = tempfile::tempdir().expect("tempdir");
    let mesh_dir = tempfile::tempdir().expect("tempdir");
    let envoy_ports = [free_port(), free_port(), free_port()];
    let mesh_ports = [free_port(), free_port(), free_port()];
    let Some(envoy) = Envoy::start(&bootstrap(&envoy_ports, envoy_dir.path(), upstream)).await
    else {
        return;
    };
    let path = mesh_dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap(&mesh_ports, mesh_dir.path(), upstream))
        .expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("unused={}", component("hello").display()),
    ]);
    let requests = requests();
    for (ports, name) in [(&envoy_ports, "envoy"), (&mesh_ports, "mesh-host")] {
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            for request in &requests {
                differential::observe(addr, request)
                    .await
                    .unwrap_or_else(|e| panic!("{name} on {port}, {}: {e}", request.target));
            }
        }
    }
    let mut wrong = Vec::new();
    for (file, compare) in [("default.log", 0), ("text.log", 1), ("json.log", 2)] {
        let envoy_lines = lines(&envoy_dir.path().join(file), requests.len()).await;
        let mesh_lines = lines(&mesh_dir.path().join(file), requests.len()).await;
        assert_eq!(
            envoy_lines.len(),
            requests.len(),
            "Envoy's {file}: {envoy_lines:#?}\n{}",
            envoy.log()
        );
        assert_eq!(
            mesh_lines.len(),
            requests.len(),
            "mesh-host's {file}: {mesh_lines:#?}"
        );
        for ((request, e), m) in requests.iter().zip(&envoy_lines).zip(&mesh_lines) {
            let local = request.target == LOCAL_REPLY_TARGET;
            let pick = |skipped: &'static [usize]| if local { skipped } else { &[] };
            let differences = match compare {
                0 => text_differences(
                    e,
                    m,
                    ' ',
                    DEFAULT_SKIPPED,
                    pick(LOCAL_REPLY_DEFAULT_SKIPPED),
                ),
                1 => text_differences(e, m, '|', TEXT_SKIPPED, pick(LOCAL_REPLY_TEXT_SKIPPED)),
                _ => json_differences(e, m, if local { LOCAL_REPLY_JSON_SKIPPED } else { &[] }),
            };
            wrong.extend(
                differences
                    .into_iter()
                    .map(|d| format!("{file} {} {}: {d}", request.method, request.target)),
            );
        }
    }
    assert!(wrong.is_empty(), "lines differ:\n  {}", wrong.join("\n  "));
}

/// `%MESH_WORKLOAD%` (mesh-host's own operator, so no Envoy here) names the component that
/// served the request, and is absent for a response the router made itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_names_the_workload_that_served_the_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = dir.path().join("workload.log");
    let routes = r#"
name: served
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - { match: { prefix: /direct }, direct_response: { status: 204 } }
  - { name: to-hello, match: { prefix: / }, route: { cluster: hello } }
"#;
    let manager = manager(
        &log,
        r#"    log_format:
      json_format: { workload: "%MESH_WORKLOAD%", code: "%RESPONSE_CODE%", route: "%ROUTE_NAME%", cluster: "%UPSTREAM_CLUSTER%", details: "%RESPONSE_CODE_DETAILS%" }"#,
    );
    let spec = ListenerSpec {
        name: "served",
        port,
        routes,
        filters: "",
        tls: None,
        manager: &manager,
    };
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, differential::bootstrap(&[spec], &[])).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for target in ["/greet", "/direct"] {
        differential::observe(addr, &get("any.test", target).on("served"))
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
    let lines = lines(&log, 2).await;
    let values: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(
        values,
        [
            serde_json::json!({"workload": "hello", "code": 200, "route": "to-hello", "cluster": "hello", "details": "via_upstream"}),
            serde_json::json!({"workload": null, "code": 204, "route": null, "cluster": null, "details": "direct_response"}),
        ]
    );
}
