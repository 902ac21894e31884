//! The mesh handler driven by a control plane over ADS: a listener added by
//! the control plane is bound without a restart and routes to a workload; a
//! route change is applied while the listener keeps serving; a removed
//! listener is closed.

use std::time::{Duration, Instant};

use http::Request;
use mesh_host_tests::bootstrap::{ads_header, http_listener, xds_cluster};
use mesh_host_tests::echo_upstream::{Echo, EchoUpstream};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component};
use mesh_xds::envoy_types::pb::envoy::config::core::v3 as core;
use mesh_xds::test_control_plane::resources::{
    listener, prefix_route, route_config, static_cluster,
};
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane};

const NODE: &str = "mesh-e2e";

fn bootstrap(static_port: u16, control_plane_port: u16) -> String {
    let listener = http_listener(
        "static",
        static_port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200, body: { inline_string: "static" } } }] }]"#,
    );
    format!(
        "{}\nstatic_resources:\n  listeners:{listener}\n  clusters:{}\n",
        ads_header(NODE, true),
        xds_cluster(control_plane_port)
    )
}

/// mesh-host on a bootstrap whose ADS is `plane`, serving the clusters
/// `hello` and `echo` with those components, and the port of its static
/// listener (the host may announce a control-plane listener first). The
/// directory holds the bootstrap and lives as long as the host.
fn start_mesh_host(plane: &TestControlPlane) -> (tempfile::TempDir, MeshHost, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let static_port = free_port();
    std::fs::write(&path, bootstrap(static_port, plane.addr().port())).expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
        "--workload".into(),
        format!("echo={}", component("echo").display()),
    ]);
    (dir, host, static_port)
}

/// GETs `/` on `port` until the body is `expected` (the control plane's
/// change has been applied) or 30 s pass.
async fn eventually(port: u16, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let request = Request::get("/")
                .header("host", "any.test")
                .body(client::empty())
                .expect("request");
            let (_, _, body, _) =
                client::read_all(client::http1(([127, 0, 0, 1], port).into(), request).await).await;
            last = String::from_utf8_lossy(&body).into_owned();
            if last == expected {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} never answered {expected:?}; last answer {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_and_routes_from_the_control_plane_apply_without_a_restart() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let first_port = free_port();
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "1".into(),
            listeners: vec![listener("first", first_port, "routes")],
            routes: vec![route_config("routes", vec![prefix_route("/", "hello")])],
            ..Default::default()
        },
    );

    let (_dir, host, static_port) = start_mesh_host(&plane);
    eventually(static_port, "static").await;
    eventually(first_port, "Hello from mesh-host!\n").await;

    // A new listener on a new port, routed to another workload.
    let second_port = free_port();
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "2".into(),
            listeners: vec![
                listener("first", first_port, "routes"),
                listener("second", second_port, "second-routes"),
            ],
            routes: vec![
                route_config("routes", vec![prefix_route("/", "hello")]),
                route_config("second-routes", vec![prefix_route("/", "echo")]),
            ],
            ..Default::default()
        },
    );
    eventually(second_port, "").await;
    let request = Request::post("/")
        .header("host", "any.test")
        .body(client::full("via xds"))
        .expect("request");
    let (status, headers, body, _) =
        client::read_all(client::http1(([127, 0, 0, 1], second_port).into(), request).await).await;
    assert_eq!((status.as_u16(), body.as_ref()), (200, &b"via xds"[..]));
    assert_eq!(headers["x-echo-method"], "POST");
    eventually(first_port, "Hello from mesh-host!\n").await;

    // The first listener is removed: its socket closes; the second stays.
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "3".into(),
            listeners: vec![listener("second", second_port, "second-routes")],
            routes: vec![route_config(
                "second-routes",
                vec![prefix_route("/", "echo")],
            )],
            ..Default::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", first_port))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the removed listener is still bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(second_port, "").await;
    assert!(host.wait_for_log("configuration snapshot applied"));
}

/// One request over a fresh connection, HTTP/1.1 or h2c; returns what it
/// answered as `hello`, `echo` or a description of the failure.
async fn probe(port: u16, h2: bool) -> Result<&'static str, String> {
    let addr = ([127, 0, 0, 1], port).into();
    let request = Request::get(format!("http://any.test:{port}/"))
        .header("host", "any.test")
        .body(client::empty())
        .map_err(|error| error.to_string())?;
    let response = if h2 {
        client::h2c(addr, request).await
    } else {
        client::http1(addr, request).await
    };
    let (status, headers, body, _) = client::read_all(response).await;
    match (
        status.as_u16(),
        headers.contains_key("x-echo-method"),
        body.as_ref(),
    ) {
        (200, false, b"Hello from mesh-host!\n") => Ok("hello"),
        (200, true, b"") => Ok("echo"),
        (status, _, body) => Err(format!("{status}: {}", String::from_utf8_lossy(body))),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_route_pushes_under_load_fail_no_request() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let snapshot = |version: u32| Snapshot {
        version: version.to_string(),
        listeners: vec![listener("first", port, "routes")],
        routes: vec![route_config(
            "routes",
            vec![prefix_route(
                "/",
                if version.is_multiple_of(2) {
                    "hello"
                } else {
                    "echo"
                },
            )],
        )],
        ..Default::default()
    };
    plane.set_snapshot(NODE, &snapshot(0));
    let (_dir, _host, _) = start_mesh_host(&plane);
    eventually(port, "Hello from mesh-host!\n").await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|worker| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = std::collections::BTreeMap::<&str, u32>::new();
                let mut failures = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match probe(port, worker % 2 == 1).await {
                        Ok(which) => *answered.entry(which).or_default() += 1,
                        Err(failure) => failures.push(failure),
                    }
                }
                (answered, failures)
            })
        })
        .collect();
    for version in 1..=50 {
        plane.set_snapshot(NODE, &snapshot(version));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut totals = std::collections::BTreeMap::<&str, u32>::new();
    for task in load {
        let (answered, failures) = task.await.expect("load task");
        assert!(
            failures.is_empty(),
            "failed requests during the pushes: {failures:?}"
        );
        for (which, count) in answered {
            *totals.entry(which).or_default() += count;
        }
    }
    assert!(
        totals.get("hello").copied().unwrap_or(0) > 0
            && totals.get("echo").copied().unwrap_or(0) > 0,
        "both route versions served traffic: {totals:?}"
    );
    // The last pushed version (50) routes to hello.
    eventually(port, "Hello from mesh-host!\n").await;
}

