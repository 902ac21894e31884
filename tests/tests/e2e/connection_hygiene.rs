//! The connection settings of Envoy's HTTP connection manager and listener, against raw
//! sockets and real clients: `common_http_protocol_options.idle_timeout`,
//! `max_connection_duration`, HTTP/2 `connection_keepalive` (PING with a timeout), a
//! listener's connection limit (runtime key
//! `envoy.resource_limits.listener.<name>.connection_limit`) and the process-wide cap
//! (`--max-connections`). Each test is named for the rule it checks.

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use mesh_host_tests::client::{self, TestBody};
use mesh_host_tests::component;
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 0x4, 0x1, 0, 0, 0, 0];
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
/// Longer than any timer these tests set: what did not happen by then never will.
const PATIENCE: Duration = Duration::from_secs(15);

/// mesh-host serving one listener named `main` on `port` whose connection manager has
/// `settings` and routes everything to the `hello` component; `bootstrap` is merged into
/// the bootstrap's top level.
fn start(port: u16, settings: Value, bootstrap: Value) -> (tempfile::TempDir, MeshHost) {
    start_serving("hello", port, json!({}), settings, bootstrap)
}

/// `start` with every request routed to `workload` and `listener_settings` merged into
/// the listener.
fn start_serving(
    workload: &str,
    port: u16,
    listener_settings: Value,
    settings: Value,
    bootstrap: Value,
) -> (tempfile::TempDir, MeshHost) {
    let mut manager = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "main",
        "route_config": {
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": workload } }]
            }]
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
        }]
    });
    if let (Some(manager), Value::Object(settings)) = (manager.as_object_mut(), settings) {
        manager.extend(settings);
    }
    let mut config = json!({
        "node": { "id": "connection-hygiene", "cluster": "test" },
        "static_resources": { "listeners": [{
            "name": "main",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
            "filter_chains": [{ "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": manager
            }] }]
        }] }
    });
    if let (Some(listener), Value::Object(extra)) = (
        config["static_resources"]["listeners"][0].as_object_mut(),
        listener_settings,
    ) {
        listener.extend(extra);
    }
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), bootstrap) {
        config.extend(extra);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, config.to_string()).expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".to_owned(),
        "--bootstrap".to_owned(),
        path.display().to_string(),
        "--workload".to_owned(),
        format!("{workload}={}", component(workload).display()),
    ]);
    (dir, host)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn hello(addr: SocketAddr) -> Request<TestBody> {
    Request::get("/")
        .header("host", addr.to_string())
        .body(client::empty())
        .expect("request")
}

/// A raw h2c connection that has sent its preface and an empty SETTINGS frame.
async fn h2c_raw(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&EMPTY_SETTINGS);
    stream.write_all(&hello).await.expect("preface");
    stream
}

/// Frames of one HTTP/2 connection as (type, flags, payload), read until the peer closes
/// or `wait` passes; acknowledges the server's SETTINGS and, when `answer_pings`, its PINGs.
async fn frames_until_closed(
    stream: &mut TcpStream,
    wait: Duration,
    answer_pings: bool,
) -> (Vec<(u8, u8, Vec<u8>)>, bool) {
    let mut frames = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let read = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return (frames, false),
            Ok(Ok(0) | Err(_)) => return (frames, true),
            Ok(Ok(read)) => read,
        };
        buffer.extend_from_slice(&chunk[..read]);
        while buffer.len() >= 9 {
            let length =
                usize::from(buffer[0]) << 16 | usize::from(buffer[1]) << 8 | usize::from(buffer[2]);
            if buffer.len() < 9 + length {
                break;
            }
            let (kind, flags) = (buffer[3], buffer[4]);
            let payload = buffer[9..9 + length].to_vec();
            if kind == 0x4 && flags & 0x1 == 0 {
                let _ = stream.write_all(&SETTINGS_ACK).await;
            }
            if kind == PING && flags & 0x1 == 0 && answer_pings {
                let mut ack = vec![0, 0, 8, PING, 0x1, 0, 0, 0, 0];
                ack.extend_from_slice(&payload);
                let _ = stream.write_all(&ack).await;
            }
            frames.push((kind, flags, payload));
            buffer.drain(..9 + length);
        }
    }
}

