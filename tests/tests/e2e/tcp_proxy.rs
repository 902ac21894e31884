//! `envoy.filters.network.tcp_proxy`: bytes sent to a TCP listener reach a real echo server
//! through the listener's cluster and come back, and the connection's access log line is
//! written. Envoy 1.40 loads the same bootstrap and its line is compared field by field,
//! leaving out `%START_TIME%` and `%DURATION%` (each proxy's own clock and speed).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mesh_host_tests::component;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FORMAT: &str = "%START_TIME%|%DURATION%|%UPSTREAM_CLUSTER%|%UPSTREAM_HOST%|%BYTES_RECEIVED%|%BYTES_SENT%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%PROTOCOL%|%REQ(:PATH)%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\\n";

/// Fields left out of the comparison: START_TIME and DURATION.
const SKIPPED: &[usize] = &[0, 1];

/// A TCP server that writes back what it reads until the client finishes.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

fn bootstrap(port: u16, log: &Path, echo: SocketAddr) -> String {
    format!(
        r#"node: {{ id: tcp, cluster: tcp }}
static_resources:
  listeners:
  - name: tcp
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.connection_limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: tcp
          max_connections: 100
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo
          idle_timeout: 30s
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{log}"
              log_format: {{ text_format_source: {{ inline_string: "{FORMAT}" }} }}
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {echo_port} }} }} }}
"#,
        log = log.display(),
        echo_port = echo.port(),
    )
}

/// Sends `payload` through the proxy on `port`, finishes writing, and returns what came back.
async fn round_trip(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the TCP listener");
    stream.write_all(payload).await.expect("write");
    stream.shutdown().await.expect("finish writing");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut back))
        .await
        .expect("the proxy closes after the echo server does")
        .expect("read");
    back
}

/// The first line of `path`, once there is one.
async fn first_line(path: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            return Some(line.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_listener_forwards_bytes_to_its_cluster_and_logs_the_connection_as_envoy_does() {
    let echo = echo_server().await;
    let payload = b"bytes through a tcp_proxy listener".as_slice();

    let mesh_dir = tempfile::tempdir().expect("tempdir");
    let mesh_port = free_port();
    let mesh_log = mesh_dir.path().join("tcp.log");
    let path = mesh_dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap(mesh_port, &mesh_log, echo)).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("unused={}", component("hello").display()),
    ]);
    assert_eq!(round_trip(mesh_port, payload).await, payload);
    let mesh_line = first_line(&mesh_log)
        .await
        .expect("mesh-host wrote the connection's line");
    let expected_middle = format!("echo|{echo}|{n}|{n}|0|-|-|-|127.0.0.1", n = payload.len());
    let fields: Vec<&str> = mesh_line.split('|').collect();
    assert_eq!(fields[2..].join("|"), expected_middle, "{mesh_line}");

    let envoy_dir = tempfile::tempdir().expect("tempdir");
    let envoy_port = free_port();
    let envoy_log = envoy_dir.path().join("tcp.log");
    let Some(envoy) = Envoy::start(&bootstrap(envoy_port, &envoy_log, echo)).await else {
        return;
    };
    assert_eq!(round_trip(envoy_port, payload).await, payload);
    let envoy_line = first_line(&envoy_log)
        .await
        .unwrap_or_else(|| panic!("Envoy wrote no line; log:\n{}", envoy.log()));
    let envoy_fields: Vec<&str> = envoy_line.split('|').collect();
    assert_eq!(
        envoy_fields.len(),
        fields.len(),
        "{envoy_line} vs {mesh_line}"
    );
    let differences: Vec<String> = envoy_fields
        .iter()
        .zip(&fields)
        .enumerate()
        .filter(|(i, (e, m))| !SKIPPED.contains(i) && e != m)
        .map(|(i, (e, m))| format!("field {i}: envoy {e:?}, mesh-host {m:?}"))
        .collect();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
