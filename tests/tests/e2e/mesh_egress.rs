//! The mesh egress path end to end: the `outbound` component calls out
//! through mesh-host, whose egress listener routes by authority to clusters
//! of real upstreams (native HTTP servers, a tonic gRPC server, a real Envoy
//! as egress gateway). Policy and routing refuse before any connection.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use mesh_host_tests::bootstrap::{HCM, ROUTER, http_listener, static_cluster};
use mesh_host_tests::client;
use mesh_host_tests::echo_upstream::{Echo, EchoUpstream};
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::proto::helloworld::greeter_server::{Greeter, GreeterServer};
use mesh_host_tests::proto::helloworld::{HelloReply, HelloRequest};
use mesh_host_tests::tls::TestCert;
use mesh_host_tests::upstream::{Behaviour, Upstream};
use mesh_host_tests::{Kind, component, for_each_kind, peers};
use prost::Message;

/// The inbound listener routing everything to the `client` workload.
fn inbound(port: u16) -> String {
    http_listener(
        "inbound",
        port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: client } }] }]"#,
    )
}

/// The egress listener (virtual: `traffic_direction: OUTBOUND`, no socket).
fn egress(virtual_hosts: &str) -> String {
    http_listener(
        "egress",
        15001,
        "traffic_direction: OUTBOUND",
        virtual_hosts,
    )
}

fn bootstrap(listeners: &[String], clusters: &[String]) -> String {
    format!(
        "static_resources:\n  listeners:{}\n  clusters:{}\n",
        listeners.concat(),
        if clusters.is_empty() {
            " []".to_owned()
        } else {
            clusters.concat()
        }
    )
}

/// mesh-host on `bootstrap` with the `outbound` component of `kind` as
/// workload `client`, plus `flags`.
fn start(kind: Kind, bootstrap: &str, flags: &[&str]) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let mut args = vec![
        "run".to_owned(),
        "--bootstrap".to_owned(),
        path.display().to_string(),
        "--workload".to_owned(),
        format!("client={}", kind.component("outbound").display()),
    ];
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    (dir, MeshHost::spawn(&args))
}

