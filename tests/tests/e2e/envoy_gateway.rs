//! mesh-host behind a real Envoy 1.40 gateway: Envoy proxies gRPC to the
//! greeter component over an HTTP/2 upstream cluster, trailers intact.

use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{component, grpcio};

fn gateway_bootstrap(listen_port: u16, upstream_port: u16) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: mesh_host }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: mesh_host
    type: STATIC
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: mesh_host
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcio_through_an_envoy_gateway_reaches_the_greeter_with_trailers_intact() {
    let host = MeshHost::run(&component("greeter"), &["--grpc"]);
    let listen_port = free_port();
    let Some(envoy) = Envoy::start(&gateway_bootstrap(listen_port, host.addr.port())).await else {
        return;
    };
    let target = format!("127.0.0.1:{listen_port}");

    let unary = grpcio::call(&["--target", &target, "--name", "via-envoy"]).await;
    assert_eq!(unary.code, "OK", "{unary:?}\nenvoy log:\n{}", envoy.log());
    assert_eq!(unary.replies, vec!["Hello via-envoy".to_owned()]);
    assert_eq!(
        unary.trailers.get("x-greeter-trailer").map(String::as_str),
        Some("hello-trailer")
    );

    let streamed = grpcio::call(&[
        "--target",
        &target,
        "--method",
        "ListFeatures",
        "--count",
        "200",
    ])
    .await;
    assert_eq!(streamed.code, "OK", "{streamed:?}");
    assert_eq!(streamed.replies.len(), 200);

    let failed = grpcio::call(&["--target", &target, "--name", "error"]).await;
    assert_eq!(
        (failed.code.as_str(), failed.message.as_str()),
        ("INVALID_ARGUMENT", "name must not be error")
    );

    let stats = envoy
        .admin_get("/stats?filter=cluster.mesh_host.upstream_cx_http2_total")
        .await;
    assert!(
        stats.contains("upstream_cx_http2_total: 1"),
        "Envoy used HTTP/2 upstream: {stats}"
    );
}
