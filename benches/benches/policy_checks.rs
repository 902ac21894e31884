//! Micro-benchmarks of the per-request policy checks: egress rules, the RBAC filter (as a
//! one-filter chain, the way the inbound pipeline runs it), gRPC content-type recognition and
//! `grpc-timeout`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_main};
use futures::FutureExt;
use http_body_util::BodyExt;
use mesh_host::egress::Egress;
use mesh_host::filters::{FilterChain, FilterRequest, Halt, Overrides};
use mesh_host::shared::RequestMeta;
use mesh_policies::egress::{EgressRequest, EgressRule, EgressRules, HostPattern, Scheme};
use mesh_policies::grpc::is_grpc_content_type;
use mesh_policies::http::{HeaderValue, Method};
use mesh_policies::limits::parse_grpc_timeout;
use mesh_policies::rbac::RbacConfig;
use mesh_xds::config::{HttpFilter, HttpFilterConfig, RbacFilter};

/// `n` rules alternating exact hosts and `*.` wildcards, all limited to 443.
fn egress_rules(n: usize) -> EgressRules {
    EgressRules::new(
        (0..n)
            .map(|i| EgressRule {
                authority: if i % 2 == 0 {
                    HostPattern::Exact(format!("svc-{i}.ns.svc.cluster.local"))
                } else {
                    HostPattern::Subdomains(format!("zone-{i}.example.com"))
                },
                ports: Some(vec![443]),
                methods: Some(vec![Method::GET, Method::POST]),
                schemes: None,
            })
            .collect(),
    )
}

fn bench_egress(c: &mut Criterion) {
    let mut group = c.benchmark_group("egress_check");
    for n in [10, 1000] {
        let rules = egress_rules(n);
        let hit_host = format!("api.v1.zone-{}.example.com", n - 1);
        let hit = EgressRequest {
            scheme: Scheme::Https,
            host: &hit_host,
            port: 443,
            method: &Method::GET,
        };
        let miss = EgressRequest {
            host: "unknown.other.example.org",
            ..hit
        };
        assert!(rules.check(&hit).is_ok() && rules.check(&miss).is_err());
        group.bench_function(format!("{n}_rules/hit"), |b| {
            b.iter(|| black_box(&rules).check(black_box(&hit)))
        });
        group.bench_function(format!("{n}_rules/miss"), |b| {
            b.iter(|| black_box(&rules).check(black_box(&miss)))
        });
    }
    group.finish();
}

/// Ten ALLOW policies; only the last one matches the benchmark request.
fn rbac_10_policies() -> FilterChain {
    let policies: String = (0..10)
        .map(|i| {
            format!(
                r#"
  policy-{i}:
    permissions:
    - and_rules:
        rules:
        - {{ url_path: {{ prefix: /api/v{i}/ }} }}
        - or_rules: {{ rules: [{{ method: GET }}, {{ method: POST }}] }}
        - {{ header: {{ name: x-tenant, string_match: {{ exact: acme, ignore_case: true }} }} }}
    principals:
    - {{ source_ip: 192.168.0.0/16 }}
    - {{ authenticated: {{ principal_name: {{ exact: "spiffe://cluster.local/ns/default/sa/client-{i}" }} }} }}"#
            )
        })
        .collect();
    let config: RbacConfig =
        serde_yaml::from_str(&format!("action: ALLOW\npolicies:{policies}")).expect("valid yaml");
    let rules = config.to_rules().expect("valid rules");
    FilterChain::compile(&[HttpFilter {
        name: "envoy.filters.http.rbac".to_owned(),
        disabled: false,
        config: HttpFilterConfig::Rbac(RbacFilter {
            rules: Some(Arc::new(rules)),
            shadow_rules: None,
        }),
    }])
    .expect("valid filter")
}

/// Whether the chain lets the request through (it never waits: RBAC decides at once).
fn allowed(chain: &FilterChain, head: &mut http::request::Parts, meta: &RequestMeta) -> bool {
    let upstream = Egress::new();
    let mut body = sync_wrapper::SyncWrapper::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let mut request = FilterRequest {
        head,
        meta,
        cluster: None,
        routed: true,
        body: &mut body,
        upstream: &upstream,
    };
    let decided = chain
        .decode(&mut request, Overrides::default())
        .now_or_never()
        .expect("RBAC decides without waiting");
    !matches!(decided.1, Some(Halt::Fail(_)))
}

fn bench_rbac(c: &mut Criterion) {
    let chain = rbac_10_policies();
    let peer: SocketAddr = "10.1.2.3:40000".parse().expect("valid address");
    let meta = RequestMeta {
        peer,
        remote_ip: peer.ip(),
        local: "10.0.0.1:8080".parse().expect("valid address"),
        tls: true,
        server_name: None,
        peer_principal: Some("spiffe://cluster.local/ns/default/sa/client-9".into()),
        peer_certificate: None,
        grpc: false,
        filter_chain: 0,
    };
    let request = |path: &str| {
        http::Request::get(format!("http://svc.default.svc.cluster.local{path}"))
            .header("x-tenant", HeaderValue::from_static("ACME"))
            .header("user-agent", HeaderValue::from_static("grpc-go/1.60"))
            .body(())
            .expect("valid request")
            .into_parts()
            .0
    };
    let mut last = request("/api/v9/users?limit=10");
    let mut none = request("/other");
    assert!(allowed(&chain, &mut last, &meta));
    assert!(!allowed(&chain, &mut none, &meta));
    let mut group = c.benchmark_group("rbac_10_policies");
    group.bench_function("last_policy_matches", |b| {
        b.iter(|| allowed(black_box(&chain), &mut last, black_box(&meta)))
    });
    group.bench_function("no_policy_matches", |b| {
        b.iter(|| allowed(black_box(&chain), &mut none, black_box(&meta)))
    });
    group.finish();
}

fn bench_grpc_content_type(c: &mut Criterion) {
    let grpc = HeaderValue::from_static("application/grpc+proto");
    let json = HeaderValue::from_static("application/json; charset=utf-8");
    let web = HeaderValue::from_static("application/grpc-web+proto");
    let mut group = c.benchmark_group("is_grpc_content_type");
    group.bench_function("grpc_proto", |b| {
        b.iter(|| is_grpc_content_type(black_box(&grpc)))
    });
    group.bench_function("json", |b| {
        b.iter(|| is_grpc_content_type(black_box(&json)))
    });
    group.bench_function("grpc_web", |b| {
        b.iter(|| is_grpc_content_type(black_box(&web)))
    });
    group.finish();
}

fn bench_grpc_timeout(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_grpc_timeout");
    group.bench_function("valid", |b| {
        b.iter(|| parse_grpc_timeout(black_box("12345678m")))
    });
    group.bench_function("invalid", |b| {
        b.iter(|| parse_grpc_timeout(black_box("1.5S")))
    });
    group.finish();
}

/// Criterion's generated group function lives in a private module so the
/// workspace's `missing_docs` lint does not ask for docs on it.
mod group {
    use super::{bench_egress, bench_grpc_content_type, bench_grpc_timeout, bench_rbac};
    use criterion::criterion_group;

    criterion_group!(
        benches,
        bench_egress,
        bench_rbac,
        bench_grpc_content_type,
        bench_grpc_timeout
    );
}

criterion_main!(group::benches);