/// An upstream named `upstream` as cluster `upstream`, the egress listener
/// with `egress_vhosts`, and mesh-host allowing `allow`.
async fn with_upstream(
    kind: Kind,
    egress_vhosts: &str,
    allow: &str,
) -> (Upstream, tempfile::TempDir, MeshHost) {
    let upstream = Upstream::start("upstream").await;
    let config = bootstrap(
        &[inbound(free_port()), egress(egress_vhosts)],
        &[static_cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (dir, host) = start(kind, &config, &["--egress-allow", allow]);
    (upstream, dir, host)
}

/// What the `outbound` component reported for one call.
struct Called {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Called {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn denied(&self) -> bool {
        self.status == StatusCode::BAD_GATEWAY
            && self.header("x-outbound-error") == "HTTP-request-denied"
    }
}

/// Asks the component (through `host`, over h2c so its trailers come back)
/// to call `url`.
async fn call(host: &MeshHost, url: &str, request: http::request::Builder, body: Bytes) -> Called {
    let request = request
        .uri("/")
        .header("host", "client.test")
        .header("te", "trailers")
        .header("x-target-url", url)
        .body(client::full(body))
        .expect("request");
    let (status, headers, body, trailers) =
        client::read_all(client::h2c(host.addr, request).await).await;
    Called {
        status,
        headers,
        body,
        trailers,
    }
}

async fn get(host: &MeshHost, url: &str) -> Called {
    call(host, url, Request::get("/"), Bytes::new()).await
}

for_each_kind! {
async fn without_an_egress_listener_everything_is_denied_before_any_connection(kind: Kind) {
    let upstream = Upstream::start("upstream").await;
    let port = free_port();
    let config = bootstrap(
        &[inbound(port)],
        &[static_cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (_dir, host) = start(kind, &config, &["--egress-allow", "upstream.test"]);

    let called = get(&host, "http://upstream.test/").await;
    assert!(
        called.denied(),
        "status {} {:?}",
        called.status,
        called.body
    );
    let addr = format!("http://{}/", upstream.addr);
    assert!(get(&host, &addr).await.denied());
    assert_eq!(upstream.connections(), 0, "the upstream saw a connection");
    assert!(
        host.wait_for_log("no egress listener is configured"),
        "{}",
        host.log()
    );
}
}

for_each_kind! {
async fn policy_allows_listed_authorities_and_refuses_the_rest_ip_literals_and_metadata(kind: Kind) {
    let (upstream, _dir, host) = with_upstream(
        kind,
        r#"[{ name: any, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: upstream } }] }]"#,
        "upstream.test",
    )
    .await;

    let allowed = get(&host, "http://upstream.test/allowed?q=1").await;
    assert_eq!(allowed.status, StatusCode::OK, "{:?}", allowed.body);
    assert_eq!(allowed.header("x-upstream-status"), "200");
    assert_eq!(
        allowed.header("x-upstream-h-x-upstream-authority"),
        "upstream.test"
    );
    assert_eq!(allowed.body, "upstream GET /allowed?q=1");

    for refused in [
        "http://other.test/",
        &format!("http://{}/", upstream.addr),
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/",
    ] {
        let called = get(&host, refused).await;
        assert!(
            called.denied(),
            "{refused}: status {} {:?}",
            called.status,
            called.body
        );
    }
    assert_eq!(upstream.requests(), 1, "only the allowed request arrived");
    assert_eq!(upstream.connections(), 1);
    assert!(host.wait_for_log("169.254.169.254"), "{}", host.log());
}
}

for_each_kind! {
async fn an_authority_without_an_egress_route_is_denied(kind: Kind) {
    let (upstream, _dir, host) = with_upstream(
        kind,
        r#"[{ name: up, domains: ["upstream.test"], routes: [{ match: { prefix: /api }, route: { cluster: upstream } }] }]"#,
        "*.test",
    )
    .await;

    assert_eq!(
        get(&host, "http://upstream.test/api/x").await.status,
        StatusCode::OK
    );
    // Allowed by policy, but the mesh routes neither this host nor this path.
    assert!(get(&host, "http://elsewhere.test/api/x").await.denied());
    assert!(get(&host, "http://upstream.test/other").await.denied());
    assert_eq!(upstream.requests(), 1);
    assert!(
        host.wait_for_log("no route of egress listener"),
        "{}",
        host.log()
    );
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sequential_outbound_requests_use_a_handful_of_connections() {
    let (upstream, _dir, host) = with_upstream(
        Kind::P2,
        r#"[{ name: up, domains: ["upstream.test"], routes: [{ match: { prefix: / }, route: { cluster: upstream } }] }]"#,
        "upstream.test",
    )
    .await;

    for i in 0..1000 {
        let called = get(&host, &format!("http://upstream.test/n/{i}")).await;
        assert_eq!(
            called.status,
            StatusCode::OK,
            "request {i}: {:?}",
            called.body
        );
        assert_eq!(called.body, format!("upstream GET /n/{i}"));
    }
    assert_eq!(upstream.requests(), 1000);
    let connections = upstream.connections();
    assert!(
        (1..=4).contains(&connections),
        "1000 requests opened {connections} upstream connections"
    );
}

#[derive(Default)]
struct NativeGreeter;

#[tonic::async_trait]
impl Greeter for NativeGreeter {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let mut response = tonic::Response::new(HelloReply {
            message: format!("Hello {} from tonic", request.into_inner().name),
        });
        response.metadata_mut().insert(
            "x-native",
            tonic::metadata::MetadataValue::from_static("yes"),
        );
        Ok(response)
    }
}

/// The component calls `SayHello` on the greeter through egress.
async fn say_hello(host: &MeshHost) -> Called {
    call(
        host,
        "http://greeter.test/helloworld.Greeter/SayHello",
        Request::post("/")
            .header("x-target-method", "POST")
            .header("x-target-content-type", "application/grpc")
            .header("x-target-header-te", "trailers"),
        grpc_frame(&HelloRequest {
            name: "component".into(),
        }),
    )
    .await
}

fn grpc_frame(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&encoded);
    Bytes::from(frame)
}

for_each_kind! {
async fn outbound_grpc_reaches_a_native_tonic_server_over_http2_and_needs_the_grpc_flag(kind: Kind) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let greeter_port = listener.local_addr().expect("addr").port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(NativeGreeter))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let port = free_port();
    // The cluster says nothing about HTTP/2: gRPC requests use it anyway.
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: greeter, domains: ["greeter.test"], routes: [{ match: { prefix: / }, route: { cluster: greeter } }] }]"#,
            ),
        ],
        &[static_cluster("greeter", &[greeter_port], "")],
    );
    let (_dir, mut host) = start(
        kind,
        &config,
        &["--egress-allow", "greeter.test", "--grpc-outbound"],
    );
    let called = say_hello(&host).await;
    assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
    assert_eq!(called.header("x-upstream-status"), "200");
    assert_eq!(
        called.header("x-upstream-h-content-type"),
        "application/grpc"
    );
    assert_eq!(called.header("x-upstream-h-x-native"), "yes");
    let trailers = called.trailers.expect("upstream trailers relayed");
    assert_eq!(
        trailers.get("x-upstream-t-grpc-status").and_then(|v| v.to_str().ok()),
        Some("0"),
        "{trailers:?}"
    );
    let reply = HelloReply::decode(&called.body[5..]).expect("a HelloReply frame");
    assert_eq!(reply.message, "Hello component from tonic");
    // The next host takes the same port, which a draining host keeps until it exits.
    host.terminate();
    host.wait(Duration::from_secs(30))
        .expect("the first host exits after its drain");

    let (_dir, host) = start(kind, &config, &["--egress-allow", "greeter.test"]);
    let refused = say_hello(&host).await;
    assert!(
        refused.denied(),
        "status {} {:?}",
        refused.status,
        refused.body
    );
    assert!(host.wait_for_log("grpc.outbound"), "log names the flag");
}
}

