//! The component runtime's promises under load: one failure class per cause
//! however many requests fail at once, a trap that discards only its own
//! instance, the host's memory budget, and concurrent requests on one
//! `wasi:http@0.3` instance.

use std::net::SocketAddr;

use http::Request;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::proto::helloworld::HelloRequest;
use mesh_host_tests::proto::helloworld::greeter_client::GreeterClient;
use mesh_host_tests::{Kind, client, component, for_each_kind};
use tonic::transport::Channel;

const MIB: u64 = 1024 * 1024;

/// Sends `count` GETs at once on separate connections; returns each answer's
/// status and `x-mesh-host-reason`.
async fn concurrent_gets(addr: SocketAddr, count: usize) -> Vec<(u16, String)> {
    concurrent_gets_to(addr, "test", count).await
}

async fn concurrent_gets_to(addr: SocketAddr, host: &str, count: usize) -> Vec<(u16, String)> {
    let calls = (0..count).map(|_| async move {
        let request = Request::get("/")
            .header("host", host)
            .body(client::empty())
            .expect("request");
        let (status, headers, _, _) = client::read_all(client::http1(addr, request).await).await;
        let reason = headers
            .get("x-mesh-host-reason")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status.as_u16(), reason)
    });
    futures::future::join_all(calls).await
}

for_each_kind! {
/// On P3 the fifty share instances (up to 16 requests each): each request still gets its own
/// deadline answer, whatever else ran on its instance.
async fn fifty_concurrent_deadline_overruns_are_all_504_and_counted_as_deadlines(kind: Kind) {
    let host = MeshHost::run(
        &kind.component("loop"),
        &["--request-timeout", "3s", "--admin", "127.0.0.1:0"],
    );
    let answers = concurrent_gets(host.addr, 50).await;
    let wrong: Vec<_> = answers
        .iter()
        .filter(|answer| **answer != (504, "deadline_exceeded".to_owned()))
        .collect();
    assert!(wrong.is_empty(), "not a deadline answer: {wrong:?}");
    let label = "reason=\"deadline_exceeded\"";
    assert_eq!(
        host.metric("mesh_host_request_failures_total", label).await,
        50
    );
    let others = host
        .metric("mesh_host_request_failures_total", &format!("workload=\"{}\"", kind.workload("loop")))
        .await;
    assert_eq!(others, 50, "every failure is counted as a deadline");
}
}

async fn say_hello(channel: &Channel, name: &str) -> Result<String, tonic::Status> {
    GreeterClient::new(channel.clone())
        .say_hello(HelloRequest { name: name.into() })
        .await
        .map(|reply| reply.into_inner().message)
}

for_each_kind! {
/// A trap fails its own request; the instance it happened in never serves
/// again, and the next request gets a fresh one.
async fn a_trap_on_a_reused_instance_fails_only_its_request_and_the_next_gets_a_new_instance(
    kind: Kind
) {
    let host = MeshHost::run(
        &kind.component("greeter"),
        &["--grpc", "--admin", "127.0.0.1:0"],
    );
    let instantiations = format!("workload=\"{}\"", kind.workload("greeter"));
    let channel = Channel::from_shared(format!("http://{}", host.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    for i in 0..3 {
        let name = format!("call {i}");
        assert_eq!(say_hello(&channel, &name).await.expect("hello"), format!("Hello {name}"));
    }
    assert_eq!(
        host.metric("mesh_host_instantiations_total", &instantiations).await,
        1,
        "three calls in a row share one instance"
    );
    let trapped = say_hello(&channel, "trap").await.expect_err("the trap fails the call");
    assert_eq!(trapped.code(), tonic::Code::Internal, "{trapped:?}");
    assert_eq!(say_hello(&channel, "after").await.expect("hello"), "Hello after");
    assert_eq!(
        host.metric("mesh_host_instantiations_total", &instantiations).await,
        2,
        "the trapped instance was replaced, once"
    );
}
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:") * 1024
}

fn rss(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:") * 1024
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
}

for_each_kind! {
async fn the_memory_budget_answers_503_and_bounds_resident_memory(kind: Kind) {
    const BUDGET: u64 = 32 * MIB;
    let host = MeshHost::run(
        &kind.component("memhog"),
        &[
            "--memory-limit",
            "64MiB",
            "--memory-budget",
            "32MiB",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let before = rss(host.pid());
    // Start the peak over from here: compiling the component at startup
    // may have used more than the requests will.
    std::fs::write(format!("/proc/{}/clear_refs", host.pid()), "5").expect("reset VmHWM");
    // Without the budget, 16 hogs at 64 MiB each would take 1 GiB; with it,
    // every one of them hits the budget before its own limit.
    let answers = concurrent_gets(host.addr, 16).await;
    let peak = peak_rss(host.pid());
    assert!(
        answers
            .iter()
            .all(|answer| *answer == (503, "memory_budget_exhausted".to_owned())),
        "{answers:?}"
    );
    assert_eq!(
        host.metric(
            "mesh_host_request_failures_total",
            "reason=\"memory_budget_exhausted\""
        )
        .await,
        16
    );
    // Slack for the host's own buffers and the instances' tables and stacks.
    let slack = 48 * MIB;
    assert!(
        peak <= before + BUDGET + slack,
        "peak RSS {} MiB, {} MiB before the load, budget {} MiB",
        peak / MIB,
        before / MIB,
        BUDGET / MIB
    );
}
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workloads_memory_budget_share_refuses_its_own_instances_not_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mesh.yaml");
    let config = format!(
        r#"listen: 127.0.0.1:{port}
workloads:
- name: memhog
  component: {memhog}
  hosts: [memhog.test]
  policy:
    limits: {{ memory: 32MiB, memory_budget: 16MiB }}
- name: hello
  component: {hello}
  hosts: [hello.test]
"#,
        port = mesh_host_tests::envoy::free_port(),
        memhog = component("memhog").display(),
        hello = component("hello").display(),
    );
    std::fs::write(&path, config).expect("write config");
    let host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);
    // A hog reaches the 16 MiB share before its own 32 MiB limit.
    let answers = concurrent_gets_to(host.addr, "memhog.test", 4).await;
    assert!(
        answers
            .iter()
            .all(|answer| *answer == (503, "memory_budget_exhausted".to_owned())),
        "{answers:?}"
    );
    assert_eq!(
        concurrent_gets_to(host.addr, "hello.test", 1).await,
        vec![(200, String::new())],
        "another workload still gets memory"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_p3_instance_takes_concurrent_requests_up_to_its_limit() {
    let host = MeshHost::run(
        &Kind::P3.component("greeter"),
        &[
            "--grpc",
            "--max-instance-concurrency",
            "8",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let channel = Channel::from_shared(format!("http://{}", host.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    say_hello(&channel, "warm-up").await.expect("warm-up");
    let calls = (0..8).map(|i| {
        let channel = channel.clone();
        async move { say_hello(&channel, &format!("sleep:{}", 1000 + i)).await }
    });
    for reply in futures::future::join_all(calls).await {
        assert!(reply.expect("call").starts_with("Hello sleep:"));
    }
    let instances = host
        .metric("mesh_host_instantiations_total", "workload=\"greeter_p3\"")
        .await;
    // One instance per call (9) is what a one-request-at-a-time instance needs.
    assert!(
        instances < 9,
        "8 concurrent calls after a warm-up took {instances} instances"
    );
}
