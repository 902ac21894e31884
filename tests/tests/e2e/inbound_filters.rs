//! The listener's HTTP filter chain as Envoy runs it, end to end: a deny-all RBAC filter
//! delivered by a bootstrap or by a control plane refuses every request (HTTP/1.1, h2c and
//! gRPC), a route's `RBACPerRoute` lets that route through, and a control plane that removes
//! the filter opens the listener again.

use std::time::{Duration, Instant};

use http::Request;
use mesh_host_tests::bootstrap::{HCM, ROUTER, ads_header, http_listener, xds_cluster};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component, grpcio};
use mesh_xds::envoy_types::pb::envoy::config::rbac::v3 as rbac;
use mesh_xds::envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use mesh_xds::envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use mesh_xds::test_control_plane::resources::{
    any, hcm_rds, listener_with, prefix_route, route_config, router_filter,
};
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane};

/// An RBAC filter that denies everything, ahead of the router; the `open` route disables it.
const DENY_ALL: &str = r#"
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } }"#;

fn deny_all_bootstrap(port: u16) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: guarded
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: guarded
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: /open }}
                direct_response: {{ status: 200, body: {{ inline_string: open }} }}
                typed_per_filter_config:
                  envoy.filters.http.rbac: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }}
              - match: {{ prefix: /helloworld. }}
                route: {{ cluster: greeter }}
              - match: {{ prefix: / }}
                route: {{ cluster: hello }}
          http_filters:{DENY_ALL}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
"#
    )
}

async fn get(port: u16, path: &str, h2c: bool) -> (u16, String) {
    let request = Request::get(format!("http://guarded.test{path}"))
        .header("host", "guarded.test")
        .body(client::empty())
        .expect("request");
    let addr = ([127, 0, 0, 1], port).into();
    let response = if h2c {
        client::h2c(addr, request).await
    } else {
        client::http1(addr, request).await
    };
    let (status, _, body, _) = client::read_all(response).await;
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_all_rbac_filter_from_a_bootstrap_refuses_http_h2c_and_grpc_but_not_a_route_that_disables_it()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    let port = free_port();
    std::fs::write(&path, deny_all_bootstrap(port)).expect("write bootstrap");
    let _host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--grpc".into(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
        "--workload".into(),
        format!("greeter={}", component("greeter").display()),
    ]);
    let denied = (403, "RBAC: access denied".to_owned());
    assert_eq!(get(port, "/", false).await, denied, "HTTP/1.1");
    assert_eq!(get(port, "/", true).await, denied, "h2c");
    assert_eq!(get(port, "/open", false).await, (200, "open".to_owned()));
    assert_eq!(get(port, "/open", true).await, (200, "open".to_owned()));
    let target = format!("127.0.0.1:{port}");
    let grpc = grpcio::call(&["--target", &target, "--name", "rbac"]).await;
    assert_eq!(
        (grpc.code.as_str(), grpc.message.as_str()),
        ("PERMISSION_DENIED", "RBAC: access denied")
    );
}

/// The listener a control plane sends: the deny-all RBAC filter (or none) and RDS routes.
fn guarded_listener(
    port: u16,
    deny_all: bool,
) -> mesh_xds::envoy_types::pb::envoy::config::listener::v3::Listener {
    let mut manager = hcm_rds("guarded");
    if deny_all {
        let everything = rbac::Policy {
            permissions: vec![rbac::Permission {
                rule: Some(rbac::permission::Rule::Any(true)),
            }],
            principals: vec![rbac::Principal {
                identifier: Some(rbac::principal::Identifier::Any(true)),
            }],
            ..Default::default()
        };
        let filter = rbac_filter::Rbac {
            rules: Some(rbac::Rbac {
                action: rbac::rbac::Action::Deny as i32,
                policies: [("all".to_owned(), everything)].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        manager.http_filters = vec![
            hcm::HttpFilter {
                name: "envoy.filters.http.rbac".to_owned(),
                config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(&filter))),
                ..Default::default()
            },
            router_filter(),
        ];
    }
    listener_with("guarded", port, &manager)
}

/// GETs `/` until the status is `want` or 30 s pass.
async fn eventually(port: u16, want: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let answer = get(port, "/", false).await;
            if answer.0 == want || Instant::now() > deadline {
                return answer;
            }
        } else if Instant::now() > deadline {
            return (0, "never bound".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_delivered_over_ads_is_enforced_and_a_new_version_without_it_opens_the_listener() {
    const NODE: &str = "rbac-over-ads";
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let routes = route_config("guarded", vec![prefix_route("/", "hello")]);
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "1".into(),
            listeners: vec![guarded_listener(port, true)],
            routes: vec![routes.clone()],
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.yaml");
    // The host announces itself once a listener is bound: a static one, so the start does
    // not wait for the control plane.
    let ready = http_listener(
        "static",
        free_port(),
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }]"#,
    );
    let bootstrap = format!(
        "{}\nstatic_resources:\n  listeners:{ready}\n  clusters:{}\n",
        ads_header(NODE, true),
        xds_cluster(plane.addr().port())
    );
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let _host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
    ]);
    assert_eq!(
        eventually(port, 403).await,
        (403, "RBAC: access denied".to_owned())
    );
    assert_eq!(get(port, "/", true).await.0, 403, "h2c");
    plane.set_snapshot(
        NODE,
        &Snapshot {
            version: "2".into(),
            listeners: vec![guarded_listener(port, false)],
            routes: vec![routes],
            ..Default::default()
        },
    );
    let (status, body) = eventually(port, 200).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Hello"), "{body}");
}
