//! Component to component in-process: a component's outbound request that the egress routes
//! send to a cluster a local workload serves enters that workload's inbound pipeline directly.
//! The bootstrap has no `greeter` cluster at all, so the call cannot have left through a
//! socket; both sides' policy applies (the caller's egress rules and `grpc.outbound`, the
//! callee's RBAC with the caller's SPIFFE id as its principal); unary and a 2,000-message
//! server stream arrive whole, trailers intact.

use bytes::{Buf, Bytes};
use http::Request;
use mesh_host_tests::bootstrap::{HCM, ROUTER};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::proto::helloworld::{HelloReply, HelloRequest};
use mesh_host_tests::proto::routeguide::{Feature, Point, Rectangle};
use mesh_host_tests::{client, component};
use prost::Message;

fn bootstrap(port: u16) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - {{ name: caller, domains: ["caller.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: caller }} }}] }}
            - {{ name: stranger, domains: ["stranger.test"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: stranger }} }}] }}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": {ROUTER} }} }}
  - name: egress
    traffic_direction: OUTBOUND
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: egress
          route_config:
            virtual_hosts:
            - {{ name: greeter, domains: ["greeter.mesh"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: greeter }} }}] }}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": {ROUTER} }} }}
"#
    )
}

/// Two callers running the `outbound` component and the greeter they call; only the
/// `caller` service account may call it.
fn mesh_config(outbound: &str, greeter: &str) -> String {
    let caller_policy = r#"
    grpc: { outbound: true }
    egress: { allow: [{ authority: greeter.mesh }] }"#;
    format!(
        r#"
bootstrap: envoy.yaml
identity: {{ trust_domain: cluster.local, namespace: default }}
workloads:
- name: caller
  component: {outbound}
  clusters: [caller]
  policy:{caller_policy}
- name: stranger
  component: {outbound}
  clusters: [stranger]
  policy:{caller_policy}
- name: greeter
  component: {greeter}
  clusters: [greeter]
  policy:
    grpc: {{ serve: true }}
    rbac:
      action: ALLOW
      policies:
        callers:
          permissions: [{{ any: true }}]
          principals: [{{ authenticated: {{ principal_name: {{ exact: "spiffe://cluster.local/ns/default/sa/caller" }} }} }}]
"#
    )
}

fn grpc_frame(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&encoded);
    Bytes::from(frame)
}

/// The messages of a gRPC body, in order.
fn grpc_messages(mut body: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let _compressed = body.get_u8();
        let length = body.get_u32() as usize;
        assert!(body.len() >= length, "truncated gRPC message");
        out.push(body.split_to(length));
    }
    assert!(body.is_empty(), "trailing bytes after the last message");
    out
}

/// Asks the `outbound` component behind `host` to make the gRPC call `method` to
/// `greeter.mesh` with `request`; the relayed response body and trailers.
async fn call_through(
    port: u16,
    host: &str,
    method: &str,
    request: Bytes,
) -> (u16, http::HeaderMap, Bytes, http::HeaderMap) {
    let request = Request::post(format!("http://{host}/"))
        .header("x-target-url", format!("http://greeter.mesh/{method}"))
        .header("x-target-method", "POST")
        .header("x-target-content-type", "application/grpc")
        .header("x-target-header-te", "trailers")
        .body(client::full(request))
        .expect("request");
    let response = client::h2c(([127, 0, 0, 1], port).into(), request).await;
    let (status, headers, body, trailers) = client::read_all(response).await;
    assert_eq!(
        status, 200,
        "the caller answers 200 around the call: {headers:?}"
    );
    let upstream_status = headers
        .get("x-upstream-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (upstream_status, headers, body, trailers.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_calls_a_local_grpc_component_in_process_with_both_sides_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(dir.path().join("envoy.yaml"), bootstrap(port)).expect("write bootstrap");
    let config = dir.path().join("mesh.yaml");
    std::fs::write(
        &config,
        mesh_config(
            &component("outbound").display().to_string(),
            &component("greeter").display().to_string(),
        ),
    )
    .expect("write mesh config");
    let _host = MeshHost::spawn(&[
        "run".into(),
        "--config".into(),
        config.display().to_string(),
    ]);

    let hello = grpc_frame(&HelloRequest {
        name: "neighbour".into(),
    });
    let (status, _, body, trailers) = call_through(
        port,
        "caller.test",
        "helloworld.Greeter/SayHello",
        hello.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        trailers
            .get("x-upstream-t-grpc-status")
            .map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    let replies = grpc_messages(body);
    let reply = HelloReply::decode(replies[0].clone()).expect("HelloReply");
    assert_eq!(reply.message, "Hello neighbour");

    let rectangle = grpc_frame(&Rectangle {
        lo: Some(Point {
            latitude: 0,
            longitude: 7,
        }),
        hi: Some(Point {
            latitude: 2000,
            longitude: 7,
        }),
    });
    let (status, _, body, trailers) = call_through(
        port,
        "caller.test",
        "routeguide.RouteGuide/ListFeatures",
        rectangle,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        trailers
            .get("x-upstream-t-grpc-status")
            .map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{trailers:?}"
    );
    let features: Vec<Feature> = grpc_messages(body)
        .into_iter()
        .map(|m| Feature::decode(m).expect("Feature"))
        .collect();
    assert_eq!(features.len(), 2000);
    assert_eq!(features[1999].name, "f-1999");

    // The callee's RBAC sees who calls: the stranger's identity is refused.
    let (status, headers, body, _) =
        call_through(port, "stranger.test", "helloworld.Greeter/SayHello", hello).await;
    assert_eq!(status, 200, "a gRPC refusal is trailers-only with HTTP 200");
    assert!(grpc_messages(body).is_empty());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-upstream-h-grpc-status"), Some("7"), "{headers:?}");
    assert_eq!(
        header("x-upstream-h-grpc-message"),
        Some("RBAC: access denied")
    );
}
