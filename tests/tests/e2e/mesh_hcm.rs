//! The HTTP connection manager settings of mesh listeners, against real
//! clients: `codec_type`, `stream_idle_timeout`, `request_timeout`,
//! `use_remote_address` (x-forwarded-for), the `server` header, and filter
//! chains chosen by TLS server name (SNI), each with its own certificate and
//! route table, client certificates (mTLS) and the identity RBAC reads from
//! them. The expected answers are those Envoy 1.40 gives for the same
//! configuration.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_host_tests::client::{self, TestBody};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;
use mesh_host_tests::{component, peers};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

const HELLO: &str = "Hello from mesh-host!\n";

// ---- bootstrap pieces -------------------------------------------------

/// A route configuration sending every request to `cluster`.
fn route_to(cluster: &str) -> Value {
    json!({
        "virtual_hosts": [{
            "name": "all",
            "domains": ["*"],
            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster } }]
        }]
    })
}

/// A route configuration answering every request with `body`: tells which
/// filter chain's route table served a request.
fn answer(body: &str) -> Value {
    json!({
        "virtual_hosts": [{
            "name": "all",
            "domains": ["*"],
            "routes": [{
                "match": { "prefix": "/" },
                "direct_response": { "status": 200, "body": { "inline_string": body } }
            }]
        }]
    })
}

/// A filter chain with one connection manager: `settings` are merged into
/// its typed config.
fn chain(settings: Value, route_config: Value) -> Value {
    let mut manager = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "test",
        "route_config": route_config,
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
        }]
    });
    if let (Some(manager), Value::Object(settings)) = (manager.as_object_mut(), settings) {
        manager.extend(settings);
    }
    json!({
        "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": manager
        }]
    })
}

/// `chain` terminating TLS with `cert` and offering `alpn`, for the
/// `server_names` given (none: any name).
fn tls_chain(server_names: &[&str], cert: &TestCert, alpn: &[&str], routes: Value) -> Value {
    let mut chain = chain(json!({}), routes);
    chain["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": { "filename": cert.cert.display().to_string() },
                    "private_key": { "filename": cert.key.display().to_string() }
                }],
                "alpn_protocols": alpn
            }
        }
    });
    if !server_names.is_empty() {
        chain["filter_chain_match"] = json!({ "server_names": server_names });
    }
    chain
}

/// `tls_chain` serving `server`'s certificate for any name and verifying
/// client certificates against the CA bundle `client_ca`; `required`
/// refuses clients without one.
fn mtls_chain(server: &TestCert, client_ca: &Path, required: bool, routes: Value) -> Value {
    let mut chain = tls_chain(&[], server, &[], routes);
    let context = &mut chain["transport_socket"]["typed_config"];
    context["common_tls_context"]["validation_context"] =
        json!({ "trusted_ca": { "filename": client_ca.display().to_string() } });
    context["require_client_certificate"] = json!(required);
    chain
}

fn listener(name: &str, port: u16, chains: Vec<Value>, default: Option<Value>) -> Value {
    let mut listener = json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": chains
    });
    if let Some(default) = default {
        listener["default_filter_chain"] = default;
    }
    listener
}

/// mesh-host serving `listeners`, with each named component bound to the
/// cluster of the same name. The directory holds the bootstrap.
fn start(listeners: Vec<Value>, components: &[&str]) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_bootstrap(dir.path(), listeners);
    let mut args = vec![
        "run".to_owned(),
        "--bootstrap".to_owned(),
        path.display().to_string(),
    ];
    for name in components {
        args.push("--workload".to_owned());
        args.push(format!("{name}={}", component(name).display()));
    }
    let host = MeshHost::spawn(&args);
    (dir, host)
}