/// An HTTP connection manager's `access_log` entry (at its indentation)
/// writing `format` lines to `path`.
fn file_access_log(path: &std::path::Path, format: &str) -> String {
    format!(
        r#"access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {}
              log_format: {{ text_format_source: {{ inline_string: "{format}\n" }} }}"#,
        path.display()
    )
}

/// Envoy's access log once it has `lines` lines (Envoy flushes it
/// periodically), or whatever it has after 10 s.
async fn access_log_lines(path: &std::path::Path, lines: usize) -> String {
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(path).unwrap_or_default();
        if log.lines().count() >= lines {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_egress_gateway_routes_on_the_authority_mesh_host_preserved() {
    if peers::envoy().is_none() {
        return;
    }
    let a = Upstream::start("service-a").await;
    let b = Upstream::start("service-b").await;
    let gateway_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let access_log = dir.path().join("access.log");
    let gateway = format!(
        r#"
static_resources:
  listeners:
  - name: egress-gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {gateway_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: gateway
          {access_log}
          route_config:
            virtual_hosts:
            - {{ name: a, domains: ["a.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: a }} }}] }}
            - {{ name: b, domains: ["b.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: b }} }}] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
  clusters:{clusters}
"#,
        access_log = file_access_log(
            &access_log,
            "authority=%REQ(:AUTHORITY)% cluster=%UPSTREAM_CLUSTER%"
        ),
        clusters = [
            static_cluster("a", &[a.addr.port()], ""),
            static_cluster("b", &[b.addr.port()], "")
        ]
        .concat(),
    );
    let _envoy = Envoy::start(&gateway).await.expect("envoy gateway");

    let port = free_port();
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: external, domains: ["*.test"], routes: [{ match: { prefix: / }, route: { cluster: egress-gateway } }] }]"#,
            ),
        ],
        &[static_cluster("egress-gateway", &[gateway_port], "")],
    );
    let (_mesh_dir, host) = start(Kind::P2, &config, &["--egress-allow", "*.test"]);

    let to_a = get(&host, "http://a.test/from-component").await;
    assert_eq!(to_a.status, StatusCode::OK, "{:?}", to_a.body);
    assert_eq!(to_a.body, "service-a GET /from-component");
    let to_b = get(&host, "http://b.test/other").await;
    assert_eq!(to_b.body, "service-b GET /other");
    assert_eq!(to_b.header("x-upstream-h-x-upstream-authority"), "b.test");

    let log = access_log_lines(&access_log, 2).await;
    assert!(
        log.contains("authority=a.test cluster=a"),
        "access log: {log}"
    );
    assert!(
        log.contains("authority=b.test cluster=b"),
        "access log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_mtls_from_the_cluster_transport_socket_with_sni_and_a_client_certificate() {
    if peers::envoy().is_none() {
        return;
    }
    let server = TestCert::for_names(&["backend.internal"]);
    let client_cert = TestCert::for_names(&["mesh-host.client"]);
    let tls_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let access_log = dir.path().join("access.log");
    // A real Envoy terminates TLS, requires a client certificate signed by
    // (here: equal to) the mesh client's, and logs the SNI it was sent.
    let upstream = format!(
        r#"
static_resources:
  listeners:
  - name: tls-upstream
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {tls_port} }} }}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {{ filename: {server_cert} }}
              private_key: {{ filename: {server_key} }}
            validation_context:
              trusted_ca: {{ filename: {client_ca} }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: tls
          {access_log}
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "over mtls" }} }} }}] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
  clusters: []
