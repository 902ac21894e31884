//! Property-based fuzzing of what reads untrusted input outside the front end
//! (`PROPTEST_CASES` sets how many cases; README, "Fuzzing"): the routing engine with the
//! header and path reading it does on every request, the egress policy with its authority
//! parsing, and the mesh config parser. None may panic, and each keeps a rule that holds
//! whatever the input.

use std::path::Path;
use std::sync::Arc;

use http::Method;
use mesh_host::mesh_config::{MeshConfigError, MeshConfigFile};
use mesh_host::routing::{Decision, RouteTable};
use mesh_policies::egress::{
    EgressConfig, EgressRequest, EgressRuleConfig, EgressRules, Scheme, is_metadata_address,
    parse_authority,
};
use mesh_xds::bootstrap::{Bootstrap, Format};
use proptest::collection::vec;
use proptest::prelude::*;

const BOOTSTRAP: &str = r#"
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
          route_config:
            name: fuzz
            virtual_hosts:
            - name: exact
              domains: ["api.example.com"]
              routes: [{ match: { prefix: / }, route: { cluster: exact } }]
            - name: wildcards
              domains: ["*.example.com", "api.*", "ported.test:8080"]
              routes:
              - { match: { path: /exact }, route: { cluster: path } }
              - { match: { safe_regex: { regex: "/r/[0-9]+" } }, route: { cluster: regex, regex_rewrite: { pattern: { regex: "^/r/([0-9]+)$" }, substitution: "/s/\\1" } } }
              - { match: { path_separated_prefix: /sep }, route: { cluster: sep } }
              - { match: { prefix: /Case, case_sensitive: false }, route: { cluster: caseless, prefix_rewrite: /lower } }
              - { match: { prefix: /, headers: [{ name: x-range, range_match: { start: 1, end: 9 } }] }, route: { cluster: range } }
              - { match: { prefix: /, query_parameters: [{ name: q, string_match: { prefix: a } }] }, route: { cluster: query } }
              - { match: { prefix: /redirect }, redirect: { path_redirect: /elsewhere, response_code: FOUND } }
              - { match: { prefix: / }, route: { weighted_clusters: { clusters: [{ name: blue, weight: 1 }, { name: green, weight: 3 }] } } }
            - name: fallback
              domains: ["*"]
              routes: [{ match: { prefix: /ok }, direct_response: { status: 200 } }]
"#;

fn table() -> RouteTable {
    let bootstrap = Bootstrap::parse(BOOTSTRAP, Format::Yaml, "fuzz.yaml").expect("bootstrap");
    let listener = &bootstrap.static_config.listeners["main"];
    let mesh_xds::config::RouteSource::Inline(routes) = &listener.filter_chains[0].http.route
    else {
        panic!("inline routes expected");
    };
    RouteTable::new(Arc::clone(routes)).expect("route table")
}

/// Bytes that make a header value (or are refused as one).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.*:-]{0,24}",
        "(api|x|ported)\\.(example\\.com|test)(:[0-9]{1,5})?",
        any::<String>(),
    ]
}

fn request() -> impl Strategy<Value = http::request::Parts> {
    let method = prop::sample::select(vec!["GET", "POST", "CONNECT", "OPTIONS", "PURGE"]);
    let path = prop_oneof![
        "/[a-zA-Z0-9/._~%?=&-]{0,40}",
        "/(exact|r/[0-9]{1,4}|sep|sep/x|CASE/x|redirect|ok)(\\?q=[a-z]{0,3})?",
    ];
    let headers = vec(
        (
            prop::sample::select(vec!["host", "x-range", "x-other"]),
            text(),
        ),
        0..4,
    );
    (
        method,
        path,
        prop::option::of("(http|https)://[a-z.]{1,12}(:[0-9]{1,4})?"),
        headers,
    )
        .prop_filter_map("not a request", |(method, path, authority, headers)| {
            let uri = match authority {
                Some(authority) => format!("{authority}{path}"),
                None => path,
            };
            let mut builder = http::Request::builder().method(method).uri(uri);
            for (name, value) in headers {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    builder = builder.header(name, value);
                }
            }
            builder.body(()).ok().map(|request| request.into_parts().0)
        })
}

fn policy(allow: &[&str], ip_literal: bool) -> EgressRules {
    EgressRules::from_config(&EgressConfig {
        allow: allow
            .iter()
            .map(|authority| EgressRuleConfig {
                authority: (*authority).to_owned(),
                ports: None,
                methods: None,
                schemes: None,
                allow_ip_literal: ip_literal,
            })
            .collect(),
    })
    .expect("valid rules")
}

fn mesh_config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "bootstrap",
        "listen",
        "admin",
        "workloads",
        "identity",
        "egress_listener",
        "tls",
        "unknown",
    ]);
    let scalar = prop_oneof![
        Just("127.0.0.1:8080".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("- { name: a, component: a.wasm, clusters: [a] }".to_owned()),
        Just("- { name: a, component: a.wasm, policy: { grpc: { serve: yes }, rate_limit: { max_tokens: -1 } } }".to_owned()),
        Just("{ trust_domain: '', namespace: 7 }".to_owned()),
        "[ -~]{0,30}",
    ];
    prop_oneof![
        vec((key, scalar), 0..5).prop_map(|entries| {
            entries
                .into_iter()
                .map(|(key, value)| format!("{key}: {value}\n"))
                .collect::<String>()
        }),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn fuzz_routing_never_panics_and_decides_the_same_way_twice(request in request(), random in any::<u64>()) {
        let table = table();
        let first: Decision = table.select(&request, random);
        prop_assert_eq!(first, table.select(&request, random));
    }

    #[test]
    fn fuzz_egress_checks_never_panic_and_never_let_metadata_or_unlisted_ip_literals_out(
        authority in text(),
        https in any::<bool>(),
    ) {
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        let Ok((host, port)) = parse_authority(&authority, scheme) else {
            return Ok(());
        };
        let request = EgressRequest { scheme, host, port, method: &Method::GET };
        let strict = policy(&["*.example.com", "api.test"], false);
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            prop_assert!(strict.check(&request).is_err(), "{authority}: IP literal let out");
            let literal = match ip {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            };
            let listed = policy(&[literal.as_str()], true);
            if is_metadata_address(ip) {
                prop_assert!(listed.check(&request).is_err(), "{authority}: metadata let out");
            }
        }
        if host.trim_end_matches('.').eq_ignore_ascii_case("metadata.google.internal") {
            prop_assert!(policy(&["*"], false).check(&request).is_err());
        }
    }

    #[test]
    fn fuzz_mesh_config_parsing_never_panics_and_errors_name_the_file(text in mesh_config_text()) {
        match MeshConfigFile::parse(&text, "fuzz.yaml", Path::new(".")) {
            Ok(_) => {}
            Err(error @ MeshConfigError::Read { .. }) => prop_assert!(false, "{error}"),
            Err(error) => prop_assert!(error.to_string().contains("fuzz.yaml"), "{error}"),
        }
    }
}
