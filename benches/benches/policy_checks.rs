//! Micro-benchmarks of the per-request policy checks in `mesh-policies`:
//! egress rules, RBAC, gRPC content-type recognition and `grpc-timeout`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_main};
use mesh_policies::egress::{EgressRequest, EgressRule, EgressRules, HostPattern, Scheme};
use mesh_policies::grpc::is_grpc_content_type;
use mesh_policies::http::{HeaderMap, HeaderValue, Method};
use mesh_policies::limits::parse_grpc_timeout;
use mesh_policies::rbac::{
    Action, HeaderKey, HeaderMatch, InboundRequest, Permission, Policy, Principal, Rbac,
    StringMatch,
};

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
fn rbac_10_policies() -> Rbac {
    let policies = (0..10)
        .map(|i| {
            let policy = Policy {
                permissions: vec![Permission::And(vec![
                    Permission::UrlPath(StringMatch::prefix(format!("/api/v{i}/"))),
                    Permission::Or(vec![
                        Permission::Method(Method::GET),
                        Permission::Method(Method::POST),
                    ]),
                    Permission::Header(HeaderMatch {
                        name: HeaderKey::Named("x-tenant".parse().expect("valid header name")),
                        matcher: StringMatch::exact("acme").ignore_case(true),
                    }),
                ])],
                principals: vec![
                    Principal::SourceIp("192.168.0.0/16".parse().expect("valid cidr")),
                    Principal::Authenticated {
                        principal_name: Some(StringMatch::exact(format!(
                            "spiffe://cluster.local/ns/default/sa/client-{i}"
                        ))),
                    },
                ],
            };
            (format!("policy-{i}"), policy)
        })
        .collect();
    Rbac {
        action: Action::Allow,
        policies,
    }
}

fn bench_rbac(c: &mut Criterion) {
    let rbac = rbac_10_policies();
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("ACME"));
    headers.insert("user-agent", HeaderValue::from_static("grpc-go/1.60"));
    let ip: IpAddr = "10.1.2.3".parse().expect("valid ip");
    let last = InboundRequest {
        method: &Method::GET,
        path: "/api/v9/users?limit=10",
        authority: Some("svc.default.svc.cluster.local"),
        headers: &headers,
        source_ip: ip,
        direct_remote_ip: ip,
        destination_port: 8080,
        peer_principal: Some("spiffe://cluster.local/ns/default/sa/client-9"),
    };
    let none = InboundRequest {
        path: "/other",
        ..last
    };
    assert_eq!(rbac.check(&last), Ok(Some("policy-9")));
    assert!(rbac.check(&none).is_err());
    let mut group = c.benchmark_group("rbac_10_policies");
    group.bench_function("last_policy_matches", |b| {
        b.iter(|| black_box(&rbac).evaluate(black_box(&last)))
    });
    group.bench_function("no_policy_matches", |b| {
        b.iter(|| black_box(&rbac).evaluate(black_box(&none)))
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