"#,
        server_cert = server.cert.display(),
        server_key = server.key.display(),
        client_ca = client_cert.cert.display(),
        access_log = file_access_log(
            &access_log,
            "sni=%REQUESTED_SERVER_NAME% authority=%REQ(:AUTHORITY)% protocol=%PROTOCOL%"
        ),
    );
    let _envoy = Envoy::start(&upstream).await.expect("envoy TLS upstream");

    let tls_socket = |with_client_cert: bool| {
        let certificates = if with_client_cert {
            format!(
                "tls_certificates: [{{ certificate_chain: {{ filename: {} }}, private_key: {{ filename: {} }} }}],",
                client_cert.cert.display(),
                client_cert.key.display()
            )
        } else {
            String::new()
        };
        format!(
            r#"transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: backend.internal, common_tls_context: {{ {certificates} validation_context: {{ trusted_ca: {{ filename: {} }} }} }} }} }}"#,
            server.cert.display()
        )
    };
    let port = free_port();
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: secure, domains: ["secure.test"], routes: [{ match: { prefix: / }, route: { cluster: secure } }] }, { name: anonymous, domains: ["anonymous.test"], routes: [{ match: { prefix: / }, route: { cluster: anonymous } }] }]"#,
            ),
        ],
        &[
            static_cluster("secure", &[tls_port], &tls_socket(true)),
            static_cluster("anonymous", &[tls_port], &tls_socket(false)),
        ],
    );
    let (_mesh_dir, host) = start(Kind::P2, &config, &["--egress-allow", "*.test"]);

    // mesh-host originates TLS for a plain http request, and carries an
    // https request over the same TLS cluster.
    for url in ["http://secure.test/a", "https://secure.test/b"] {
        let called = get(&host, url).await;
        assert_eq!(called.status, StatusCode::OK, "{url}: {:?}", called.body);
        assert_eq!(called.body, "over mtls", "{url}");
    }
    // Without a client certificate the upstream refuses the handshake.
    let refused = get(&host, "http://anonymous.test/").await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_GATEWAY,
        "{:?}",
        refused.body
    );
    assert!(
        refused.header("x-outbound-error").starts_with("TLS-")
            || refused.header("x-outbound-error") == "connection-terminated",
        "error {:?}",
        refused.header("x-outbound-error")
    );

    let log = access_log_lines(&access_log, 2).await;
    assert!(
        log.contains("sni=backend.internal authority=secure.test"),
        "access log: {log}"
    );
}

/// Inbound routes `/slow` to the `slow` workload and the rest to `client`;
/// the egress listener routes `*.slow.test` back into mesh-host's own
/// inbound listener (a slow upstream) through clusters with a one-request
/// breaker or a short route timeout.
fn slow_upstream_config(port: u16) -> String {
    let inbound = http_listener(
        "inbound",
        port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: /slow }, route: { cluster: slow } }, { match: { prefix: / }, route: { cluster: client } }] }]"#,
    );
    let egress = egress(
        r#"[{ name: narrow, domains: ["narrow.slow.test"], routes: [{ match: { prefix: / }, route: { cluster: narrow } }] }, { name: hurried, domains: ["hurried.slow.test"], routes: [{ match: { prefix: / }, route: { cluster: wide, timeout: 0.3s } }] }]"#,
    );
    bootstrap(
        &[inbound, egress],
        &[
            static_cluster(
                "narrow",
                &[port],
                "circuit_breakers: { thresholds: [{ max_requests: 1 }] }",
            ),
            static_cluster("wide", &[port], ""),
        ],
    )
}

