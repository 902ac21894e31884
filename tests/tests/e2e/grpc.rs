//! gRPC to a component: tonic (all four RPC kinds) and grpcio clients over h2c
//! and TLS, gRPC-shaped host failures with the status mapping,
//! `grpc-timeout` as the deadline, gRPC over HTTP/1.1 refused, and the
//! per-component `grpc.serve` flag. Each runs against the `wasi:http@0.2`
//! greeter and its `wasi:http@0.3` twin.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use mesh_host::handler::{HostHandler, WorkloadId};
use mesh_host_tests::inprocess::canonical_host;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::proto::helloworld::HelloRequest;
use mesh_host_tests::proto::helloworld::greeter_client::GreeterClient;
use mesh_host_tests::proto::routeguide::route_guide_client::RouteGuideClient;
use mesh_host_tests::proto::routeguide::{Point, Rectangle, RouteNote};
use mesh_host_tests::tls::TestCert;
use mesh_host_tests::{Kind, client, for_each_kind, grpcio};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn greeter_host(kind: Kind, extra: &[&str]) -> MeshHost {
    let mut args = vec!["--grpc"];
    args.extend_from_slice(extra);
    MeshHost::run(&kind.component("greeter"), &args)
}

async fn h2c_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect h2c")
}

async fn tls_channel(addr: SocketAddr, cert: &TestCert) -> Channel {
    let pem = std::fs::read(&cert.cert).expect("read cert");
    Channel::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .expect("uri")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pem))
                .domain_name("localhost"),
        )
        .expect("tls config")
        .connect()
        .await
        .expect("connect TLS")
}

async fn all_four_rpc_kinds(channel: Channel) {
    let mut greeter = GreeterClient::new(channel.clone());
    let reply = greeter
        .say_hello(HelloRequest {
            name: "tonic".into(),
        })
        .await
        .expect("SayHello");
    assert_eq!(reply.get_ref().message, "Hello tonic");
    assert_eq!(
        reply
            .metadata()
            .get("x-greeter-trailer")
            .and_then(|v| v.to_str().ok()),
        Some("hello-trailer"),
        "custom trailer metadata reaches the client"
    );

    let mut guide = RouteGuideClient::new(channel);
    let feature = guide
        .get_feature(Point {
            latitude: 1,
            longitude: 2,
        })
        .await
        .expect("GetFeature");
    assert_eq!(feature.get_ref().name, "feature-1-2");

    let mut stream = guide
        .list_features(Rectangle {
            lo: Some(Point {
                latitude: 0,
                longitude: 0,
            }),
            hi: Some(Point {
                latitude: 10_000,
                longitude: 0,
            }),
        })
        .await
        .expect("ListFeatures")
        .into_inner();
    let mut count = 0;
    while let Some(feature) = stream.message().await.expect("feature") {
        assert_eq!(feature.name, format!("f-{count}"));
        count += 1;
    }
    assert_eq!(count, 10_000);
    let trailers = stream.trailers().await.expect("trailers");
    assert!(trailers.is_some(), "a server stream ends with trailers");

    let points = (0..25).map(|i| Point {
        latitude: i,
        longitude: i,
    });
    let summary = guide
        .record_route(tokio_stream::iter(points))
        .await
        .expect("RecordRoute");
    assert_eq!(summary.get_ref().point_count, 25);

    // Bidirectional: send one note at a time and wait for its echo, so the
    // exchange only completes if both directions stream.
    let (notes_tx, notes_rx) = tokio::sync::mpsc::channel(1);
    let mut replies = guide
        .route_chat(tokio_stream::wrappers::ReceiverStream::new(notes_rx))
        .await
        .expect("RouteChat")
        .into_inner();
    for i in 0..5 {
        let note = RouteNote {
            location: Some(Point {
                latitude: i,
                longitude: 0,
            }),
            message: format!("note {i}"),
        };
        notes_tx.send(note).await.expect("send note");
        let echoed = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("echo arrives before the next note is sent")
            .expect("reply")
            .expect("a reply per note");
        assert_eq!(echoed.message, format!("echo: note {i}"));
    }
    drop(notes_tx);
    assert!(replies.message().await.expect("end").is_none());
}

for_each_kind! {
async fn tonic_clients_make_all_four_kinds_of_call_over_h2c(kind: Kind) {
    let host = greeter_host(kind, &[]);
    all_four_rpc_kinds(h2c_channel(host.addr).await).await;
}
}

