//! The load-balancing settings Envoy Gateway and istiod send, end to end: mesh-host proxies
//! a route to a cluster of real upstreams, which say who answered.
//!
//! - ring hash and maglev (legacy `lb_policy` and `load_balancing_policy` extensions) keep
//!   a request hash (header, cookie) on one endpoint and spread different keys;
//! - `locality_weighted_lb_config` splits traffic by locality weight;
//! - `per_host_thresholds.max_connections` caps connections to each endpoint;
//! - active HTTP, TCP and gRPC health checks keep traffic off an endpoint failing them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use http::Request;
use mesh_host_tests::bootstrap::http_listener;
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::upstream::{Behaviour, Upstream};
use mesh_host_tests::{client, component};

/// mesh-host proxying everything on its listener to `cluster` (YAML of one `clusters:`
/// entry named `backend`), routes with `route_extra` (YAML flow fields of the route action).
fn start(cluster: &str, route_extra: &str) -> (tempfile::TempDir, MeshHost) {
    let listener = http_listener(
        "proxy",
        free_port(),
        "",
        &format!(
            r#"[{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: backend {route_extra} }} }}] }}]"#
        ),
    );
    let bootstrap = format!("static_resources:\n  listeners:{listener}\n  clusters:{cluster}\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("balancing-unused={}", component("hello").display()),
    ]);
    (dir, host)
}

