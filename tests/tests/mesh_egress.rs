//! The mesh egress path end to end: the `outbound` component calls out
//! through mesh-host, whose egress listener routes by authority to clusters
//! of real upstreams (native HTTP servers, a tonic gRPC server, a real Envoy
//! as egress gateway). Policy and routing refuse before any connection.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use mesh_host_tests::client;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::proto::helloworld::greeter_server::{Greeter, GreeterServer};
use mesh_host_tests::proto::helloworld::{HelloReply, HelloRequest};
use mesh_host_tests::upstream::Upstream;
use mesh_host_tests::{component, peers};
use prost::Message;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// An HTTP listener with an inline route configuration (`virtual_hosts` is
/// YAML flow text).
fn listener(name: &str, port: u16, extra: &str, virtual_hosts: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    {extra}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: {name}
          route_config: {{ name: {name}, virtual_hosts: {virtual_hosts} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}"#
    )
}

/// A STATIC cluster; `extra` is more YAML at the cluster's indentation.
fn cluster(name: &str, ports: &[u16], extra: &str) -> String {
    let endpoints: String = ports
        .iter()
        .map(|port| {
            format!(
                "\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            )
        })
        .collect();
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    {extra}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:{endpoints}"#
    )
}

/// The inbound listener routing everything to the `client` workload.
fn inbound(port: u16) -> String {
    listener(
        "inbound",
        port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: client } }] }]"#,
    )
}

/// The egress listener (virtual: `traffic_direction: OUTBOUND`, no socket).
fn egress(virtual_hosts: &str) -> String {
    listener(
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

/// mesh-host on `bootstrap` with the `outbound` component as workload
/// `client`, plus `flags`.
fn start(bootstrap: &str, flags: &[&str]) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let mut args = vec![
        "run".to_owned(),
        "--bootstrap".to_owned(),
        path.display().to_string(),
        "--workload".to_owned(),
        format!("client={}", component("outbound").display()),
    ];
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    (dir, MeshHost::spawn(&args))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_egress_listener_everything_is_denied_before_any_connection() {
    let upstream = Upstream::start("upstream").await;
    let port = free_port();
    let config = bootstrap(
        &[inbound(port)],
        &[cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (_dir, host) = start(&config, &["--egress-allow", "upstream.test"]);

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
    assert!(host.log().contains("no egress listener is configured"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_allows_listed_authorities_and_refuses_the_rest_ip_literals_and_metadata() {
    let upstream = Upstream::start("upstream").await;
    let port = free_port();
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: any, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: upstream } }] }]"#,
            ),
        ],
        &[cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (_dir, host) = start(&config, &["--egress-allow", "upstream.test"]);

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
    assert!(host.log().contains("169.254.169.254"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_without_an_egress_route_is_denied() {
    let upstream = Upstream::start("upstream").await;
    let port = free_port();
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: up, domains: ["upstream.test"], routes: [{ match: { prefix: /api }, route: { cluster: upstream } }] }]"#,
            ),
        ],
        &[cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (_dir, host) = start(&config, &["--egress-allow", "*.test"]);

    assert_eq!(
        get(&host, "http://upstream.test/api/x").await.status,
        StatusCode::OK
    );
    // Allowed by policy, but the mesh routes neither this host nor this path.
    assert!(get(&host, "http://elsewhere.test/api/x").await.denied());
    assert!(get(&host, "http://upstream.test/other").await.denied());
    assert_eq!(upstream.requests(), 1);
    assert!(host.log().contains("no route of egress listener"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sequential_outbound_requests_use_a_handful_of_connections() {
    let upstream = Upstream::start("upstream").await;
    let port = free_port();
    let config = bootstrap(
        &[
            inbound(port),
            egress(
                r#"[{ name: up, domains: ["upstream.test"], routes: [{ match: { prefix: / }, route: { cluster: upstream } }] }]"#,
            ),
        ],
        &[cluster("upstream", &[upstream.addr.port()], "")],
    );
    let (_dir, host) = start(&config, &["--egress-allow", "upstream.test"]);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_grpc_reaches_a_native_tonic_server_over_http2_and_needs_the_grpc_flag() {
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
        &[cluster("greeter", &[greeter_port], "")],
    );
    let (_dir, host) = start(
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
    assert_eq!(trailers["x-upstream-t-grpc-status"], "0");
    let reply = HelloReply::decode(&called.body[5..]).expect("a HelloReply frame");
    assert_eq!(reply.message, "Hello component from tonic");
    host.terminate();

    let (_dir, host) = start(&config, &["--egress-allow", "greeter.test"]);
    let refused = say_hello(&host).await;
    assert!(
        refused.denied(),
        "status {} {:?}",
        refused.status,
        refused.body
    );
    assert!(host.log().contains("grpc.outbound"), "log names the flag");
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
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log}
              log_format: {{ text_format_source: {{ inline_string: "authority=%REQ(:AUTHORITY)% cluster=%UPSTREAM_CLUSTER%\n" }} }}
          route_config:
            virtual_hosts:
            - {{ name: a, domains: ["a.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: a }} }}] }}
            - {{ name: b, domains: ["b.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: b }} }}] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
  clusters:{clusters}
"#,
        log = access_log.display(),
        clusters = [
            cluster("a", &[a.addr.port()], ""),
            cluster("b", &[b.addr.port()], "")
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
        &[cluster("egress-gateway", &[gateway_port], "")],
    );
    let (_mesh_dir, host) = start(&config, &["--egress-allow", "*.test"]);

    let to_a = get(&host, "http://a.test/from-component").await;
    assert_eq!(to_a.status, StatusCode::OK, "{:?}", to_a.body);
    assert_eq!(to_a.body, "service-a GET /from-component");
    let to_b = get(&host, "http://b.test/other").await;
    assert_eq!(to_b.body, "service-b GET /other");
    assert_eq!(to_b.header("x-upstream-h-x-upstream-authority"), "b.test");

    // Envoy flushes its access log periodically.
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&access_log).unwrap_or_default();
        if log.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.contains("authority=a.test cluster=a"),
        "access log: {log}"
    );
    assert!(
        log.contains("authority=b.test cluster=b"),
        "access log: {log}"
    );
}