/// Version `n` of a configuration whose route and clusters change together: the route sends
/// to cluster `c-<n>` (a name no other version uses) and tags the request with
/// `x-version: <n>`; `c-<n>` points at the `even` or `odd` upstream by the parity of `n`. The
/// previous version's cluster stays one version longer, as control planes keep a cluster until
/// no route names it (ADS applies clusters before routes, so each published state is whole).
///
/// A request routed by version `n` and sent with the clusters of any version before `n` or
/// after `n + 1` finds no `c-<n>` and fails, so the load below would see the two halves of a
/// snapshot published apart.
fn versioned(n: u32, listener_port: u16, even: u16, odd: u16) -> Snapshot {
    let upstream = |n: u32| if n.is_multiple_of(2) { even } else { odd };
    let mut routes = route_config("routes", vec![prefix_route("/", &format!("c-{n}"))]);
    routes.request_headers_to_add = vec![core::HeaderValueOption {
        header: Some(core::HeaderValue {
            key: "x-version".into(),
            value: n.to_string(),
            ..Default::default()
        }),
        append_action: core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }];
    let mut clusters = vec![static_cluster(&format!("c-{n}"), upstream(n))];
    if let Some(previous) = n.checked_sub(1) {
        clusters.push(static_cluster(&format!("c-{previous}"), upstream(previous)));
    }
    Snapshot {
        version: n.to_string(),
        listeners: vec![listener("versioned", listener_port, "routes")],
        routes: vec![routes],
        clusters,
        ..Default::default()
    }
}

/// One request over a fresh connection: the version its route tagged it with and the upstream
/// that answered, or what went wrong.
async fn versioned_probe(port: u16, h2: bool) -> Result<(u32, String), String> {
    let addr = ([127, 0, 0, 1], port).into();
    let request = Request::get("/")
        .header("host", "any.test")
        .body(client::empty())
        .map_err(|error| error.to_string())?;
    let request = if h2 {
        let (mut parts, body) = request.into_parts();
        parts.uri = format!("http://any.test:{port}/")
            .parse()
            .map_err(|e| format!("{e}"))?;
        Request::from_parts(parts, body)
    } else {
        request
    };
    let response = if h2 {
        client::h2c(addr, request).await
    } else {
        client::http1(addr, request).await
    };
    let (status, _, body, _) = client::read_all(response).await;
    let echo = Echo::parse(&body)
        .ok_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&body)))?;
    let version = echo
        .headers
        .iter()
        .find(|(name, _)| name == "x-version")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| format!("no x-version reached {}", echo.cluster))?;
    Ok((version, echo.cluster))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_snapshots_route_and_send_every_request_on_one_version() {
    let even = EchoUpstream::start("even").await.expect("even upstream");
    let odd = EchoUpstream::start("odd").await.expect("odd upstream");
    let (even_port, odd_port) = (even.addr.port(), odd.addr.port());
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    plane.set_snapshot(NODE, &versioned(0, port, even_port, odd_port));
    let (_dir, _host, _) = start_mesh_host(&plane);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let bound = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if bound && versioned_probe(port, false).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "version 0 never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|worker| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut versions = std::collections::BTreeSet::new();
                let mut failures = Vec::new();
                let mut served = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match versioned_probe(port, worker % 2 == 1).await {
                        Ok((version, upstream)) => {
                            served += 1;
                            versions.insert(version);
                            let expected = if version.is_multiple_of(2) { "even" } else { "odd" };
                            if upstream != expected {
                                failures.push(format!(
                                    "routed by version {version}, answered by the {upstream} upstream"
                                ));
                            }
                        }
                        Err(failure) => failures.push(failure),
                    }
                }
                (served, versions, failures)
            })
        })
        .collect();
    for version in 1..=200 {
        plane.set_snapshot(NODE, &versioned(version, port, even_port, odd_port));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for task in load {
        let (served, versions, failures) = task.await.expect("load task");
        assert!(
            failures.is_empty(),
            "{} inconsistent or failed requests: {failures:?}",
            failures.len()
        );
        total += served;
        seen.extend(versions);
    }
    assert!(
        seen.len() > 20,
        "the load spanned many versions ({} of 201 seen in {total} requests)",
        seen.len()
    );
    assert_eq!(seen.last(), Some(&200), "the last version serves");
}