for_each_kind! {
async fn tonic_clients_make_all_four_kinds_of_call_over_tls(kind: Kind) {
    let cert = TestCert::generate();
    let host = greeter_host(kind, &[
        "--tls-cert",
        cert.cert.to_str().expect("path"),
        "--tls-key",
        cert.key.to_str().expect("path"),
    ]);
    all_four_rpc_kinds(tls_channel(host.addr, &cert).await).await;
}
}

for_each_kind! {
async fn grpcio_unary_and_server_streaming_over_h2c_and_tls(kind: Kind) {
    let cert = TestCert::generate();
    let plain = greeter_host(kind, &[]);
    let tls = greeter_host(kind, &[
        "--tls-cert",
        cert.cert.to_str().expect("path"),
        "--tls-key",
        cert.key.to_str().expect("path"),
    ]);
    let plain_target = plain.addr.to_string();
    let tls_target = format!("localhost:{}", tls.addr.port());
    let ca = cert.cert.to_str().expect("path");
    for extra in [vec![], vec!["--ca", ca]] {
        let target = if extra.is_empty() {
            &plain_target
        } else {
            &tls_target
        };
        let mut args = vec!["--target", target.as_str(), "--name", "grpcio"];
        args.extend(&extra);
        let unary = grpcio::call(&args).await;
        assert_eq!(unary.code, "OK", "{unary:?}");
        assert_eq!(unary.replies, vec!["Hello grpcio".to_owned()]);
        assert_eq!(
            unary.trailers.get("x-greeter-trailer").map(String::as_str),
            Some("hello-trailer")
        );

        let mut args = vec![
            "--target",
            target.as_str(),
            "--method",
            "ListFeatures",
            "--count",
            "50",
        ];
        args.extend(&extra);
        let streamed = grpcio::call(&args).await;
        assert_eq!(streamed.code, "OK", "{streamed:?}");
        assert_eq!(streamed.replies.len(), 50);
        assert_eq!(streamed.replies[49], "f-49");
    }
}
}

for_each_kind! {
async fn a_trailers_only_error_from_the_component_reaches_the_client(kind: Kind) {
    let host = greeter_host(kind, &[]);
    let outcome = grpcio::call(&["--target", &host.addr.to_string(), "--name", "error"]).await;
    assert_eq!(
        (outcome.code.as_str(), outcome.message.as_str()),
        ("INVALID_ARGUMENT", "name must not be error")
    );
}
}