fn has_goaway(frames: &[(u8, u8, Vec<u8>)]) -> bool {
    frames.iter().any(|(kind, _, _)| *kind == GOAWAY)
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_timeout_closes_an_idle_http1_connection_and_sends_goaway_on_h2c() {
    let port = free_port();
    let (_dir, _host) = start(
        port,
        json!({ "common_http_protocol_options": { "idle_timeout": "1s" } }),
        json!({}),
    );
    let addr = local(port);

    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let connection = tokio::spawn(connection);
    let response = sender.send_request(hello(addr)).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");
    tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("the idle HTTP/1.1 connection is closed")
        .expect("client task")
        .expect("closed cleanly, not reset");

    let mut h2 = h2c_raw(addr).await;
    let (frames, closed) = frames_until_closed(&mut h2, PATIENCE, true).await;
    assert!(has_goaway(&frames), "GOAWAY before the close: {frames:?}");
    assert!(closed, "the idle h2c connection is closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_in_use_outlives_the_idle_timeout() {
    let port = free_port();
    let (_dir, _host) = start(
        port,
        json!({ "common_http_protocol_options": { "idle_timeout": "1s" } }),
        json!({}),
    );
    let addr = local(port);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    // A request every 300 ms for three idle timeouts: never idle for one.
    for _ in 0..10 {
        sender.ready().await.expect("the connection is still open");
        let response = sender.send_request(hello(addr)).await.expect("answered");
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(http::header::CONNECTION).is_none());
        response.into_body().collect().await.expect("body");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connection_duration_sends_goaway_on_h2c_and_closes_http1_after_the_response_in_flight()
{
    let port = free_port();
    let (_dir, _host) = start_serving(
        "slow",
        port,
        json!({}),
        json!({ "common_http_protocol_options": { "max_connection_duration": "2s" } }),
        json!({}),
    );
    let addr = local(port);

    let mut h2 = h2c_raw(addr).await;
    let (frames, _) = frames_until_closed(&mut h2, PATIENCE, true).await;
    assert!(
        has_goaway(&frames),
        "GOAWAY at the maximum duration: {frames:?}"
    );

    // An idle HTTP/1.1 connection is closed at the maximum duration.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut idle, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let idle_connection = tokio::spawn(connection);
    let quick = Request::get("/?chunks=1&delay_ms=0")
        .header("host", addr.to_string())
        .body(client::empty())
        .expect("request");
    let response = idle.send_request(quick).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");

    // One whose request is still being answered at that time is answered in full, with
    // `connection: close`.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut busy, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let busy_connection = tokio::spawn(connection);
    let slow = Request::get("/?sleep_ms=3000&chunks=1&delay_ms=0")
        .header("host", addr.to_string())
        .body(client::empty())
        .expect("request");
    let response = busy.send_request(slow).await.expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(http::header::CONNECTION)
            .map(|value| value.as_bytes()),
        Some(&b"close"[..]),
        "{:?}",
        response.headers()
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"chunk\n");
    for (what, connection) in [("idle", idle_connection), ("busy", busy_connection)] {
        tokio::time::timeout(PATIENCE, connection)
            .await
            .unwrap_or_else(|_| panic!("the {what} HTTP/1.1 connection is closed"))
            .expect("client task")
            .expect("closed cleanly, not reset");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_keepalive_pings_and_closes_a_client_that_does_not_answer() {
    let port = free_port();
    let (_dir, _host) = start(
        port,
        json!({ "http2_protocol_options": {
            "connection_keepalive": { "interval": "1s", "timeout": "1s" }
        } }),
        json!({}),
    );
    let addr = local(port);

    let mut silent = h2c_raw(addr).await;
    let (frames, closed) = frames_until_closed(&mut silent, PATIENCE, false).await;
    assert!(
        frames
            .iter()
            .any(|(kind, flags, _)| *kind == PING && flags & 0x1 == 0),
        "the host pinged: {frames:?}"
    );
    assert!(closed, "a client that never answers is closed: {frames:?}");

    // A client that answers (hyper's) keeps its connection across several intervals.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("handshake");
    tokio::spawn(connection);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let request = Request::get(format!("http://{addr}/"))
        .body(client::empty())
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .expect("the answering client's connection is still open");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_filters_timeout_closes_a_silent_connection_unless_told_to_continue_as_http1() {
    let closing_port = free_port();
    let (_closing_dir, _closing) = start_serving(
        "hello",
        closing_port,
        json!({ "listener_filters_timeout": "1s" }),
        json!({}),
        json!({}),
    );
    let mut silent = TcpStream::connect(local(closing_port))
        .await
        .expect("connect");
    let mut sink = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut sink))
        .await
        .expect("closed at the detection timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );

    let continuing_port = free_port();
    let (_continuing_dir, _continuing) = start_serving(
        "hello",
        continuing_port,
        json!({
            "listener_filters_timeout": "1s",
            "continue_on_listener_filters_timeout": true
        }),
        json!({}),
        json!({}),
    );
    let addr = local(continuing_port);
    let mut late = TcpStream::connect(addr).await.expect("connect");
    // Silent for twice the detection timeout, then an HTTP/1.1 request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    late.write_all(request.as_bytes())
        .await
        .expect("still open");
    let mut head = [0u8; 12];
    late.read_exact(&mut head).await.expect("answered");
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// Opens a keep-alive HTTP/1.1 connection and is answered once on it.
async fn served_connection(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(hello(addr)).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");
    sender
}

/// A new connection that sends a request: whether it was answered (else closed unanswered).
async fn answered_on_a_new_connection(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    match tokio::time::timeout(PATIENCE, stream.read(&mut head)).await {
        Ok(Ok(read)) if read > 0 => head.starts_with(b"HTTP/1.1 200"),
        Ok(_) => false,
        Err(_) => panic!("neither answered nor closed"),
    }
}

/// With `cap` connections served and held, a new one is closed unanswered; once one is
/// released, a new one is served.
async fn the_cap_holds(addr: SocketAddr, cap: usize) {
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(served_connection(addr).await);
    }
    assert!(
        !answered_on_a_new_connection(addr).await,
        "a connection beyond the cap of {cap} is closed"
    );
    drop(held.pop());
    let mut served = false;
    for _ in 0..50 {
        if answered_on_a_new_connection(addr).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "a place freed by a closed connection is taken again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listeners_connection_limit_closes_new_connections_at_the_cap() {
    let port = free_port();
    let (_dir, host) = start(
        port,
        json!({}),
        json!({ "layered_runtime": { "layers": [{
            "name": "static",
            "static_layer": { "envoy.resource_limits.listener.main.connection_limit": 2 }
        }] } }),
    );
    the_cap_holds(local(port), 2).await;
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_connections_closes_new_connections_beyond_the_global_cap() {
    let host = MeshHost::run(&component("hello"), &["--max-connections", "3"]);
    assert!(
        host.wait_for_log("downstream connection limit max=3"),
        "{}",
        host.log()
    );
    the_cap_holds(host.addr, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overload_managers_global_downstream_max_connections_caps_every_listener() {
    let port = free_port();
    let (_dir, host) = start(
        port,
        json!({}),
        json!({ "overload_manager": { "resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 2
            }
        }] } }),
    );
    assert!(
        host.wait_for_log("downstream connection limit max=2"),
        "{}",
        host.log()
    );
    the_cap_holds(local(port), 2).await;
}