fn start_with_slow(kind: Kind, config: &str) -> (tempfile::TempDir, MeshHost) {
    start(
        kind,
        config,
        &[
            "--workload",
            &format!("slow={}", component("slow").display()),
            "--egress-allow",
            "*.slow.test",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_overflow_is_answered_at_once() {
    let port = free_port();
    let (_dir, host) = start_with_slow(Kind::P2, &slow_upstream_config(port));
    let slow = "http://narrow.slow.test/slow?sleep_ms=2000&chunks=1";

    let first = tokio::spawn({
        let host_addr = host.addr;
        async move {
            let request = Request::get("/")
                .header("host", "client.test")
                .header("x-target-url", slow)
                .body(client::empty())
                .expect("request");
            client::read_all(client::h2c(host_addr, request).await)
                .await
                .0
        }
    });
    // Let the first request occupy the cluster's only request slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let second = get(&host, slow).await;
    let waited = started.elapsed();
    assert_eq!(second.status, StatusCode::BAD_GATEWAY, "{:?}", second.body);
    assert_eq!(
        second.header("x-outbound-error"),
        "connection-limit-reached"
    );
    assert!(
        waited < Duration::from_millis(1000),
        "overflow took {waited:?}"
    );
    assert_eq!(first.await.expect("first request"), StatusCode::OK);
}

for_each_kind! {
async fn the_egress_route_timeout_fails_the_call_with_a_response_timeout(kind: Kind) {
    let port = free_port();
    let (_dir, host) = start_with_slow(kind, &slow_upstream_config(port));
    let started = std::time::Instant::now();
    let called = get(
        &host,
        "http://hurried.slow.test/slow?sleep_ms=3000&chunks=1",
    )
    .await;
    assert_eq!(called.status, StatusCode::BAD_GATEWAY, "{:?}", called.body);
    assert_eq!(called.header("x-outbound-error"), "HTTP-response-timeout");
    assert!(started.elapsed() < Duration::from_millis(2500));
    let quick = get(&host, "http://hurried.slow.test/slow?chunks=1").await;
    assert_eq!(quick.status, StatusCode::OK, "{:?}", quick.body);
}
}

/// Asks the component to stream `url` with a `between-bytes-timeout` of
/// `limit_ms`: the body it relayed, and whether that body ended in an error.
async fn relay_with_between_bytes(host: &MeshHost, url: &str, limit_ms: u64) -> (String, bool) {
    let request = Request::get("/")
        .header("host", "client.test")
        .header("x-target-url", url)
        .header("x-target-between-bytes-ms", limit_ms.to_string())
        .body(client::empty())
        .expect("request");
    let response = client::h2c(host.addr, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let failed = loop {
        match body.frame().await {
            None => break false,
            Some(Err(_)) => break true,
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
        }
    };
    (String::from_utf8_lossy(&received).into_owned(), failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_components_between_bytes_timeout_cuts_off_a_stalled_upstream_body() {
    let port = free_port();
    let (_dir, host) = start_with_slow(Kind::P2, &slow_upstream_config(port));
    let url = "http://narrow.slow.test/slow?chunks=3&delay_ms=1000&chunk=part%0A";

    let (body, failed) = relay_with_between_bytes(&host, url, 3000).await;
    assert_eq!((body.as_str(), failed), ("part\npart\npart\n", false));

    let started = std::time::Instant::now();
    let (body, failed) = relay_with_between_bytes(&host, url, 200).await;
    assert!(failed, "a stalled body must end in an error, got {body:?}");
    assert_eq!(body, "part\n");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(
        host.wait_for_log("reading body: connection read timeout"),
        "the component reads connection-read-timeout: {}",
        host.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_cluster_resolves_its_endpoint_names() {
    let upstream = Upstream::start("by-name").await;
    let port = free_port();
    let dns_cluster = format!(
        r#"
  - name: named
    type: STRICT_DNS
    connect_timeout: 1s
    load_assignment:
      cluster_name: named
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {} }} }} }}"#,
        upstream.addr.port()
    );
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: named, domains: ["named.test"], routes: [{ match: { prefix: / }, route: { cluster: named } }] }]"#,
            ),
        ],
        &[dns_cluster],
    );
    let (_dir, host) = start(Kind::P2, &config, &["--egress-allow", "named.test"]);
    let called = get(&host, "http://named.test/dns").await;
    assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
    assert_eq!(called.body, "by-name GET /dns");
}

/// Cluster `flaky`: an endpoint answering as `misbehaving` does and a
/// healthy one, round robin, with `cluster_extra`; the egress route to it
/// carries `retry_policy`. Returns (misbehaving, healthy, mesh-host).
async fn flaky_cluster(
    misbehaving: Behaviour,
    retry_policy: &str,
    cluster_extra: &str,
) -> (Upstream, Upstream, tempfile::TempDir, MeshHost) {
    let bad = Upstream::start_behaving("misbehaving", misbehaving).await;
    let good = Upstream::start("healthy").await;
    let route = format!(
        r#"[{{ name: flaky, domains: ["flaky.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: flaky, retry_policy: {retry_policy} }} }}] }}]"#
    );
    let config = bootstrap(
        &[inbound(free_port()), egress(&route)],
        &[static_cluster(
            "flaky",
            &[bad.addr.port(), good.addr.port()],
            cluster_extra,
        )],
    );
    let (dir, host) = start(Kind::P2, &config, &["--egress-allow", "flaky.test"]);
    (bad, good, dir, host)
}

