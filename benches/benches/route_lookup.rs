//! `RouteTable::select`: virtual-host lookup with 10, 1,000 and 10,000 virtual hosts (exact
//! domains plus wildcards), which must stay nearly flat, and the worst case of first-match
//! order: the last of 10,000 routes in one virtual host.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_host::routing::{Decision, RouteTable};
use mesh_xds::config::{
    ClusterSpecifier, ForwardAction, HeaderMutations, PathMatch, Route, RouteAction, RouteConfig,
    RouteMatch, VirtualHost,
};

fn route(prefix: String, cluster: String) -> Route {
    Route {
        name: String::new(),
        r#match: RouteMatch {
            path: PathMatch::Prefix(prefix),
            case_sensitive: true,
            headers: vec![],
            query_parameters: vec![],
            grpc: false,
        },
        action: RouteAction::Forward(Box::new(ForwardAction {
            cluster: ClusterSpecifier::Cluster(cluster),
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite_literal: None,
            timeout: None,
            timeout_configured: false,
            idle_timeout: None,
            max_stream_duration: None,
            grpc_timeout_header_max: None,
            retry_policy: None,
            rate_limits: Vec::new(),
            include_vh_rate_limits: false,
            hash_policy: Vec::new(),
            attempt_count: Default::default(),
        })),
        headers: HeaderMutations::default(),
        typed_per_filter_config: Default::default(),
        tracing: Default::default(),
    }
}

fn vhost(name: String, domains: Vec<String>, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name,
        domains,
        routes,
        headers: HeaderMutations::default(),
        retry_policy: None,
        typed_per_filter_config: Default::default(),
        rate_limits: Vec::new(),
    }
}

/// `n` virtual hosts: mostly exact domains, every tenth also a `*.` suffix and a `.*` prefix
/// wildcard of its own length, plus the `*` default.
fn many_vhosts(n: usize) -> RouteTable {
    let mut vhosts: Vec<_> = (0..n)
        .map(|i| {
            let mut domains = vec![format!("svc-{i}.ns.svc.cluster.local")];
            if i % 10 == 0 {
                domains.push(format!("*.zone-{i}.example.com"));
                domains.push(format!("tenant-{i}.*"));
            }
            vhost(
                format!("vh-{i}"),
                domains,
                vec![route("/".into(), format!("c-{i}"))],
            )
        })
        .collect();
    vhosts.push(vhost(
        "default".into(),
        vec!["*".into()],
        vec![route("/".into(), "default".into())],
    ));
    table(vhosts)
}

fn table(virtual_hosts: Vec<VirtualHost>) -> RouteTable {
    RouteTable::new(Arc::new(RouteConfig {
        name: "bench".into(),
        ignore_port_in_host_matching: false,
        virtual_hosts,
        headers: HeaderMutations::default(),
        typed_per_filter_config: Default::default(),
    }))
    .expect("valid route configuration")
}

fn request(host: &str, path: &str) -> http::request::Parts {
    http::Request::get(path)
        .header("host", host)
        .body(())
        .expect("valid request")
        .into_parts()
        .0
}

fn assert_forwarded(decision: &Decision, cluster: &str) {
    match decision {
        Decision::Forward(f) => assert_eq!(f.cluster, cluster),
        other => panic!("expected {cluster}, got {other:?}"),
    }
}

fn bench_domains(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup/vhosts");
    for n in [10, 1_000, 10_000] {
        let table = many_vhosts(n);
        let last = n - 1;
        let exact = request(&format!("svc-{last}.ns.svc.cluster.local"), "/api");
        assert_forwarded(&table.select(&exact, 0), &format!("c-{last}"));
        let wildcard_vhost = (n - 1) / 10 * 10;
        let suffix = request(&format!("api.zone-{wildcard_vhost}.example.com"), "/api");
        assert_forwarded(&table.select(&suffix, 0), &format!("c-{wildcard_vhost}"));
        let default = request("unknown.example.org", "/api");
        assert_forwarded(&table.select(&default, 0), "default");
        group.bench_with_input(BenchmarkId::new("exact", n), &exact, |b, r| {
            b.iter(|| table.select(black_box(r), 0));
        });
        group.bench_with_input(BenchmarkId::new("suffix_wildcard", n), &suffix, |b, r| {
            b.iter(|| table.select(black_box(r), 0));
        });
        group.bench_with_input(BenchmarkId::new("default", n), &default, |b, r| {
            b.iter(|| table.select(black_box(r), 0));
        });
    }
    group.finish();
}

fn bench_routes(c: &mut Criterion) {
    const ROUTES: usize = 10_000;
    let routes = (0..ROUTES)
        .map(|i| route(format!("/r{i}/"), format!("c-{i}")))
        .collect();
    let table = table(vec![vhost("all".into(), vec!["*".into()], routes)]);
    let last = request("a.com", &format!("/r{}/x", ROUTES - 1));
    assert_forwarded(&table.select(&last, 0), &format!("c-{}", ROUTES - 1));
    let first = request("a.com", "/r0/x");
    let mut group = c.benchmark_group("route_lookup/routes_10000");
    group.bench_function("first_route", |b| {
        b.iter(|| table.select(black_box(&first), 0))
    });
    group.bench_function("last_route", |b| {
        b.iter(|| table.select(black_box(&last), 0))
    });
    group.finish();
}

criterion_group!(benches, bench_domains, bench_routes);
criterion_main!(benches);
