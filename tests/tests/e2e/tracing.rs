//! Distributed tracing end to end: mesh-host's connection manager traces with the
//! OpenTelemetry provider to a cluster that points at a real OTLP/gRPC receiver (Python,
//! grpcio); the `outbound` component makes one call to an echo upstream, which shows the
//! `traceparent` it received. A real Envoy in front, tracing to the same receiver, makes
//! mesh-host's server span a child of its own.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use mesh_host_tests::Kind;
use mesh_host_tests::bootstrap::{HCM, ROUTER, static_cluster};
use mesh_host_tests::client;
use mesh_host_tests::echo_upstream::{Echo, EchoUpstream};
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::otlp::{OtlpReceiver, ReceivedSpan};
use mesh_host_tests::process::MeshHost;

/// How long a test waits for spans: the exporter sends a batch a second after its first span.
const SPAN_WAIT: Duration = Duration::from_secs(10);

/// The `tracing` of a connection manager exporting to cluster `otel` as `service`.
fn tracing(service: &str, random_sampling: f64) -> String {
    format!(
        r#"
          tracing:
            random_sampling: {{ value: {random_sampling} }}
            custom_tags: [{{ tag: team, literal: {{ value: payments }} }}]
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: {service}
                grpc_service: {{ envoy_grpc: {{ cluster_name: otel }}, timeout: 2s }}"#
    )
}

/// A listener on `port` whose connection manager traces as `tracing` and routes everything
/// to `cluster`.
fn traced_listener(name: &str, port: u16, extra: &str, tracing: &str, cluster: &str) -> String {
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
          stat_prefix: {name}{tracing}
          route_config:
            name: {name}
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, route: {{ cluster: {cluster} }}, decorator: {{ operation: {name}-call }} }}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}"#
    )
}

/// The OTLP receiver's cluster (gRPC: HTTP/2).
fn otel_cluster(receiver: &OtlpReceiver) -> String {
    static_cluster(
        "otel",
        &[receiver.port],
        r#"typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#,
    )
}

/// mesh-host serving the `outbound` component of `kind` as workload `client` behind a
/// traced inbound listener, with an egress listener routing `upstream.test` to `upstream`;
/// the workload's policy adds `policy` (YAML flow entries).
fn start_mesh_host(
    kind: Kind,
    receiver: &OtlpReceiver,
    upstream: &EchoUpstream,
    random_sampling: f64,
    policy: &str,
) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let egress = traced_listener(
        "egress",
        15001,
        "traffic_direction: OUTBOUND",
        "",
        "upstream",
    );
    let bootstrap = format!(
        "static_resources:\n  listeners:{}{}\n  clusters:{}{}\n",
        traced_listener(
            "inbound",
            free_port(),
            "",
            &tracing("mesh-host", random_sampling),
            "client"
        ),
        egress,
        static_cluster("upstream", &[upstream.addr.port()], ""),
        otel_cluster(receiver),
    );
    std::fs::write(dir.path().join("bootstrap.yaml"), bootstrap).expect("write bootstrap");
    let config = format!(
        "bootstrap: bootstrap.yaml\nworkloads:\n- name: client\n  component: {}\n  clusters: [client]\n  policy: {{ egress: {{ allow: [{{ authority: upstream.test }}] }}{policy} }}\n",
        kind.component("outbound").display()
    );
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, config).expect("write mesh config");
    let host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);
    (dir, host)
}

