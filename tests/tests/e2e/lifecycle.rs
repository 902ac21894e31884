//! The binary's life cycle: graceful stop on SIGTERM, one-line errors for bad
//! input, and the embedded default's deny-all egress.

use std::process::Command;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component, mesh_host_bin};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_slow_streaming_response_lets_it_finish_then_exits_0() {
    let mut host = MeshHost::run(&component("slow"), &["--drain-timeout", "20s"]);
    let request = Request::get("/?chunks=10&delay_ms=200&chunk=tick%0A")
        .header("host", "slow.test")
        .body(client::empty())
        .expect("request");
    let response = client::h2c(host.addr, request).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.expect("first frame").expect("frame");
    assert!(first.is_data());

    let terminated = Instant::now();
    host.terminate();
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame
            .expect("stream must finish cleanly during drain")
            .into_data()
        {
            rest.extend_from_slice(&data);
        }
    }
    let total = first.into_data().map(|d| d.len()).unwrap_or(0) + rest.len();
    assert_eq!(
        total,
        "tick\n".len() * 10,
        "the whole response arrives after SIGTERM"
    );

    let status = host
        .wait(Duration::from_secs(20))
        .expect("mesh-host exits after draining");
    assert!(status.success(), "exit status {status:?}");
    assert!(terminated.elapsed() < Duration::from_secs(15));

    // No longer listening.
    assert!(tokio::net::TcpStream::connect(host.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_request_with_no_egress_configured_is_denied() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let target = format!("http://{}/", upstream.local_addr().expect("addr"));
    let host = MeshHost::run(&component("outbound"), &[]);
    let request = Request::get("/")
        .header("host", "outbound.test")
        .header("x-target-url", &target)
        .body(client::empty())
        .expect("request");
    let (status, headers, body, _) =
        client::read_all(client::http1(host.addr, request).await).await;
    assert_eq!(
        status.as_u16(),
        502,
        "body: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["x-outbound-error"], "HTTP-request-denied");
    let accepted = tokio::time::timeout(Duration::from_millis(300), upstream.accept()).await;
    assert!(
        accepted.is_err(),
        "the target socket must see no connection"
    );
    assert!(
        host.wait_for_log("outbound request denied"),
        "denials are logged"
    );
}

fn run_expecting_failure(args: &[&str]) -> String {
    let output = Command::new(mesh_host_bin())
        .args(args)
        .output()
        .expect("run mesh-host");
    assert!(!output.status.success(), "{args:?} must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(
        !stderr.contains("stack backtrace"),
        "no backtrace: {stderr}"
    );
    let lines: Vec<_> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one readable line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "got: {stderr}");
    stderr
}

#[test]
fn bad_cli_input_exits_nonzero_with_one_readable_line() {
    let dir = tempfile::tempdir().expect("tempdir");

    let stderr = run_expecting_failure(&[
        "run",
        "/nonexistent/missing.wasm",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("/nonexistent/missing.wasm"), "{stderr}");

    let text = dir.path().join("notwasm.wasm");
    std::fs::write(&text, "this is not wasm").expect("write");
    let stderr = run_expecting_failure(&[
        "run",
        text.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(stderr.contains("not a WebAssembly file"), "{stderr}");

    // The smallest valid core module: magic and version 1.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let stderr = run_expecting_failure(&[
        "run",
        core.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        stderr.contains("core WebAssembly module, not a component"),
        "{stderr}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let stderr = run_expecting_failure(&[
        "run",
        component("hello").to_str().expect("path"),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn help_documents_every_flag() {
    let output = Command::new(mesh_host_bin())
        .args(["run", "--help"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--grpc",
        "--admin",
        "--request-timeout",
        "--max-request-timeout",
        "--memory-limit",
        "--max-instance-reuse",
        "--max-concurrent-requests",
        "--max-request-body",
        "--max-request-headers",
        "--drain-timeout",
        "--cache-dir",
        "--no-cache",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_restart_loads_the_component_from_the_compilation_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().to_str().expect("path");
    let first = MeshHost::run(&component("hello"), &["--cache-dir", cache_dir]);
    assert!(
        first.log().contains("compiled"),
        "first start compiles: {}",
        first.log()
    );
    drop(first);
    let second = MeshHost::run(&component("hello"), &["--cache-dir", cache_dir]);
    assert!(
        second.log().contains("loaded from the compilation cache"),
        "a restart must not recompile: {}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_grpc_request_without_grpc_outbound_is_denied_before_any_connection() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let target = format!(
        "http://{}/helloworld.Greeter/SayHello",
        upstream.local_addr().expect("addr")
    );
    let host = MeshHost::run(&component("outbound"), &[]);
    let request = Request::post("/")
        .header("host", "outbound.test")
        .header("x-target-url", &target)
        .header("x-target-method", "POST")
        .header("x-target-content-type", "application/grpc")
        .body(client::empty())
        .expect("request");
    let (status, headers, _, _) = client::read_all(client::http1(host.addr, request).await).await;
    assert_eq!(status.as_u16(), 502);
    assert_eq!(headers["x-outbound-error"], "HTTP-request-denied");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), upstream.accept())
            .await
            .is_err()
    );
    assert!(
        host.wait_for_log("grpc.outbound"),
        "the denial names the gRPC flag: {}",
        host.log()
    );
}
