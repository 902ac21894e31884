//! The ADS client against the test control plane over real gRPC on 127.0.0.1: sync,
//! ACK/NACK, reconnects, backoff and scale, for both ADS variants.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mesh_xds::ads::{AdsClient, AdsClientConfig, AdsHandle, Backoff};
use mesh_xds::bootstrap::{AdsApi, NodeIdentity};
use mesh_xds::config::{MeshConfig, ResourceKind};
use mesh_xds::store::ConfigStore;
use mesh_xds::test_control_plane::{ReceivedRequest, Snapshot, TestControlPlane};

const NODE: &str = "node-1";
const WAIT: Duration = Duration::from_secs(20);

fn node() -> NodeIdentity {
    NodeIdentity {
        id: NODE.to_owned(),
        cluster: "mesh".to_owned(),
        user_agent_name: "mesh-host".to_owned(),
        ..Default::default()
    }
}

fn spawn_client(endpoint: String, api: AdsApi) -> (Arc<ConfigStore>, AdsHandle) {
    let store = Arc::new(ConfigStore::new(MeshConfig::default()));
    let mut config = AdsClientConfig::new(endpoint, api, node());
    config.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    let handle = AdsClient::spawn(config, store.clone());
    (store, handle)
}

/// Waits until the published config satisfies `predicate`; fails the test after `WAIT`.
async fn wait_for(
    store: &ConfigStore,
    what: &str,
    predicate: impl Fn(&MeshConfig) -> bool,
) -> Arc<MeshConfig> {
    let mut changes = store.subscribe();
    let wait = async {
        loop {
            let config = store.load();
            if predicate(&config) {
                return config;
            }
            if changes.changed().await.is_err() {
                panic!("config store dropped");
            }
        }
    };
    match tokio::time::timeout(WAIT, wait).await {
        Ok(config) => config,
        Err(_) => panic!(
            "timed out waiting for {what}; current config: {:?}",
            store.load()
        ),
    }
}

/// The kinds the test snapshots hold (they have no secrets, which are only asked for by
/// name when a TLS context references one).
const KINDS: [ResourceKind; 4] = [
    ResourceKind::Cluster,
    ResourceKind::LoadAssignment,
    ResourceKind::Listener,
    ResourceKind::RouteConfig,
];

fn snapshot(version: &str, route_prefix: &str) -> Snapshot {
    Snapshot {
        version: version.to_owned(),
        listeners: vec![listener("l1", 10000, "r1")],
        routes: vec![route_config("r1", vec![prefix_route(route_prefix, "c1")])],
        clusters: vec![eds_cluster("c1")],
        endpoints: vec![assignment("c1", &[8080])],
        secrets: Vec::new(),
    }
}

fn first_prefix(config: &MeshConfig) -> Option<String> {
    let route = config
        .route_configs
        .get("r1")?
        .virtual_hosts
        .first()?
        .routes
        .first()?
        .clone();
    match route.r#match.path {
        mesh_xds::config::PathMatch::Prefix(p) => Some(p),
        _ => None,
    }
}

fn is_complete(config: &MeshConfig, version: &str) -> bool {
    KINDS.iter().all(|k| {
        config
            .resource_versions
            .get(k)
            .is_some_and(|v| v == version)
    }) && config.listeners.contains_key("l1")
        && config.clusters.contains_key("c1")
        && config.load_assignments.contains_key("c1")
}

