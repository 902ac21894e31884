//! Egress load balancing over endpoints from EDS (a real ADS stream from the
//! test control plane): weights hold their shares, a killed endpoint is
//! retried around and ejected, an endpoint marked unhealthy gets no traffic.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use mesh_host_tests::bootstrap::{ads_header, http_listener, xds_cluster};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::upstream::Upstream;
use mesh_host_tests::{client, component};
use mesh_xds::envoy_types::pb::envoy::config::core::v3::HealthStatus;
use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use mesh_xds::envoy_types::pb::google::protobuf::UInt32Value;
use mesh_xds::test_control_plane::resources::assignment;
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane};

const NODE: &str = "egress-eds";

/// Inbound listener to the `client` workload; egress listener routing
/// `backend.test` to the EDS cluster `backend` with retries; outlier
/// detection ejecting after 3 consecutive failures.
fn bootstrap(port: u16, control_plane: u16) -> String {
    let inbound = http_listener(
        "inbound",
        port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: client } }] }]"#,
    );
    let egress = http_listener(
        "egress",
        15001,
        "traffic_direction: OUTBOUND",
        r#"[{ name: backend, domains: ["backend.test"], routes: [{ match: { prefix: / }, route: { cluster: backend, retry_policy: { retry_on: "connect-failure,reset", num_retries: 3 } } }] }]"#,
    );
    format!(
        r#"{ads}
static_resources:
  listeners:{inbound}{egress}
  clusters:
  - name: backend
    type: EDS
    connect_timeout: 1s
    eds_cluster_config: {{ eds_config: {{ ads: {{}}, resource_api_version: V3 }} }}
    outlier_detection: {{ consecutive_5xx: 3, base_ejection_time: 30s }}{xds}
"#,
        ads = ads_header(NODE, false),
        xds = xds_cluster(control_plane),
    )
}

/// The `backend` assignment: one endpoint per `(port, weight, health)`.
fn backend(endpoints: &[(u16, u32, HealthStatus)]) -> ClusterLoadAssignment {
    let ports: Vec<u16> = endpoints.iter().map(|(port, _, _)| *port).collect();
    let mut assignment = assignment("backend", &ports);
    for (lb_endpoint, (_, weight, health)) in assignment.endpoints[0]
        .lb_endpoints
        .iter_mut()
        .zip(endpoints)
    {
        lb_endpoint.load_balancing_weight = Some(UInt32Value { value: *weight });
        lb_endpoint.health_status = *health as i32;
    }
    assignment
}

fn publish(plane: &TestControlPlane, version: &str, endpoints: &[(u16, u32, HealthStatus)]) {
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: version.into(),
            endpoints: vec![backend(endpoints)],
            ..Default::default()
        },
    );
}

/// One outbound call through the component; the upstream that answered,
/// or the failure.
async fn call(host: &MeshHost) -> Result<String, String> {
    let request = Request::get("/?url=http%3A%2F%2Fbackend.test%2F")
        .header("host", "client.test")
        .body(client::empty())
        .expect("request");
    let (status, headers, body, _) =
        client::read_all(client::http1(host.addr, request).await).await;
    let upstream = headers
        .get("x-upstream-h-x-upstream-name")
        .and_then(|value| value.to_str().ok());
    match (status, upstream) {
        (StatusCode::OK, Some(name)) => Ok(name.to_owned()),
        _ => Err(format!(
            "{status} {:?} {}",
            headers.get("x-outbound-error"),
            String::from_utf8_lossy(&body)
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eds_weights_hold_a_killed_endpoint_is_ejected_and_unhealthy_gets_nothing() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    use HealthStatus::{Healthy, Unhealthy, Unknown};
    publish(
        &plane,
        "1",
        &[
            (a.addr.port(), 1, Healthy),
            (b.addr.port(), 1, Unknown),
            (c.addr.port(), 2, Healthy),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap(free_port(), plane.addr().port())).expect("write");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("client={}", component("outbound").display()),
        "--egress-allow".into(),
        "backend.test".into(),
    ]);
    // EDS arrives over ADS after startup.
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&host).await.is_err() {
        assert!(Instant::now() < deadline, "EDS endpoints never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Weights 1:1:2 over 4,000 requests, each share within 5 %.
    let before = [a.requests(), b.requests(), c.requests()];
    for i in 0..4000 {
        call(&host)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
    }
    let counts = [
        a.requests() - before[0],
        b.requests() - before[1],
        c.requests() - before[2],
    ];
    for (count, share) in counts.iter().zip([0.25, 0.25, 0.5]) {
        let observed = *count as f64 / 4000.0;
        assert!(
            (observed - share).abs() <= share * 0.05,
            "shares {counts:?} are not within 5% of 1:1:2"
        );
    }

    // c dies: tries that reach it are retried elsewhere, and it is ejected.
    c.stop();
    let c_requests = c.requests();
    for i in 0..400 {
        call(&host)
            .await
            .unwrap_or_else(|e| panic!("request {i} after the kill failed: {e}"));
    }
    assert_eq!(c.requests(), c_requests);
    assert!(
        host.wait_for_log("endpoint ejected by outlier detection"),
        "no ejection logged"
    );
    let log = host.log();
    assert!(
        log.contains(&c.addr.to_string()),
        "the ejected endpoint is c"
    );

    // EDS marks b unhealthy (and drops the dead c): only a gets traffic.
    publish(
        &plane,
        "2",
        &[(a.addr.port(), 1, Healthy), (b.addr.port(), 1, Unhealthy)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    while quiet < 20 {
        assert!(Instant::now() < deadline, "the EDS update never applied");
        let b_before = b.requests();
        call(&host).await.expect("request during the update");
        quiet = if b.requests() == b_before {
            quiet + 1
        } else {
            0
        };
    }
    let (a_before, b_before) = (a.requests(), b.requests());
    for i in 0..200 {
        assert_eq!(call(&host).await.as_deref(), Ok("a"), "request {i}");
    }
    assert_eq!(b.requests(), b_before, "the unhealthy endpoint got traffic");
    assert_eq!(a.requests() - a_before, 200);
}