for_each_kind! {
async fn host_failures_map_to_grpc_statuses_a_grpcio_client_sees(kind: Kind) {
    // trapped -> INTERNAL
    let host = greeter_host(kind, &["--max-concurrent-requests", "1", "--admin", "127.0.0.1:0"]);
    let target = host.addr.to_string();
    let trapped = grpcio::call(&["--target", &target, "--name", "trap"]).await;
    assert_eq!(trapped.code, "INTERNAL", "{trapped:?}");

    // deadline exceeded -> DEADLINE_EXCEEDED (the client's deadline travels as grpc-timeout)
    let late = grpcio::call(&[
        "--target",
        &target,
        "--name",
        "sleep:1000",
        "--timeout",
        "0.2",
    ])
    .await;
    assert_eq!(late.code, "DEADLINE_EXCEEDED", "{late:?}");

    // overloaded -> UNAVAILABLE: one call holds the only slot.
    let slow = tokio::spawn({
        let target = target.clone();
        // Long enough that the next client process (a Python start-up on a
        // loaded machine) surely arrives while it holds the slot.
        async move { grpcio::call(&["--target", &target, "--name", "sleep:8000"]).await }
    });
    host.wait_for_metric("mesh_host_requests_total", &format!("workload=\"{}\"", kind.workload("greeter")), 3)
        .await;
    let refused = grpcio::call(&["--target", &target, "--name", "second"]).await;
    assert_eq!(refused.code, "UNAVAILABLE", "{refused:?}");
    assert_eq!(slow.await.expect("slow call").code, "OK");

    // denied by policy -> PERMISSION_DENIED: the same component without --grpc.
    let no_grpc = MeshHost::run(&kind.component("greeter"), &[]);
    let denied = grpcio::call(&["--target", &no_grpc.addr.to_string(), "--name", "x"]).await;
    assert_eq!(denied.code, "PERMISSION_DENIED", "{denied:?}");
}
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_maps_to_unimplemented() {
    let host = canonical_host(
        &["greeter"],
        mesh_policies::grpc::GrpcFlags {
            serve: true,
            outbound: false,
        },
        Duration::from_secs(5),
        128 * 1024 * 1024,
    )
    .await;
    let handler = host.handler;
    let target = handler.bound_addrs()[0].to_string();

    let routed = grpcio::call(&[
        "--target",
        &target,
        "--authority",
        "greeter.test",
        "--name",
        "a",
    ])
    .await;
    assert_eq!(routed.code, "OK", "{routed:?}");
    let unrouted = grpcio::call(&[
        "--target",
        &target,
        "--authority",
        "elsewhere.test",
        "--name",
        "a",
    ])
    .await;
    assert_eq!(unrouted.code, "UNIMPLEMENTED", "{unrouted:?}");

    // No workload: the route goes with the unbound workload.
    handler
        .on_workload_unbind(&WorkloadId::new("greeter").expect("id"))
        .expect("unbind");
    let unbound = grpcio::call(&[
        "--target",
        &target,
        "--authority",
        "greeter.test",
        "--name",
        "a",
    ])
    .await;
    assert_eq!(unbound.code, "UNIMPLEMENTED", "{unbound:?}");
}

for_each_kind! {
async fn draining_host_refuses_new_calls_with_unavailable(kind: Kind) {
    let host = greeter_host(
        kind,
        &["--drain-time", "1s", "--drain-timeout", "10s", "--admin", "127.0.0.1:0"],
    );
    let target = host.addr.to_string();
    let in_flight = tokio::spawn({
        let target = target.clone();
        async move { grpcio::call(&["--target", &target, "--name", "sleep:2500"]).await }
    });
    host.wait_for_metric("mesh_host_requests_total", &format!("workload=\"{}\"", kind.workload("greeter")), 1)
        .await;
    host.terminate();
    // New connections are still served while requests are discouraged (`--drain-time`,
    // Envoy's `--drain-time-s`); after it the listener is closed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = grpcio::call(&["--target", &target, "--name", "late", "--timeout", "2"]).await;
    assert_eq!(refused.code, "UNAVAILABLE", "{refused:?}");
    assert_eq!(
        in_flight.await.expect("in-flight call").code,
        "OK",
        "the in-flight call finishes during the drain"
    );
}
}

for_each_kind! {
async fn grpc_timeout_50m_against_a_1s_component_is_deadline_exceeded_within_200ms(kind: Kind) {
    let host = greeter_host(kind, &[]);
    // A HelloRequest{name: "sleep:1000"} in gRPC framing.
    let name = b"sleep:1000";
    let mut message = vec![0x0a, name.len() as u8];
    message.extend_from_slice(name);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = Request::post(format!("http://{}/helloworld.Greeter/SayHello", host.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "50m")
        .body(client::full(frame))
        .expect("request");
    let started = Instant::now();
    let (status, headers, _, trailers) =
        client::read_all(client::h2c(host.addr, request).await).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(200), "answered after {took:?}");
    assert_eq!(status.as_u16(), 200);
    let grpc_status = headers
        .get("grpc-status")
        .or_else(|| trailers.as_ref()?.get("grpc-status"));
    assert_eq!(grpc_status.and_then(|v| v.to_str().ok()), Some("4"));
}
}

for_each_kind! {
async fn grpc_over_http1_is_refused_with_a_grpc_error_naming_http2(kind: Kind) {
    let host = greeter_host(kind, &[]);
    let request = Request::post("/helloworld.Greeter/SayHello")
        .header("host", "greeter.test")
        .header("content-type", "application/grpc")
        .body(client::full(vec![0, 0, 0, 0, 0]))
        .expect("request");
    let (status, headers, _, _) = client::read_all(client::http1(host.addr, request).await).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "12");
    assert!(
        headers["grpc-message"]
            .to_str()
            .expect("ascii")
            .contains("HTTP/2")
    );
}
}

for_each_kind! {
async fn without_grpc_serve_grpc_is_denied_while_plain_http_still_works(kind: Kind) {
    let host = MeshHost::run(&kind.component("greeter"), &[]);
    let denied = grpcio::call(&["--target", &host.addr.to_string(), "--name", "x"]).await;
    assert_eq!(denied.code, "PERMISSION_DENIED");
    let (status, _, _) = client::get(&host.url("/")).await;
    assert_eq!(
        status.as_u16(),
        200,
        "plain HTTP to the same component is served"
    );
}
}
