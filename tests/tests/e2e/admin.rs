//! Envoy's admin surface of a running mesh-host: the figures it shows are those of the
//! requests the test drove, its texts are read by the parsers built for Envoy's (the Envoy
//! protos' JSON parser, Python's prometheus_client, Envoy itself in `--mode validate`).

use std::process::Command;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use mesh_host_tests::bootstrap::{ads_header, http_listener, static_cluster, xds_cluster};
use mesh_host_tests::envoy::{self, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::upstream::{Behaviour, Upstream};
use mesh_host_tests::{Kind, client, prometheus};
use mesh_xds::dump::check_json;
use mesh_xds::test_control_plane::resources::{
    listener, prefix_route, route_config, static_cluster as cds_cluster,
};
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane};

/// `inbound` routes `/backend` to the remote cluster `backend` and the rest to the workload
/// `client`; `egress` (virtual) routes `backend.test` to `backend`. `client` is also a
/// cluster, as Istio declares its inbound clusters, so the dump is a complete Envoy config.
fn bootstrap(inbound_port: u16, good: u16, bad: u16) -> String {
    let inbound = http_listener(
        "inbound",
        inbound_port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: /backend }, route: { cluster: backend } }, { match: { prefix: / }, route: { cluster: client } }] }]"#,
    );
    let egress = http_listener(
        "egress",
        15001,
        "traffic_direction: OUTBOUND",
        r#"[{ name: backend, domains: ["backend.test"], routes: [{ match: { prefix: / }, route: { cluster: backend } }] }]"#,
    );
    let client = static_cluster("client", &[1], "");
    let backend = static_cluster(
        "backend",
        &[good, bad],
        "lb_policy: ROUND_ROBIN\n    outlier_detection: { consecutive_5xx: 2, base_ejection_time: 300s, max_ejection_percent: 100 }",
    );
    format!("static_resources:\n  listeners:{inbound}{egress}\n  clusters:{client}{backend}\n")
}

async fn admin(host: &MeshHost, method: Method, path: &str) -> (StatusCode, String) {
    let addr = host.admin.expect("admin address");
    admin_at(addr, method, path).await
}

