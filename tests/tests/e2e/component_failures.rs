//! A failing component fails one request, not the host: trap -> 500, a loop
//! past its deadline -> 504, a memory hog -> 500, and a hello request right
//! after each succeeds. These run the canonical handler (Host-header routing)
//! in-process with one workload per host name. Instances are reused across
//! requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use mesh_host::handler::{HostHandler, WorkloadId};
use mesh_host_tests::client;
use mesh_host_tests::inprocess::canonical_host;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{Kind, for_each_kind};
use mesh_policies::grpc::GrpcFlags;

const MEMORY_LIMIT: u64 = 32 * 1024 * 1024;

async fn get(addr: SocketAddr, host: &str) -> (u16, String, Bytes) {
    let request = Request::get("/")
        .header("host", host)
        .body(client::empty())
        .expect("request");
    let (status, headers, body, _) = client::read_all(client::http1(addr, request).await).await;
    let reason = headers
        .get("x-mesh-host-reason")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status.as_u16(), reason, body)
}

async fn assert_hello(addr: SocketAddr, hello: &str) {
    let (status, _, body) = get(addr, hello).await;
    assert_eq!(
        (status, body),
        (200, Bytes::from_static(b"Hello from mesh-host!\n"))
    );
}

/// The Host header that reaches workload `name` of `kind` (`loop.test`, `loop_p3.test`).
fn host_of(kind: Kind, name: &str) -> String {
    format!("{}.test", kind.workload(name))
}

for_each_kind! {
/// The trap is the P2 `trap` guest in both runs (a P3 trap is covered by the gRPC greeter's
/// trap in `runtime.rs`); hello, the loop and the hog are of the kind under test.
async fn trap_loop_and_memory_hog_each_fail_only_their_own_request(kind: Kind) {
    let (hello, looping, hog) = (kind.workload("hello"), kind.workload("loop"), kind.workload("memhog"));
    let host = canonical_host(
        &[&hello, "trap", &looping, &hog],
        GrpcFlags::default(),
        Duration::from_millis(500),
        MEMORY_LIMIT,
    )
    .await;
    let hello = host_of(kind, "hello");
    assert_hello(host.addr, &hello).await;

    assert_eq!(get(host.addr, "trap.test").await.0, 500);
    assert_hello(host.addr, &hello).await;

    let started = Instant::now();
    let (status, reason, _) = get(host.addr, &host_of(kind, "loop")).await;
    let took = started.elapsed();
    assert_eq!((status, reason.as_str()), (504, "deadline_exceeded"));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );
    assert_hello(host.addr, &hello).await;

    let (status, reason, _) = get(host.addr, &host_of(kind, "memhog")).await;
    assert_eq!((status, reason.as_str()), (500, "component_failed"));
    assert_hello(host.addr, &hello).await;

    // An unknown host is the router's business: 404, not a component failure.
    assert_eq!(get(host.addr, "nobody.test").await.0, 404);
    host.handler.stop(Duration::from_secs(1)).await;
}
}

for_each_kind! {
async fn a_looping_guest_is_stopped_so_the_next_request_does_not_queue_behind_it(kind: Kind) {
    let host = canonical_host(
        &[&kind.workload("loop")],
        GrpcFlags::default(),
        Duration::from_millis(300),
        MEMORY_LIMIT,
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(get(host.addr, &host_of(kind, "loop")).await.0, 504);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
}
}

#[tokio::test(flavor = "multi_thread")]
async fn unbinding_a_workload_stops_its_traffic_without_a_restart() {
    let host = canonical_host(
        &["hello"],
        GrpcFlags::default(),
        Duration::from_secs(5),
        MEMORY_LIMIT,
    )
    .await;
    assert_hello(host.addr, "hello.test").await;
    host.handler
        .on_workload_unbind(&WorkloadId::new("hello").expect("id"))
        .expect("unbind");
    assert_eq!(get(host.addr, "hello.test").await.0, 404);
}

for_each_kind! {
async fn a_thousand_sequential_requests_reuse_instances(kind: Kind) {
    let host = MeshHost::run(&kind.component("hello"), &["--admin", "127.0.0.1:0"]);
    let workload = format!("workload=\"{}\"", kind.workload("hello"));
    for _ in 0..1000 {
        let request = Request::get("/")
            .header("host", "test")
            .body(client::empty())
            .expect("request");
        let (status, _, _, _) = client::read_all(client::http1(host.addr, request).await).await;
        assert_eq!(status.as_u16(), 200);
    }
    let requests = host.metric("mesh_host_requests_total", &workload).await;
    let instances = host
        .metric("mesh_host_instantiations_total", &workload)
        .await;
    assert_eq!(requests, 1000);
    assert!(
        (1..=10).contains(&instances),
        "1000 requests created {instances} instances"
    );
}
}