const CALLS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retriable_status_is_retried_on_another_endpoint_within_the_retry_budget() {
    let failing = Behaviour {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..Behaviour::default()
    };
    let retry =
        "{ retry_on: retriable-status-codes, retriable_status_codes: [503], num_retries: 1 }";

    // With the default thresholds (max_retries 3) every 503 is retried on
    // the other endpoint.
    let (bad, good, _dir, host) = flaky_cluster(failing, retry, "").await;
    for _ in 0..CALLS {
        let called = get(&host, "http://flaky.test/r").await;
        assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
        assert_eq!(called.header("x-upstream-status"), "200");
        assert_eq!(called.body, "healthy GET /r");
    }
    assert_eq!(good.requests(), CALLS);
    assert!(
        bad.requests() >= 1,
        "round robin must try the failing endpoint"
    );

    // A retry budget of 0 % with no minimum allows no retry at all: the
    // component sees the 503s and no request reaches an upstream twice.
    let budget = "circuit_breakers: { thresholds: [{ retry_budget: { budget_percent: { value: 0 }, min_retry_concurrency: 0 } }] }";
    let (bad, good, _dir, host) = flaky_cluster(failing, retry, budget).await;
    let mut unavailable = 0;
    for _ in 0..CALLS {
        let called = get(&host, "http://flaky.test/r").await;
        assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
        if called.header("x-upstream-status") == "503" {
            unavailable += 1;
        }
    }
    assert!(
        unavailable >= 1,
        "round robin must reach the failing endpoint"
    );
    assert_eq!(bad.requests(), unavailable);
    assert_eq!(bad.requests() + good.requests(), CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_past_the_per_try_timeout_is_retried_on_another_endpoint() {
    let stalling = Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::default()
    };
    let retry = "{ retry_on: reset, num_retries: 1, per_try_timeout: 0.2s }";
    let (bad, good, _dir, host) = flaky_cluster(stalling, retry, "").await;
    for _ in 0..CALLS / 2 {
        let started = std::time::Instant::now();
        let called = get(&host, "http://flaky.test/t").await;
        assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
        assert_eq!(called.body, "healthy GET /t");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the stalled try must be cut at 0.2 s, took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(good.requests(), CALLS / 2);
    assert!(
        bad.requests() >= 1,
        "round robin must try the stalling endpoint"
    );
}

/// The egress listener's router decides which Envoy headers a component's request carries,
/// as an inbound router does for forwarded requests: with `suppress_envoy_headers` the
/// upstream sees neither `x-envoy-attempt-count` nor `x-envoy-original-path`; the route's
/// rewrite applies either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_routers_suppress_envoy_headers_keeps_envoy_headers_off_outbound_requests() {
    let vhosts = r#"[{ name: up, domains: [upstream.test], include_request_attempt_count: true,
      routes: [{ match: { prefix: /old/ }, route: { cluster: upstream, prefix_rewrite: /new/ } }] }]"#;
    let plain_router = format!(r#"typed_config: {{ "@type": {ROUTER} }}"#);
    for suppress in [false, true] {
        let upstream = EchoUpstream::start("upstream").await.expect("upstream");
        let mut listener = egress(vhosts);
        if suppress {
            assert!(listener.contains(&plain_router), "{listener}");
            listener = listener.replace(
                &plain_router,
                &format!(r#"typed_config: {{ "@type": {ROUTER}, suppress_envoy_headers: true }}"#),
            );
        }
        let config = bootstrap(
            &[inbound(free_port()), listener],
            &[static_cluster("upstream", &[upstream.addr.port()], "")],
        );
        let (_dir, host) = start(Kind::P2, &config, &["--egress-allow", "upstream.test"]);
        let called = get(&host, "http://upstream.test/old/page").await;
        assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
        assert_eq!(called.header("x-upstream-status"), "200");
        let echo = Echo::parse(&called.body).expect("the upstream's echo");
        assert_eq!(echo.path, "/new/page");
        let (attempts, original) = (
            echo.header("x-envoy-attempt-count"),
            echo.header("x-envoy-original-path"),
        );
        if suppress {
            assert_eq!((attempts, original), (None, None), "{echo:?}");
        } else {
            assert_eq!(attempts.as_deref(), Some("1"), "{echo:?}");
            assert_eq!(original.as_deref(), Some("/old/page"), "{echo:?}");
        }
    }
}