async fn admin_at(addr: std::net::SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(client::empty())
        .expect("request");
    let (status, _, body, _) = client::read_all(client::http1(addr, request).await).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get_json(host: &MeshHost, path: &str) -> serde_json::Value {
    let (status, body) = admin(host, Method::GET, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

/// GET `path` on the data plane; the status.
async fn drive(host: &MeshHost, path: &str, target: Option<&str>) -> StatusCode {
    let mut request = Request::get(path).header("host", "client.test");
    if let Some(url) = target {
        request = request.header("x-target-url", url);
    }
    let request = request.body(client::empty()).expect("request");
    client::read_all(client::http1(host.addr, request).await)
        .await
        .0
}

fn sha256(path: &std::path::Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    let text = String::from_utf8_lossy(&output.stdout);
    format!("sha256:{}", text.split_whitespace().next().expect("digest"))
}

/// The listeners and clusters of a config dump as an Envoy bootstrap: each resource without
/// the `@type` its `Any` carried.
fn bootstrap_from_dump(dump: &serde_json::Value) -> serde_json::Value {
    let section = |kind: &str| {
        dump["configs"]
            .as_array()
            .expect("configs")
            .iter()
            .find(|config| config["@type"] == format!("type.googleapis.com/envoy.admin.v3.{kind}"))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in the dump"))
    };
    let unpack = |entries: &serde_json::Value, field: &str| -> Vec<serde_json::Value> {
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        let mut resource = entry[field].clone();
                        resource.as_object_mut().expect("resource").remove("@type");
                        resource
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let listeners = unpack(
        &section("ListenersConfigDump")["static_listeners"],
        "listener",
    );
    let clusters = unpack(&section("ClustersConfigDump")["static_clusters"], "cluster");
    serde_json::json!({ "static_resources": { "listeners": listeners, "clusters": clusters } })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_shows_what_the_test_drove_in_envoys_formats() {
    let good = Upstream::start("good").await;
    let bad = Upstream::start_behaving(
        "bad",
        Behaviour {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..Behaviour::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let inbound_port = free_port();
    std::fs::write(
        &path,
        bootstrap(inbound_port, good.addr.port(), bad.addr.port()),
    )
    .expect("write bootstrap");
    let component = Kind::P2.component("outbound");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("client={}", component.display()),
        "--egress-allow".into(),
        "backend.test".into(),
        "--admin".into(),
        "0".into(),
    ]);
    assert!(
        host.admin.expect("admin").ip().is_loopback(),
        "a bare port binds loopback"
    );
    assert_eq!(
        admin(&host, Method::GET, "/ready").await,
        (StatusCode::OK, "LIVE\n".into())
    );

    // Round robin over good and bad until bad answered 503 twice (and is ejected), then only
    // good answers.
    let (mut ok, mut unavailable) = (0u64, 0u64);
    while unavailable < 2 {
        match drive(&host, "/backend", None).await {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("unexpected {other}"),
        }
        assert!(ok + unavailable < 40, "bad was never picked twice");
    }
    for _ in 0..4 {
        assert_eq!(
            drive(&host, "/backend", None).await,
            StatusCode::OK,
            "bad is ejected"
        );
        ok += 1;
    }
    assert_eq!(bad.requests(), 2);
    // The component calls backend once (allowed) and denied.test once (refused by policy).
    let allowed = drive(&host, "/", Some("http://backend.test/")).await;
    let denied = drive(&host, "/", Some("http://denied.test/")).await;
    let inbound_total = ok + unavailable + 2;
    let inbound_2xx = ok + [allowed, denied].iter().filter(|s| s.is_success()).count() as u64;
    let inbound_5xx = unavailable
        + [allowed, denied]
            .iter()
            .filter(|s| s.is_server_error())
            .count() as u64;

    let (status, text) = admin(&host, Method::GET, "/stats/prometheus").await;
    assert_eq!(status, StatusCode::OK);
    let Some(samples) = prometheus::parse(&text) else {
        return;
    };
    let value = |name: &str, labels: &[(&str, &str)]| {
        prometheus::value(&samples, name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}")) as u64
    };
    let inbound = ("envoy_http_conn_manager_prefix", "inbound");
    let backend = ("envoy_cluster_name", "backend");
    let class = |digit| ("envoy_response_code_class", digit);
    assert_eq!(
        value("envoy_http_downstream_rq_total", &[inbound]),
        inbound_total
    );
    assert_eq!(
        value("envoy_http_downstream_rq_xx_total", &[inbound, class("2")]),
        inbound_2xx
    );
    assert_eq!(
        value("envoy_http_downstream_rq_xx_total", &[inbound, class("5")]),
        inbound_5xx
    );
    // The component's allowed call reached good through the same cluster.
    assert_eq!(
        value("envoy_cluster_upstream_rq_xx_total", &[backend, class("2")]),
        ok + 1
    );
    assert_eq!(
        value("envoy_cluster_upstream_rq_xx_total", &[backend, class("5")]),
        2
    );
    assert_eq!(
        value(
            "envoy_cluster_outlier_detection_ejections_active",
            &[backend]
        ),
        1
    );
    assert_eq!(value("envoy_cluster_membership_total", &[backend]), 2);
    assert_eq!(value("envoy_cluster_membership_healthy", &[backend]), 1);
    let workload = ("workload", "client");
    assert_eq!(value("mesh_host_requests_total", &[workload]), 2);
    assert_eq!(
        value(
            "mesh_host_egress_denied_total",
            &[workload, ("reason", "policy")]
        ),
        1
    );
    assert!(value("mesh_host_instantiations_total", &[workload]) >= 1);

    let (_, plain) = admin(&host, Method::GET, "/stats").await;
    for line in [
        format!("http.inbound.downstream_rq_total: {inbound_total}"),
        "cluster.backend.upstream_rq_5xx: 2".to_owned(),
        "cluster.backend.membership_healthy: 1".to_owned(),
    ] {
        assert!(
            plain.lines().any(|l| l == line),
            "{line} missing from /stats:\n{plain}"
        );
    }

    let (_, clusters) = admin(&host, Method::GET, "/clusters").await;
    let (good_host, bad_host) = (
        format!("backend::127.0.0.1:{}", good.addr.port()),
        format!("backend::127.0.0.1:{}", bad.addr.port()),
    );
    for line in [
        format!("{bad_host}::health_flags::/failed_outlier_check"),
        format!("{bad_host}::rq_total::2"),
        format!("{bad_host}::rq_error::2"),
        format!("{good_host}::health_flags::healthy"),
        format!("{good_host}::rq_total::{}", ok + 1),
        "backend::added_via_api::false".to_owned(),
        "backend::default_priority::max_connections::1024".to_owned(),
    ] {
        assert!(
            clusters.lines().any(|l| l == line),
            "{line} missing from /clusters:\n{clusters}"
        );
    }

    let (_, listeners) = admin(&host, Method::GET, "/listeners").await;
    assert_eq!(
        listeners,
        format!("egress::\ninbound::127.0.0.1:{inbound_port}\n")
    );

    let info = get_json(&host, "/server_info").await;
    check_json("envoy.admin.v3.ServerInfo", &info).expect("server_info");
    assert_eq!(info["state"], "LIVE");

    let dump = get_json(&host, "/config_dump").await;
    check_json("envoy.admin.v3.ConfigDump", &dump).expect("config_dump");
    let configs = dump["configs"].as_array().expect("configs");
    let workloads = &configs.last().expect("workloads section")["value"]["workloads"];
    assert_eq!(workloads[0]["name"], "client");
    assert_eq!(workloads[0]["kind"], "P2");
    assert_eq!(workloads[0]["clusters"], serde_json::json!(["client"]));
    assert_eq!(workloads[0]["digest"], sha256(&component));
    assert_eq!(workloads[0]["policy"]["egress_rules"], 1);
    let config = bootstrap_from_dump(&dump);
    if let Some(validated) = envoy::validate(&config.to_string()) {
        validated.unwrap_or_else(|complaint| {
            panic!("Envoy refused the dump's listeners and clusters: {complaint}\n{config:#}")
        });
    }

    let names = get_json(
        &host,
        "/config_dump?resource=static_clusters&mask=cluster.name",
    )
    .await;
    check_json("envoy.admin.v3.ConfigDump", &names).expect("selected dump");
    let names: Vec<&str> = names["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|entry| {
            assert_eq!(
                entry["@type"],
                "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster"
            );
            assert!(
                entry.get("last_updated").is_none(),
                "the mask trims: {entry}"
            );
            entry["cluster"]["name"].as_str().expect("name")
        })
        .collect();
    assert_eq!(names, ["client", "backend"]);
    assert_eq!(
        admin(&host, Method::GET, "/config_dump?resource=no_such_field")
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // State changes are POST only; reads are GET only.
    assert_eq!(
        admin(&host, Method::GET, "/logging?level=debug").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        admin(&host, Method::POST, "/stats").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        admin(&host, Method::POST, "/logging?level=loud").await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, body) = admin(&host, Method::POST, "/logging?level=debug").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "active loggers: debug\n")
    );
    drive(&host, "/backend", None).await;
    assert!(
        host.wait_for_log("DEBUG"),
        "debug lines appear after /logging?level=debug:\n{}",
        host.log()
    );
}

const NODE: &str = "admin-e2e";

/// `/ready` is 503 until the control plane's first listeners and clusters are applied; then
/// the dump shows them with their version, and the update counters count them.
#[tokio::test(flavor = "multi_thread")]
async fn ready_waits_for_the_control_plane_and_the_dump_shows_its_versions() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let static_port = free_port();
    let admin_port = free_port();
    let config = format!(
        "{}\nadmin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}\nstatic_resources:\n  listeners:{}\n  clusters:{}\n",
        ads_header(NODE, true),
        http_listener(
            "static",
            static_port,
            "",
            r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }]"#,
        ),
        xds_cluster(plane.addr().port()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, config).expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("hello={}", Kind::P2.component("hello").display()),
    ]);
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    assert!(
        host.wait_for_log("Admin on"),
        "the bootstrap's admin.address is served"
    );
    let (status, body) = admin_at(admin_addr, Method::GET, "/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
    );

    let dynamic_port = free_port();
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "v1".into(),
            listeners: vec![listener("dynamic", dynamic_port, "routes")],
            routes: vec![route_config("routes", vec![prefix_route("/", "hello")])],
            clusters: vec![cds_cluster("remote", free_port())],
            ..Default::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    // Ready once the first listeners and clusters are applied; the listener's routes arrive
    // over RDS and its socket is bound soon after.
    while admin_at(admin_addr, Method::GET, "/ready").await.0 != StatusCode::OK
        || tokio::net::TcpStream::connect(("127.0.0.1", dynamic_port))
            .await
            .is_err()
    {
        assert!(Instant::now() < deadline, "never ready:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (_, dump) = admin_at(admin_addr, Method::GET, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("json");
    check_json("envoy.admin.v3.ConfigDump", &dump).expect("config_dump");
    let (_, clusters) = admin_at(
        admin_addr,
        Method::GET,
        "/config_dump?resource=dynamic_active_clusters",
    )
    .await;
    let clusters: serde_json::Value = serde_json::from_str(&clusters).expect("json");
    check_json("envoy.admin.v3.ConfigDump", &clusters).expect("dynamic clusters");
    let entry = &clusters["configs"][0];
    assert_eq!(entry["version_info"], "v1", "{clusters:#}");
    assert_eq!(entry["cluster"]["name"], "remote");
    assert!(entry["last_updated"].is_string());
    let (_, listeners) = admin_at(
        admin_addr,
        Method::GET,
        "/config_dump?resource=dynamic_listeners",
    )
    .await;
    let listeners: serde_json::Value = serde_json::from_str(&listeners).expect("json");
    assert_eq!(listeners["configs"][0]["name"], "dynamic", "{listeners:#}");
    assert_eq!(
        listeners["configs"][0]["active_state"]["version_info"],
        "v1"
    );

    let (_, text) = admin_at(admin_addr, Method::GET, "/stats/prometheus").await;
    let Some(samples) = prometheus::parse(&text) else {
        return;
    };
    for name in [
        "envoy_cluster_manager_cds_update_success_total",
        "envoy_listener_manager_lds_update_success_total",
        "envoy_rds_update_success_total",
    ] {
        let value = prometheus::value(&samples, name, &[]).unwrap_or_default();
        assert!(value >= 1.0, "{name} = {value} in\n{text}");
    }
    assert_eq!(
        prometheus::value(
            &samples,
            "envoy_cluster_manager_cds_update_rejected_total",
            &[]
        ),
        Some(0.0)
    );
}