/// Writes `dir/bootstrap.json` with `listeners` as its static resources.
fn write_bootstrap(dir: &Path, listeners: Vec<Value>) -> std::path::PathBuf {
    let path = dir.join("bootstrap.json");
    let bootstrap = json!({
        "node": { "id": "mesh-hcm", "cluster": "test" },
        "static_resources": { "listeners": listeners }
    });
    std::fs::write(&path, bootstrap.to_string()).expect("write bootstrap");
    path
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---- clients ----------------------------------------------------------

/// curl's `%{http_code} %{http_version}`, or its error output when it
/// fails (the server refused the protocol).
async fn curl(args: &[&str]) -> Result<String, String> {
    let curl = peers::require("curl").expect("curl");
    let output = Command::new(curl)
        .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn get(path: &str) -> Request<TestBody> {
    Request::get(path)
        .header("host", "hcm.test")
        .body(client::empty())
        .expect("request")
}

/// HTTP/1.1 over a fresh connection, or the error if the server would not
/// speak it.
async fn try_http1(addr: SocketAddr, request: Request<TestBody>) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// h2c with prior knowledge over a fresh connection, or the error.
async fn try_h2c(addr: SocketAddr, request: Request<TestBody>) -> Result<u16, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// Sends a POST head declaring `declared` body bytes, then `sent` bytes
/// one every `gap`, and reads whatever the server answers until it closes
/// the connection. Returns the raw answer and when it started arriving.
async fn trickle_post(
    addr: SocketAddr,
    path: &str,
    declared: usize,
    sent: usize,
    gap: Duration,
) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    // `connection: close`: the server ends the connection after answering,
    // which tells this reader the answer is complete.
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: hcm.test\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("send head");
    let started = Instant::now();
    let feeder = tokio::spawn(async move {
        for _ in 0..sent {
            tokio::time::sleep(gap).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
        // Keep the write side open: the server decides when it is over.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut answer = Vec::new();
    let mut first_byte_at = None;
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => {
                first_byte_at.get_or_insert_with(|| started.elapsed());
                answer.extend_from_slice(&buffer[..read]);
            }
            Err(_) => panic!(
                "the server neither answered nor closed within 20 s; got {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    feeder.abort();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        first_byte_at.unwrap_or_else(|| started.elapsed()),
    )
}

/// GET `path` over a TLS stream with HTTP/1.1; the body as text.
async fn get_over_tls(stream: tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 over TLS");
    tokio::spawn(connection);
    let response = sender.send_request(get("/")).await.expect("request");
    let (status, _, body, _) = client::read_all(response).await;
    assert_eq!(status.as_u16(), 200);
    String::from_utf8_lossy(&body).into_owned()
}

/// GET / over TLS to `port`, trusting `server` and presenting `client`'s
/// certificate if given: the body, or why the connection or request failed.
async fn over_mtls(
    port: u16,
    server: &TestCert,
    client: Option<&TestCert>,
) -> Result<String, String> {
    mtls_request(port, server, client, http::Method::GET).await
}

/// [`over_mtls`] with `method`.
async fn mtls_request(
    port: u16,
    server: &TestCert,
    client: Option<&TestCert>,
    method: http::Method,
) -> Result<String, String> {
    let (stream, _) = server
        .try_connect_as(local(port), "localhost", &[b"http/1.1"], client)
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP/1.1: {error}"))?;
    tokio::spawn(connection);
    let mut request = get("/");
    *request.method_mut() = method;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("request: {error}"))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("body: {error}"))?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

// ---- tests --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn codec_http1_refuses_h2c_and_http2_refuses_http1() {
    let (auto, http1, http2) = (free_port(), free_port(), free_port());
    let (_dir, _host) = start(
        vec![
            listener(
                "auto",
                auto,
                vec![chain(json!({}), route_to("hello"))],
                None,
            ),
            listener(
                "http1",
                http1,
                vec![chain(json!({ "codec_type": "HTTP1" }), route_to("hello"))],
                None,
            ),
            listener(
                "http2",
                http2,
                vec![chain(json!({ "codec_type": "HTTP2" }), route_to("hello"))],
                None,
            ),
        ],
        &["hello"],
    );
    let url = |port: u16| format!("http://127.0.0.1:{port}/");

    // AUTO serves both on one port: the refusals below are the codec's.
    assert_eq!(
        curl(&["--http1.1", &url(auto)]).await.as_deref(),
        Ok("200 1.1")
    );
    assert_eq!(
        curl(&["--http2-prior-knowledge", &url(auto)])
            .await
            .as_deref(),
        Ok("200 2")
    );

    assert_eq!(
        curl(&["--http1.1", &url(http1)]).await.as_deref(),
        Ok("200 1.1")
    );
    let refused = curl(&["--http2-prior-knowledge", &url(http1)]).await;
    assert!(refused.is_err(), "HTTP1 codec served h2c: {refused:?}");
    // nghttp exits 0 either way; what it printed tells.
    let nghttp = |port: u16| async move {
        let output = Command::new(peers::require("nghttp").expect("nghttp"))
            .args(["-t", "10", &url(port)])
            .output()
            .await
            .expect("nghttp");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    };
    assert_eq!(nghttp(auto).await, HELLO);
    let refused = nghttp(http1).await;
    assert!(
        !refused.contains(HELLO) && refused.contains("not processed"),
        "nghttp got an answer over h2c from an HTTP1 listener: {refused}"
    );
    assert!(try_h2c(local(http1), get("/")).await.is_err());
    assert_eq!(try_http1(local(http1), get("/")).await, Ok(200));

    assert_eq!(
        curl(&["--http2-prior-knowledge", &url(http2)])
            .await
            .as_deref(),
        Ok("200 2")
    );
    let refused = curl(&["--http1.1", &url(http2)]).await;
    assert!(refused.is_err(), "HTTP2 codec served HTTP/1.1: {refused:?}");
    assert!(try_http1(local(http2), get("/")).await.is_err());
    assert_eq!(try_h2c(local(http2), get("/")).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_idle_and_request_timeouts_answer_as_envoy_does() {
    let port = free_port();
    let (_dir, _host) = start(
        vec![listener(
            "timers",
            port,
            vec![chain(
                json!({ "stream_idle_timeout": "1s", "request_timeout": "3s" }),
                route_to("slow"),
            )],
            None,
        )],
        &["slow"],
    );
    let addr = local(port);

    // The request arrived whole, the component stays silent past the idle
    // timeout: 504 "stream timeout" (Envoy: maybeRequestTimeoutCode).
    for h2 in [false, true] {
        let request = get("/?sleep_ms=6000&chunks=1");
        let started = Instant::now();
        let response = if h2 {
            client::h2c(addr, request).await
        } else {
            client::http1(addr, request).await
        };
        let (status, headers, body, _) = client::read_all(response).await;
        let took = started.elapsed();
        assert_eq!(status.as_u16(), 504, "h2={h2}");
        assert_eq!(String::from_utf8_lossy(&body).trim_end(), "stream timeout");
        assert_eq!(
            header(&headers, "x-mesh-host-reason"),
            Some("stream_idle_timeout")
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "h2={h2}: answered after {took:?}, the idle timeout is 1 s"
        );
    }

    // The body stalls after one byte: 408 "stream timeout", connection closed.
    let (answer, at) = trickle_post(addr, "/?sleep_ms=6000", 100, 1, Duration::ZERO).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("stream timeout"), "{answer}");
    assert!(
        at >= Duration::from_millis(900) && at < Duration::from_secs(3),
        "answered after {at:?}, the idle timeout is 1 s"
    );

    // The body keeps coming (a byte every 250 ms: never idle) but takes 5 s:
    // 408 "request timeout" at the 3 s request timeout.
    let (answer, at) =
        trickle_post(addr, "/?sleep_ms=8000", 20, 20, Duration::from_millis(250)).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.ends_with("request timeout"), "{answer}");
    assert!(
        at >= Duration::from_millis(2900) && at < Duration::from_millis(4500),
        "answered after {at:?}, the request timeout is 3 s"
    );

    // A whole body sent at once, then a component answering within the idle
    // timeout: neither timer fires.
    let (answer, _) = trickle_post(
        addr,
        "/?sleep_ms=300&chunks=1&chunk=done",
        1,
        1,
        Duration::ZERO,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // A response body that keeps flowing (every 400 ms for 2.4 s) outlives
    // the 1 s idle timeout...
    let response = client::http1(addr, get("/?chunks=7&delay_ms=400&chunk=x")).await;
    let (status, _, body, _) = client::read_all(response).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from("xxxxxxx")));

    // ...and one that stalls after its head is reset: the head arrived, the
    // body fails (HTTP/1.1: connection closed; HTTP/2: stream reset).
    for h2 in [false, true] {
        let request = get("/?chunks=3&delay_ms=3000&chunk=x");
        let response = if h2 {
            client::h2c(addr, request).await
        } else {
            client::http1(addr, request).await
        };
        assert_eq!(response.status().as_u16(), 200, "h2={h2}");
        let started = Instant::now();
        let outcome = response.into_body().collect().await;
        assert!(outcome.is_err(), "h2={h2}: the stalled body completed");
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "h2={h2}: reset after {:?}, the idle timeout is 1 s",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_and_the_server_header_follow_the_connection_manager() {
    let (edge, internal, pass) = (free_port(), free_port(), free_port());
    let (_dir, _host) = start(
        vec![
            listener(
                "edge",
                edge,
                vec![chain(
                    json!({ "use_remote_address": true }),
                    route_to("echo"),
                )],
                None,
            ),
            listener(
                "internal",
                internal,
                vec![chain(
                    json!({ "use_remote_address": false, "server_name": "internal-proxy" }),
                    route_to("echo"),
                )],
                None,
            ),
            listener(
                "pass",
                pass,
                vec![chain(
                    json!({ "server_header_transformation": "PASS_THROUGH" }),
                    route_to("echo"),
                )],
                None,
            ),
        ],
        &["echo"],
    );
    let forwarded = |extra: &[(&str, &str)]| {
        let mut request = Request::get("/").header("host", "hcm.test");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.body(client::empty()).expect("request")
    };
    let spoofed = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-envoy-retry-on", "5xx"),
        ("x-forwarded-client-cert", "By=spiffe://mesh/admin;Hash=0"),
    ];

    // use_remote_address: the peer is appended and trusted; a client's
    // x-forwarded-proto and Envoy control headers are not.
    for h2 in [false, true] {
        let response = if h2 {
            client::h2c(local(edge), forwarded(&spoofed)).await
        } else {
            client::http1(local(edge), forwarded(&spoofed)).await
        };
        let (status, headers, _, _) = client::read_all(response).await;
        assert_eq!(status.as_u16(), 200);
        assert_eq!(
            header(&headers, "x-echo-req-x-forwarded-for"),
            Some("203.0.113.7,127.0.0.1"),
            "h2={h2}"
        );
        assert_eq!(
            header(&headers, "x-echo-req-x-envoy-external-address"),
            Some("127.0.0.1")
        );
        assert_eq!(
            header(&headers, "x-echo-req-x-forwarded-proto"),
            Some("http")
        );
        assert_eq!(header(&headers, "x-echo-req-x-envoy-retry-on"), None);
        assert_eq!(
            header(&headers, "x-echo-req-x-forwarded-client-cert"),
            None,
            "sanitized, as Envoy's forward_client_cert_details default"
        );
        assert_eq!(
            header(&headers, "server"),
            Some("mesh-host"),
            "no server_name: mesh-host's own name, overwriting"
        );
    }
    let (_, headers, _, _) =
        client::read_all(client::http1(local(edge), forwarded(&[])).await).await;
    assert_eq!(
        header(&headers, "x-echo-req-x-forwarded-for"),
        Some("127.0.0.1")
    );

    // Without it, x-forwarded-for and x-forwarded-proto are the client's.
    let (_, headers, _, _) =
        client::read_all(client::http1(local(internal), forwarded(&spoofed)).await).await;
    assert_eq!(
        header(&headers, "x-echo-req-x-forwarded-for"),
        Some("203.0.113.7")
    );
    assert_eq!(
        header(&headers, "x-echo-req-x-forwarded-proto"),
        Some("https")
    );
    assert_eq!(
        header(&headers, "x-echo-req-x-envoy-external-address"),
        None
    );
    assert_eq!(header(&headers, "x-echo-req-x-envoy-retry-on"), None);
    assert_eq!(header(&headers, "x-echo-req-x-forwarded-client-cert"), None);
    assert_eq!(header(&headers, "server"), Some("internal-proxy"));
    let (_, headers, _, _) =
        client::read_all(client::http1(local(internal), forwarded(&[])).await).await;
    assert_eq!(header(&headers, "x-echo-req-x-forwarded-for"), None);
    assert_eq!(
        header(&headers, "x-echo-req-x-forwarded-proto"),
        Some("http"),
        "set from the connection when absent"
    );

    // The host's own answers carry the server header too (gRPC over
    // HTTP/1.1 is refused by the front end itself).
    let refused = Request::post("/")
        .header("host", "hcm.test")
        .header("content-type", "application/grpc")
        .body(client::empty())
        .expect("request");
    let (status, headers, _, _) =
        client::read_all(client::http1(local(internal), refused).await).await;
    assert_eq!(
        header(&headers, "x-mesh-host-reason"),
        Some("grpc_requires_http2"),
        "{status}"
    );
    assert_eq!(header(&headers, "server"), Some("internal-proxy"));

    let (_, headers, _, _) =
        client::read_all(client::http1(local(pass), forwarded(&[])).await).await;
    assert_eq!(header(&headers, "server"), None, "PASS_THROUGH adds none");
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_chains_are_chosen_by_sni_with_their_certificate_and_routes() {
    let a = TestCert::for_names(&["a.test"]);
    let b = TestCert::for_names(&["*.b.test"]);
    let fallback = TestCert::for_names(&["default.test", "other.test"]);
    // Valid for other.test too: were the strict listener to serve its only
    // chain for other.test, a client trusting this would get through.
    let strict_a = TestCert::for_names(&["a.test", "other.test"]);
    let (sni, strict) = (free_port(), free_port());
    let (_dir, _host) = start(
        vec![
            listener(
                "sni",
                sni,
                vec![
                    tls_chain(&["a.test"], &a, &["h2", "http/1.1"], answer("chain a")),
                    tls_chain(&["*.b.test"], &b, &[], answer("chain b")),
                ],
                Some(tls_chain(&[], &fallback, &[], answer("default chain"))),
            ),
            listener(
                "strict",
                strict,
                vec![
                    tls_chain(&["a.test"], &strict_a, &[], answer("strict a")),
                    chain(json!({}), answer("plaintext")),
                ],
                None,
            ),
        ],
        // The routes answer directly; a workload is only there because a
        // bootstrap run needs one.
        &["hello"],
    );
    let http11: &[&[u8]] = &[b"http/1.1"];

    // Exact name: chain a's certificate (only it is trusted) and routes.
    let (stream, _) = a
        .try_connect(local(sni), "a.test", http11)
        .await
        .expect("a.test is served with a.test's certificate");
    assert_eq!(get_over_tls(stream).await, "chain a");
    assert!(
        b.try_connect(local(sni), "a.test", http11).await.is_err(),
        "a.test must not get *.b.test's certificate"
    );

    // Wildcard: any name under b.test.
    let (stream, _) = b
        .try_connect(local(sni), "api.b.test", http11)
        .await
        .expect("api.b.test is served with *.b.test's certificate");
    assert_eq!(get_over_tls(stream).await, "chain b");
    assert!(
        a.try_connect(local(sni), "api.b.test", http11)
            .await
            .is_err()
    );

    // No chain names it: the default chain.
    let (stream, _) = fallback
        .try_connect(local(sni), "other.test", http11)
        .await
        .expect("other.test goes to the default chain");
    assert_eq!(get_over_tls(stream).await, "default chain");

    // ALPN is each chain's own: chain a offers h2, chain b offers nothing.
    let (_, alpn) = a
        .try_connect(local(sni), "a.test", &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (_, alpn) = b
        .try_connect(local(sni), "x.b.test", &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(alpn, None);

    // curl with --resolve, as a browser would reach the names.
    let body = |name: &str, cert: &TestCert| {
        [
            "--cacert".to_owned(),
            cert.cert.display().to_string(),
            "--resolve".to_owned(),
            format!("{name}:{sni}:127.0.0.1"),
            format!("https://{name}:{sni}/"),
        ]
    };
    let args = body("a.test", &a);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        curl(&args).await.as_deref(),
        Ok("200 2"),
        "h2 through chain a's ALPN"
    );
    let curl_body = Command::new(peers::require("curl").expect("curl"))
        .args(["-sS", "--max-time", "10"])
        .args(&args)
        .output()
        .await
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&curl_body.stdout), "chain a");
    let args = body("www.b.test", &b);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        curl(&args).await.as_deref(),
        Ok("200 1.1"),
        "chain b offers no ALPN"
    );

    // No match and no default chain: the connection is closed.
    let closed = strict_a
        .try_connect(local(strict), "other.test", http11)
        .await;
    assert!(
        closed.is_err(),
        "other.test was served on the strict listener"
    );
    let (stream, _) = strict_a
        .try_connect(local(strict), "a.test", http11)
        .await
        .expect("a.test on the strict listener");
    assert_eq!(get_over_tls(stream).await, "strict a");
    // The same port serves plaintext through its plaintext chain.
    let response = client::http1(local(strict), get("/")).await;
    let (status, _, body, _) = client::read_all(response).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from("plaintext")));
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_verified_against_the_trusted_ca() {
    let server = TestCert::for_names(&["localhost"]);
    let client = TestCert::for_names(&["client.test"]);
    let stranger = TestCert::for_names(&["client.test"]);
    let (required, optional) = (free_port(), free_port());
    let (_dir, _host) = start(
        vec![
            listener(
                "required",
                required,
                vec![mtls_chain(&server, &client.cert, true, answer("verified"))],
                None,
            ),
            listener(
                "optional",
                optional,
                vec![mtls_chain(&server, &client.cert, false, answer("served"))],
                None,
            ),
        ],
        &["hello"],
    );

    // require_client_certificate: only a certificate from the trusted CA.
    assert_eq!(
        over_mtls(required, &server, Some(&client)).await,
        Ok("verified".to_owned())
    );
    let without = over_mtls(required, &server, None).await;
    assert!(
        without.is_err(),
        "no certificate must be refused: {without:?}"
    );
    let untrusted = over_mtls(required, &server, Some(&stranger)).await;
    assert!(
        untrusted.is_err(),
        "an untrusted certificate must be refused: {untrusted:?}"
    );

    // Not required: a client may go without, but what it presents must verify.
    assert_eq!(
        over_mtls(optional, &server, Some(&client)).await,
        Ok("served".to_owned())
    );
    assert_eq!(
        over_mtls(optional, &server, None).await,
        Ok("served".to_owned())
    );
    let untrusted = over_mtls(optional, &server, Some(&stranger)).await;
    assert!(
        untrusted.is_err(),
        "an untrusted certificate must be refused: {untrusted:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_reads_the_verified_client_certificate_uri_san_first_then_its_dns_san() {
    let server = TestCert::for_names(&["localhost"]);
    let admin = TestCert::for_uri("spiffe://mesh.test/ns/default/sa/admin");
    let reader = TestCert::for_names(&["reader.test"]);
    let stranger = TestCert::for_uri("spiffe://mesh.test/ns/default/sa/stranger");
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("clients.pem");
    std::fs::write(
        &bundle,
        [admin.pem(), reader.pem(), stranger.pem()].concat(),
    )
    .expect("write CA bundle");
    let port = free_port();
    let chain = mtls_chain(&server, &bundle, false, route_to("hello"));
    write_bootstrap(dir.path(), vec![listener("mtls", port, vec![chain], None)]);
    let config = dir.path().join("mesh.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
bootstrap: bootstrap.json
workloads:
- name: hello
  component: {}
  clusters: [hello]
  policy:
    rbac:
      action: ALLOW
      policies:
        admins:
          permissions: [{{ any: true }}]
          principals: [{{ authenticated: {{ principal_name: {{ exact: "spiffe://mesh.test/ns/default/sa/admin" }} }} }}]
        readers:
          permissions: [{{ method: GET }}]
          principals: [{{ authenticated: {{ principal_name: {{ suffix: .test }} }} }}]
"#,
            component("hello").display()
        ),
    )
    .expect("write config");
    let _host = MeshHost::spawn(&[
        "run".into(),
        "--config".into(),
        config.display().to_string(),
    ]);

    let denied = Ok("RBAC: access denied".to_owned());
    let send = |client, method| mtls_request(port, &server, client, method);
    assert_eq!(
        send(Some(&admin), http::Method::POST).await,
        Ok(HELLO.to_owned())
    );
    // No URI SAN: the DNS SAN is the principal.
    assert_eq!(
        send(Some(&reader), http::Method::GET).await,
        Ok(HELLO.to_owned())
    );
    assert_eq!(send(Some(&reader), http::Method::POST).await, denied);
    // The URI SAN comes first: `spiffe://mesh.test/...` does not end in `.test`.
    assert_eq!(send(Some(&stranger), http::Method::GET).await, denied);
    assert_eq!(
        send(None, http::Method::GET).await,
        denied,
        "no certificate, no principal"
    );
}