/// Asks the component behind `addr` to call the upstream; `headers` go on the request to
/// mesh-host. Returns what the upstream received.
async fn call_through(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> Echo {
    let mut request = Request::get("/")
        .header("host", "client.test")
        .header("x-target-url", "http://upstream.test/traced");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(client::full(Bytes::new())).expect("request");
    let (status, headers, body, _) = client::read_all(client::http1(addr, request).await).await;
    assert_eq!(status, 200, "{headers:?} {body:?}");
    assert_eq!(
        headers.get("x-upstream-status").map(|v| v.as_bytes()),
        Some(&b"200"[..])
    );
    Echo::parse(&body).expect("the upstream's echo")
}

/// The `traceparent` the upstream saw, as (trace id, parent id, flags).
fn traceparent(echo: &Echo) -> Option<(String, String, String)> {
    let value = echo.header("traceparent")?;
    let fields: Vec<&str> = value.split('-').collect();
    assert_eq!(fields.len(), 4, "{value}");
    Some((
        fields[1].to_owned(),
        fields[2].to_owned(),
        fields[3].to_owned(),
    ))
}

fn one<'a>(spans: &'a [ReceivedSpan], kind: &str, service: &str) -> &'a ReceivedSpan {
    let matching: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == kind && s.service == service)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {kind} span of {service}: {spans:#?}"
    );
    matching[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_makes_three_spans_of_one_trace_and_the_upstream_sees_the_client_span() {
    three_spans_of_one_trace(Kind::P2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_p3_components_request_makes_the_same_three_spans() {
    three_spans_of_one_trace(Kind::P3).await;
}

async fn three_spans_of_one_trace(kind: Kind) {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let upstream = EchoUpstream::start("upstream").await.expect("upstream");
    let (_dir, host) = start_mesh_host(kind, &receiver, &upstream, 100.0, "");
    let echo = call_through(host.addr, &[]).await;
    let spans = receiver.wait_for(3, SPAN_WAIT).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = one(&spans, "SERVER", "mesh-host");
    let component = one(&spans, "INTERNAL", "mesh-host");
    let client = one(&spans, "CLIENT", "mesh-host");
    assert!(
        spans.iter().all(|s| s.trace_id == server.trace_id),
        "{spans:#?}"
    );
    assert_eq!(server.parent_span_id, "", "a new trace starts at mesh-host");
    assert_eq!(component.parent_span_id, server.span_id);
    assert_eq!(client.parent_span_id, component.span_id);
    assert_eq!(
        server.name, "inbound-call",
        "the route's decorator names it"
    );
    assert_eq!(server.text("team"), Some("payments"));
    assert_eq!(server.text("upstream_cluster"), Some("client"));
    assert_eq!(server.text("mesh.workload"), Some("client"));
    assert_eq!(component.text("mesh.workload"), Some("client"));
    assert_eq!(client.name, "egress upstream.test");
    assert_eq!(client.text("upstream_cluster"), Some("upstream"));
    assert_eq!(
        client.text("upstream_address"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(
        client
            .attributes
            .get("http.status_code")
            .and_then(|v| v.as_i64()),
        Some(200)
    );
    let (trace_id, parent_id, flags) = traceparent(&echo).expect("traceparent injected");
    assert_eq!(trace_id, server.trace_id);
    assert_eq!(
        parent_id, client.span_id,
        "the upstream's parent is the client span"
    );
    assert_eq!(flags, "01");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_injection_off_the_components_headers_go_out_as_it_wrote_them() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let upstream = EchoUpstream::start("upstream").await.expect("upstream");
    let (_dir, host) = start_mesh_host(
        Kind::P2,
        &receiver,
        &upstream,
        100.0,
        ", tracing: { inject_traceparent: false }",
    );
    let echo = call_through(host.addr, &[]).await;
    assert_eq!(echo.header("traceparent"), None, "nothing injected");
    // The component's own copy is left exactly as it wrote it.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let echo = call_through(host.addr, &[("x-target-header-traceparent", own)]).await;
    assert_eq!(echo.header("traceparent").as_deref(), Some(own));
    // The spans are still recorded.
    let spans = receiver.wait_for(6, SPAN_WAIT).await;
    assert_eq!(spans.len(), 6, "{spans:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsampled_request_records_nothing_but_the_upstream_still_gets_its_trace() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let upstream = EchoUpstream::start("upstream").await.expect("upstream");
    let (_dir, host) = start_mesh_host(Kind::P2, &receiver, &upstream, 100.0, "");
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let echo = call_through(host.addr, &[("traceparent", incoming)]).await;
    let (trace_id, parent_id, flags) = traceparent(&echo).expect("traceparent propagated");
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(parent_id, "00f067aa0ba902b7", "a new span id for the hop");
    assert_eq!(flags, "00");
    // A sampled request afterwards shows the exporter works; only its spans arrive.
    call_through(host.addr, &[]).await;
    let spans = receiver.wait_for(3, SPAN_WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans_later = receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_eq!(spans_later.len(), 3, "{spans_later:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"),
        "the unsampled trace recorded nothing: {spans:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_an_envoy_gateway_mesh_hosts_server_span_is_a_child_of_envoys() {
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let upstream = EchoUpstream::start("upstream").await.expect("upstream");
    let (_dir, host) = start_mesh_host(Kind::P2, &receiver, &upstream, 100.0, "");
    let gateway_port = free_port();
    let envoy_bootstrap = format!(
        "static_resources:\n  listeners:{}\n  clusters:{}{}\n",
        traced_listener(
            "gateway",
            gateway_port,
            "",
            &tracing("envoy-gateway", 100.0),
            "mesh"
        ),
        static_cluster("mesh", &[host.addr.port()], ""),
        otel_cluster(&receiver),
    );
    let Some(_envoy) = Envoy::start(&envoy_bootstrap).await else {
        return;
    };
    let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], gateway_port));
    let echo = call_through(gateway, &[]).await;
    let spans = receiver.wait_for(4, SPAN_WAIT).await;
    let envoy = one(&spans, "SERVER", "envoy-gateway");
    let server = one(&spans, "SERVER", "mesh-host");
    assert_eq!(server.trace_id, envoy.trace_id, "{spans:#?}");
    assert_eq!(
        server.parent_span_id, envoy.span_id,
        "mesh-host's span is a child of Envoy's: {spans:#?}"
    );
    let client = one(&spans, "CLIENT", "mesh-host");
    let (trace_id, parent_id, _) = traceparent(&echo).expect("traceparent injected");
    assert_eq!(trace_id, envoy.trace_id);
    assert_eq!(parent_id, client.span_id);
}

/// Requests that one P3 instance serves at once: each outbound request joins the trace of
/// the inbound request its task serves, never a neighbour's. Every request's body stays open
/// until all of them have reached the component, which sends upstream once the first chunk
/// of its body arrives; the chunks go out in reverse order, so sends interleave with the
/// other requests' tasks alive on the instance.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_on_one_p3_instance_each_keep_their_own_trace() {
    const REQUESTS: usize = 6;
    let Some(receiver) = OtlpReceiver::start() else {
        return;
    };
    let upstream = EchoUpstream::start("upstream").await.expect("upstream");
    let (_dir, host) = start_mesh_host(Kind::P3, &receiver, &upstream, 100.0, "");
    let trace_ids: Vec<String> = (0..REQUESTS)
        .map(|k| format!("{:032x}", 0x5eed_0000_u128 + k as u128 + 1))
        .collect();
    let mut senders = Vec::new();
    let mut calls = Vec::new();
    for trace_id in &trace_ids {
        let (sender, body) = client::channel(2);
        senders.push(sender);
        let request = Request::post("/")
            .header("host", "client.test")
            .header("x-target-url", "http://upstream.test/traced")
            .header("x-target-method", "POST")
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .body(body)
            .expect("request");
        let addr = host.addr;
        calls.push(tokio::spawn(async move {
            client::read_all(client::http1(addr, request).await).await
        }));
    }
    // The heads are in; give the component time to start a task for each.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sender in senders.iter().rev() {
        sender
            .send(Bytes::from_static(b"part"))
            .await
            .expect("body chunk");
    }
    drop(senders);
    for (call, trace_id) in calls.into_iter().zip(&trace_ids) {
        let (status, headers, body, _) = call.await.expect("request task");
        assert_eq!(status, 200, "{headers:?} {body:?}");
        let echo = Echo::parse(&body).expect("the upstream's echo");
        let (seen, _, flags) = traceparent(&echo).expect("traceparent injected");
        assert_eq!(&seen, trace_id, "the outbound request joined its own trace");
        assert_eq!(flags, "01");
    }
    // Each trace has its own client span, a child of that trace's component span.
    let spans = receiver.wait_for(3 * REQUESTS, SPAN_WAIT).await;
    for trace_id in &trace_ids {
        let of_trace: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|span| &span.trace_id == trace_id)
            .cloned()
            .collect();
        let component = one(&of_trace, "INTERNAL", "mesh-host");
        let client = one(&of_trace, "CLIENT", "mesh-host");
        assert_eq!(client.parent_span_id, component.span_id, "{of_trace:#?}");
    }
}