macro_rules! both_variants {
    ($($rule:ident => $body:path;)*) => {
        $(
            mod $rule {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sotw() {
                    $body(AdsApi::StateOfTheWorld).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn delta() {
                    $body(AdsApi::Delta).await;
                }
            }
        )*
    };
}

both_variants! {
    client_applies_a_snapshot_and_acks_every_type => applies_and_acks;
    control_plane_restart_reconnects_resubscribes_and_keeps_serving => survives_restart;
    invalid_route_is_nacked_with_the_reason_and_old_routes_stay => nacks_bad_regex;
    applies_5000_routes_and_1000_clusters => applies_at_scale;
}

async fn applies_and_acks(api: AdsApi) {
    let plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    plane.set_snapshot(NODE, &snapshot("v1", "/"));
    let (store, _client) = spawn_client(plane.endpoint(), api);
    let config = wait_for(&store, "snapshot v1", |c| is_complete(c, "v1")).await;
    assert_eq!(first_prefix(&config).as_deref(), Some("/"));
    for kind in KINDS {
        let ack = plane
            .wait_for_request(WAIT, |r| {
                r.request.type_url() == kind.type_url() && !r.request.response_nonce().is_empty()
            })
            .await;
        let ack = ack.unwrap_or_else(|| panic!("no ACK for {kind}"));
        assert_eq!(ack.request.error_message(), None, "{kind} was NACKed");
        assert_eq!(ack.node_id, NODE);
    }
}

async fn survives_restart(api: AdsApi) {
    let mut plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    plane.set_snapshot(NODE, &snapshot("v1", "/one"));
    let (store, _client) = spawn_client(plane.endpoint(), api);
    wait_for(&store, "snapshot v1", |c| is_complete(c, "v1")).await;
    let served_version = store.load().version;

    plane.stop().await;
    // The client notices, retries, and keeps the last good config meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during_outage = store.load();
    assert_eq!(
        during_outage.version, served_version,
        "nothing is published while the control plane is down"
    );
    assert_eq!(first_prefix(&during_outage).as_deref(), Some("/one"));

    plane
        .restart()
        .await
        .expect("control plane restarts on the same port");
    plane.set_snapshot(NODE, &snapshot("v2", "/two"));
    let config = wait_for(&store, "snapshot v2", |c| is_complete(c, "v2")).await;
    assert_eq!(first_prefix(&config).as_deref(), Some("/two"));
    assert!(plane.streams_opened() >= 2);
    // The new stream resubscribed to the route configuration by name.
    let resubscribed = plane
        .requests()
        .into_iter()
        .filter(|r| r.stream >= 2)
        .any(|r| match &r.request {
            ReceivedRequest::Sotw(q) => {
                q.type_url == ResourceKind::RouteConfig.type_url() && q.resource_names == ["r1"]
            }
            ReceivedRequest::Delta(q) => {
                q.type_url == ResourceKind::RouteConfig.type_url()
                    && q.resource_names_subscribe == ["r1"]
            }
        });
    assert!(
        resubscribed,
        "RDS was not resubscribed: {:?}",
        plane.requests()
    );
    // The first CDS request of the new stream tells the server what the client already has.
    let first_cds = plane
        .requests()
        .into_iter()
        .find(|r| r.stream >= 2 && r.request.type_url() == ResourceKind::Cluster.type_url())
        .expect("CDS request on the new stream");
    match &first_cds.request {
        ReceivedRequest::Sotw(q) => assert_eq!(q.version_info, "v1", "last accepted version"),
        ReceivedRequest::Delta(q) => assert!(
            q.initial_resource_versions.contains_key("c1"),
            "initial_resource_versions: {:?}",
            q.initial_resource_versions
        ),
    }
}

async fn nacks_bad_regex(api: AdsApi) {
    let plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    plane.set_snapshot(NODE, &snapshot("v1", "/good"));
    let (store, _client) = spawn_client(plane.endpoint(), api);
    wait_for(&store, "snapshot v1", |c| is_complete(c, "v1")).await;

    let mut bad = snapshot("v2", "/good");
    bad.routes = vec![route_config("r1", vec![regex_route("/api/(v1", "c1")])];
    plane.set_snapshot(NODE, &bad);
    let nack = plane
        .wait_for_request(WAIT, |r| r.request.error_message().is_some())
        .await
        .expect("the bad route configuration is NACKed");
    assert_eq!(
        nack.request.type_url(),
        ResourceKind::RouteConfig.type_url()
    );
    let message = nack.request.error_message().unwrap_or_default();
    assert!(message.contains("route_config \"r1\""), "{message}");
    assert!(message.contains("invalid regex"), "{message}");
    if let ReceivedRequest::Sotw(r) = &nack.request {
        assert_eq!(
            r.version_info, "v1",
            "a NACK carries the last accepted version"
        );
    }
    let config = store.load();
    assert_eq!(
        first_prefix(&config).as_deref(),
        Some("/good"),
        "old routes stay in force"
    );
    assert_eq!(
        config
            .resource_versions
            .get(&ResourceKind::RouteConfig)
            .map(String::as_str),
        Some("v1")
    );
}

async fn applies_at_scale(api: AdsApi) {
    let plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    let clusters = 1_000;
    let routes = (0..5_000)
        .map(|i| prefix_route(&format!("/svc{i}/"), &format!("c{}", i % clusters)))
        .collect();
    let snapshot = Snapshot {
        version: "big".to_owned(),
        listeners: vec![listener("l1", 10000, "r1")],
        routes: vec![route_config("r1", routes)],
        clusters: (0..clusters)
            .map(|i| eds_cluster(&format!("c{i}")))
            .collect(),
        endpoints: (0..clusters)
            .map(|i| assignment(&format!("c{i}"), &[9000]))
            .collect(),
        secrets: Vec::new(),
    };
    plane.set_snapshot(NODE, &snapshot);
    let (store, _client) = spawn_client(plane.endpoint(), api);
    let config = wait_for(&store, "the large snapshot", |c| {
        c.clusters.len() == clusters
            && c.load_assignments.len() == clusters
            && c.listeners.contains_key("l1")
    })
    .await;
    assert_eq!(
        config.route_configs["r1"].virtual_hosts[0].routes.len(),
        5_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_control_plane_is_retried_until_it_appears() {
    // Reserve a free port, then free it so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (store, _client) = spawn_client(format!("http://{addr}"), AdsApi::StateOfTheWorld);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        store.load().version,
        1,
        "nothing published while unreachable"
    );
    let plane = TestControlPlane::start_on(addr)
        .await
        .expect("control plane starts late");
    plane.set_snapshot(NODE, &snapshot("v1", "/"));
    wait_for(&store, "snapshot v1 after the late start", |c| {
        is_complete(c, "v1")
    })
    .await;
    assert_eq!(plane.streams_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_client() {
    let plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    plane.set_snapshot(NODE, &snapshot("v1", "/"));
    let (store, client) = spawn_client(plane.endpoint(), AdsApi::Delta);
    wait_for(&store, "snapshot v1", |c| is_complete(c, "v1")).await;
    tokio::time::timeout(Duration::from_secs(5), client.shutdown())
        .await
        .expect("shutdown completes");
    plane.set_snapshot(NODE, &snapshot("v2", "/two"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        first_prefix(&store.load()).as_deref(),
        Some("/"),
        "a stopped client applies nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_control_plane_uses_the_ads_cluster_ca() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["xds.mesh.local".to_owned()]).expect("certificate");
    let cert = certified.cert.pem().into_bytes();
    let plane = TestControlPlane::start_tls(
        cert.clone(),
        certified.key_pair.serialize_pem().into_bytes(),
    )
    .await
    .expect("TLS control plane starts");
    plane.set_snapshot(NODE, &snapshot("v1", "/"));
    let mut tls = mesh_xds::config::UpstreamTls::default();
    tls.sni = Some("xds.mesh.local".to_owned());
    tls.validation_ca = Some(mesh_xds::config::DataSource::Inline(cert.into()));
    tls.alpn_protocols = vec!["h2".to_owned()];
    let source = mesh_xds::bootstrap::AdsSource {
        api: AdsApi::StateOfTheWorld,
        cluster_name: "xds".to_owned(),
        endpoint: mesh_xds::config::HostPort {
            host: "127.0.0.1".to_owned(),
            port: plane.addr().port(),
        },
        tls: Some(tls),
    };
    let config = AdsClientConfig::from_source(&source, node());
    assert!(config.endpoint.starts_with("https://"));
    let store = Arc::new(ConfigStore::new(MeshConfig::default()));
    let _client = AdsClient::spawn(config, store.clone());
    wait_for(&store, "snapshot v1 over TLS", |c| is_complete(c, "v1")).await;
}
