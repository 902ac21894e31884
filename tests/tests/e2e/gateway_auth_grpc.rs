//! A gRPC component behind a workload policy with JWT authentication and external
//! authorization, called by a real grpcio client: the token is verified against keys
//! fetched from a JWKS endpoint through a cluster, the call is checked by a tonic
//! ext_authz server through another, and each refusal reaches grpcio as the gRPC status
//! Envoy would send.

use mesh_host_tests::auth_peers::{self, Tokens};
use mesh_host_tests::bootstrap::{http_listener, static_cluster};
use mesh_host_tests::envoy::free_port;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{component, grpcio};
use serde_json::json;

const HTTP2: &str = r#"typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#;

#[tokio::test(flavor = "multi_thread")]
async fn grpcio_calls_pass_jwt_and_ext_authz_policy_only_with_a_valid_token() {
    let jwks = auth_peers::start_jwks().await.expect("JWKS server");
    let authz = auth_peers::start_ext_authz()
        .await
        .expect("ext_authz server");
    let port = free_port();
    let bootstrap = format!(
        "static_resources:\n  listeners:{}\n  clusters:{}{}{}\n",
        http_listener(
            "ingress",
            port,
            "",
            "[{ name: all, domains: [\"*\"], routes: [{ match: { prefix: / }, route: { cluster: greeter } }] }]",
        ),
        static_cluster("greeter", &[free_port()], ""),
        static_cluster("jwks", &[jwks.addr.port()], ""),
        static_cluster("authz-grpc", &[authz.addr.port()], HTTP2),
    );
    let config = format!(
        r#"
bootstrap: envoy.yaml
workloads:
- name: greeter
  component: {greeter}
  clusters: [greeter]
  policy:
    grpc: {{ serve: true }}
    jwt:
      providers:
        idp:
          issuer: https://remote.test
          audiences: [api.test]
          remote_jwks: {{ uri: "http://jwks.local/jwks.json", cluster: jwks }}
    ext_authz:
      grpc: {{ cluster: authz-grpc, authority: authz.local, timeout: 2s }}
"#,
        greeter = component("greeter").display(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("envoy.yaml"), bootstrap).expect("write bootstrap");
    let path = dir.path().join("mesh.yaml");
    std::fs::write(&path, config).expect("write config");
    let _host = MeshHost::spawn(&["run".into(), "--config".into(), path.display().to_string()]);
    let target = format!("127.0.0.1:{port}");

    let tokens = Tokens::load();
    let valid = tokens.sign(
        "RS256",
        json!({ "iss": "https://remote.test", "aud": "api.test", "sub": "alice", "exp": 600 }),
    );
    let expired = tokens.sign(
        "ES256",
        json!({ "iss": "https://remote.test", "aud": "api.test", "exp": -600 }),
    );
    let bearer = |token: &str| format!("authorization=Bearer {token}");

    let anonymous = grpcio::call(&["--target", &target, "--name", "anon"]).await;
    assert_eq!(
        (anonymous.code.as_str(), anonymous.message.as_str()),
        ("UNAUTHENTICATED", "Jwt is missing")
    );
    let stale = grpcio::call(&[
        "--target",
        &target,
        "--name",
        "stale",
        "--metadata",
        &bearer(&expired),
    ])
    .await;
    assert_eq!(
        (stale.code.as_str(), stale.message.as_str()),
        ("UNAUTHENTICATED", "Jwt is expired")
    );
    let allowed = grpcio::call(&[
        "--target",
        &target,
        "--name",
        "alice",
        "--metadata",
        &bearer(&valid),
    ])
    .await;
    assert_eq!(
        (allowed.code.as_str(), allowed.replies.as_slice()),
        ("OK", &["Hello alice".to_owned()][..]),
        "{allowed:?}"
    );
    let refused = grpcio::call(&[
        "--target",
        &target,
        "--name",
        "alice",
        "--metadata",
        &bearer(&valid),
        "--metadata",
        "x-authz-deny=yes",
    ])
    .await;
    assert_eq!(
        refused.code, "PERMISSION_DENIED",
        "the authorization server's denial: {refused:?}"
    );
}