/// A cluster named `backend` over `upstreams`, one locality per `(weight, ports)` group.
fn cluster(extra: &str, localities: &[(Option<u32>, Vec<u16>)]) -> String {
    let mut endpoints = String::new();
    for (weight, ports) in localities {
        endpoints.push_str("\n      - lb_endpoints:");
        for port in ports {
            endpoints.push_str(&format!(
                "\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            ));
        }
        if let Some(weight) = weight {
            endpoints.push_str(&format!("\n        load_balancing_weight: {weight}"));
        }
    }
    format!(
        r#"
  - name: backend
    type: STATIC
    connect_timeout: 1s
{extra}
    load_assignment:
      cluster_name: backend
      endpoints:{endpoints}"#
    )
}

/// One request through mesh-host: the upstream that answered, or the failure.
async fn call(host: &MeshHost, headers: &[(&str, &str)]) -> Result<String, String> {
    let mut request = Request::get("/").header("host", "backend.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(client::empty()).expect("request");
    let (status, headers, body, _) =
        client::read_all(client::http1(host.addr, request).await).await;
    match headers
        .get("x-upstream-name")
        .and_then(|value| value.to_str().ok())
    {
        Some(name) if status.is_success() => Ok(name.to_owned()),
        _ => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
    }
}

async fn upstreams(names: &[&str]) -> Vec<Upstream> {
    let mut started = Vec::new();
    for name in names {
        started.push(Upstream::start(name).await);
    }
    started
}

/// Which upstream answered each key, asking `rounds` times per key.
async fn owners(
    host: &MeshHost,
    keys: &[String],
    rounds: usize,
    header: impl Fn(&str) -> (&'static str, String),
) -> BTreeMap<String, BTreeSet<String>> {
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for _ in 0..rounds {
        for key in keys {
            let (name, value) = header(key);
            let answered = call(host, &[(name, &value)])
                .await
                .unwrap_or_else(|e| panic!("key {key}: {e}"));
            seen.entry(key.clone()).or_default().insert(answered);
        }
    }
    seen
}

fn assert_sticky_and_spread(seen: &BTreeMap<String, BTreeSet<String>>) {
    for (key, answered) in seen {
        assert_eq!(answered.len(), 1, "key {key} went to {answered:?}");
    }
    let used: BTreeSet<&String> = seen.values().flatten().collect();
    assert!(used.len() >= 2, "every key went to {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_each_header_value_on_one_endpoint() {
    let ups = upstreams(&["a", "b", "c"]).await;
    let ports: Vec<u16> = ups.iter().map(|u| u.addr.port()).collect();
    let (_dir, host) = start(
        &cluster(
            "    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 1024 }",
            &[(None, ports)],
        ),
        ", hash_policy: [{ header: { header_name: x-user } }]",
    );
    let keys: Vec<String> = (0..24).map(|i| format!("user-{i}")).collect();
    let seen = owners(&host, &keys, 4, |key| ("x-user", key.to_owned())).await;
    assert_sticky_and_spread(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_from_load_balancing_policy_keeps_each_cookie_on_one_endpoint() {
    let ups = upstreams(&["a", "b", "c"]).await;
    let ports: Vec<u16> = ups.iter().map(|u| u.addr.port()).collect();
    let policy = r#"    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.maglev
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev
            table_size: 65537"#;
    let (_dir, host) = start(
        &cluster(policy, &[(None, ports)]),
        ", hash_policy: [{ cookie: { name: session } }]",
    );
    let keys: Vec<String> = (0..24).map(|i| format!("s{i}")).collect();
    let seen = owners(&host, &keys, 4, |key| {
        ("cookie", format!("other=1; session={key}"))
    })
    .await;
    assert_sticky_and_spread(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_weighted_lb_config_splits_traffic_by_locality_weight() {
    let ups = upstreams(&["heavy", "light", "unweighted"]).await;
    let extra = r#"    lb_policy: ROUND_ROBIN
    common_lb_config: { locality_weighted_lb_config: {} }"#;
    let (_dir, host) = start(
        &cluster(
            extra,
            &[
                (Some(3), vec![ups[0].addr.port()]),
                (Some(1), vec![ups[1].addr.port()]),
                (None, vec![ups[2].addr.port()]),
            ],
        ),
        "",
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..400 {
        let name = call(&host, &[])
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        *counts.entry(name).or_default() += 1;
    }
    // Smooth weighted round robin over the localities: exactly 3:1, none to the locality
    // without a weight.
    assert_eq!(counts.get("heavy"), Some(&300), "{counts:?}");
    assert_eq!(counts.get("light"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("unweighted"), None, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_max_connections_caps_connections_to_each_endpoint() {
    let slow = Behaviour {
        delay: Duration::from_millis(300),
        ..Behaviour::default()
    };
    let a = Upstream::start_behaving("a", slow).await;
    let b = Upstream::start_behaving("b", slow).await;
    let extra = r#"    circuit_breakers:
      per_host_thresholds: [{ max_connections: 2 }]"#;
    let (_dir, host) = start(
        &cluster(extra, &[(None, vec![a.addr.port(), b.addr.port()])]),
        "",
    );
    let calls: Vec<_> = (0..12).map(|_| call(&host, &[])).collect();
    for result in futures::future::join_all(calls).await {
        result.expect("every request is served, waiting for a connection");
    }
    assert!(
        a.connections() <= 2,
        "a saw {} connections",
        a.connections()
    );
    assert!(
        b.connections() <= 2,
        "b saw {} connections",
        b.connections()
    );
}

/// Calls until `unwanted` has had no request for 20 calls in a row; then every one of 50
/// calls must reach another upstream.
async fn assert_traffic_leaves(host: &MeshHost, unwanted: &Upstream) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    while quiet < 20 {
        assert!(
            Instant::now() < deadline,
            "{} kept getting traffic",
            unwanted.name()
        );
        let before = unwanted.requests();
        let _ = call(host, &[]).await;
        quiet = if unwanted.requests() == before {
            quiet + 1
        } else {
            0
        };
    }
    for i in 0..50 {
        let answered = call(host, &[])
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_ne!(answered, unwanted.name(), "request {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_check_keeps_traffic_off_an_endpoint_answering_an_unexpected_status() {
    let good = Upstream::start("good").await;
    let failing = Upstream::start_behaving(
        "failing",
        Behaviour {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            ..Behaviour::default()
        },
    )
    .await;
    let extra = r#"    health_checks:
    - timeout: 1s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 1
      http_health_check: { path: /healthz, expected_statuses: [{ start: 200, end: 300 }] }"#;
    let (_dir, host) = start(
        &cluster(
            extra,
            &[(None, vec![good.addr.port(), failing.addr.port()])],
        ),
        "",
    );
    assert_traffic_leaves(&host, &failing).await;
    assert!(
        host.wait_for_log("endpoint passes its health checks"),
        "the good endpoint's first check is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_health_check_marks_a_closed_endpoint_unhealthy_after_the_threshold() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let extra = r#"    health_checks:
    - timeout: 0.5s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 1
      tcp_health_check: {}"#;
    let (_dir, host) = start(
        &cluster(extra, &[(None, vec![a.addr.port(), b.addr.port()])]),
        "",
    );
    // Both pass first: both get traffic.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = BTreeSet::new();
    while answered.len() < 2 {
        assert!(Instant::now() < deadline, "only {answered:?} answered");
        if let Ok(name) = call(&host, &[]).await {
            answered.insert(name);
        }
    }
    b.stop();
    assert!(
        host.wait_for_log("endpoint fails its health checks"),
        "b's failed checks are logged"
    );
    assert_traffic_leaves(&host, &b).await;
}
