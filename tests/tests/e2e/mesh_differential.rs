//! Differential routing test against a real Envoy 1.40 (issue #5): one bootstrap,
//! generated once from the route configurations below, is loaded into Envoy and into
//! mesh-host; both proxy to the same native echo upstreams (one per cluster, see
//! `mesh_host_tests::echo_upstream`). Every case is sent to both, and mesh-host must
//! agree with Envoy on the status, the cluster, the forwarded method, path, `Host`
//! and headers, the `x-` response headers, the body of direct responses and the
//! `Location` of redirects (`mesh_host_tests::differential`, which also lists the
//! headers each proxy adds by itself and that are not compared, and why).
//!
//! Each case also states what Envoy does, checked against the real Envoy here, so
//! the cases document Envoy's rules and a change of Envoy's behaviour shows up as
//! such rather than as a mesh-host bug. Where Envoy's behaviour is surprising, the
//! case says why (runtime guard, router behaviour).

use std::collections::HashMap;
use std::net::SocketAddr;

use mesh_host_tests::component;
use mesh_host_tests::differential::{self, Case, ListenerSpec, case, get, to};
use mesh_host_tests::echo_upstream::{CLUSTER_HEADER, EchoUpstream, SECRET_HEADER};
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;

/// The route configuration of the `main` listener: every matcher and action, told
/// apart by `Host`. The configuration level adds headers to every forwarded request
/// and every response, so each case also checks the configuration-level mutations.
const MAIN_ROUTES: &str = r#"
name: differential
request_headers_to_add:
- {header: {key: x-level, value: config}, append_action: APPEND_IF_EXISTS_OR_ADD}
- {header: {key: x-winner, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
request_headers_to_remove: [x-config-drop]
response_headers_to_add:
- {header: {key: x-served-by, value: config}, append_action: APPEND_IF_EXISTS_OR_ADD}
virtual_hosts:
- {name: exact, domains: ["api.example.com"], routes: [{match: {prefix: /}, route: {cluster: exact}}]}
- {name: suffix, domains: ["*.example.com"], routes: [{match: {prefix: /}, route: {cluster: suffix}}]}
- {name: longer-suffix, domains: ["*-bar.example.com"], routes: [{match: {prefix: /}, route: {cluster: longer-suffix}}]}
- {name: prefix, domains: ["api.*"], routes: [{match: {prefix: /}, route: {cluster: prefix}}]}
- {name: longer-prefix, domains: ["api.internal.*"], routes: [{match: {prefix: /}, route: {cluster: longer-prefix}}]}
- {name: ported, domains: ["ported.com:8080"], routes: [{match: {prefix: /}, route: {cluster: ported}}]}
- name: paths
  domains: ["paths.test"]
  routes:
  - {match: {path: /exact}, route: {cluster: path-exact}}
  - {match: {path: /CaseLess, case_sensitive: false}, route: {cluster: path-caseless}}
  - {match: {path_separated_prefix: /sep}, route: {cluster: separated}}
  - {match: {safe_regex: {regex: "/regex/[0-9]+"}}, route: {cluster: regex}}
  - {match: {prefix: /Prefix, case_sensitive: false}, route: {cluster: prefix-caseless}}
  - {match: {prefix: /api/}, route: {cluster: api}}
  - {match: {prefix: /api}, route: {cluster: api-loose}}
  - {match: {prefix: /}, route: {cluster: root}}
- name: headers
  domains: ["headers.test", "headers.internal"]
  routes:
  - {match: {prefix: /, headers: [{name: x-exact, string_match: {exact: "yes"}}]}, route: {cluster: header-exact}}
  - {match: {prefix: /, headers: [{name: x-present, present_match: true}]}, route: {cluster: present}}
  - {match: {prefix: /, headers: [{name: x-go, string_match: {exact: go}}, {name: x-block, present_match: false}]}, route: {cluster: absent}}
  - {match: {prefix: /, headers: [{name: x-inverted, string_match: {exact: "no"}, invert_match: true}]}, route: {cluster: inverted}}
  - {match: {prefix: /, headers: [{name: x-range, range_match: {start: 10, end: 20}}]}, route: {cluster: range}}
  - {match: {prefix: /, headers: [{name: ":method", string_match: {exact: POST}}, {name: x-all, string_match: {prefix: a}}]}, route: {cluster: all-of}}
  - {match: {prefix: /, headers: [{name: x-multi, string_match: {exact: "1,2"}}]}, route: {cluster: multi-joined}}
  - {match: {prefix: /, headers: [{name: x-multi, string_match: {exact: "2"}}]}, route: {cluster: multi}}
  - {match: {prefix: /, headers: [{name: ":authority", string_match: {suffix: ".internal"}}]}, route: {cluster: authority}}
  - {match: {prefix: /, headers: [{name: ":path", string_match: {contains: "debug=1"}}]}, route: {cluster: pseudo-path}}
  - {match: {prefix: /, headers: [{name: x-regex, string_match: {safe_regex: {regex: "v[0-9]+"}}}]}, route: {cluster: header-regex}}
  - {match: {prefix: /, headers: [{name: x-caseless, string_match: {exact: ABC, ignore_case: true}}]}, route: {cluster: caseless}}
  - {match: {prefix: /}, route: {cluster: root}}
- name: query
  domains: ["query.test"]
  routes:
  - {match: {prefix: /, query_parameters: [{name: debug, present_match: true}]}, route: {cluster: query-present}}
  - {match: {prefix: /, query_parameters: [{name: v, string_match: {exact: "2"}}]}, route: {cluster: query-exact}}
  - {match: {prefix: /}, route: {cluster: root}}
- name: grpc
  domains: ["grpc.test"]
  routes:
  - {match: {prefix: /, grpc: {}}, route: {cluster: grpc}}
  - {match: {prefix: /}, route: {cluster: root}}
- name: actions
  domains: ["actions.test"]
  request_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: APPEND_IF_EXISTS_OR_ADD}
  - {header: {key: x-winner, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  request_headers_to_remove: [x-vhost-drop]
  response_headers_to_add:
  - {header: {key: x-served-by, value: vhost}, append_action: APPEND_IF_EXISTS_OR_ADD}
  routes:
  - {match: {prefix: /rewrite/}, route: {cluster: service, prefix_rewrite: /v2/}}
  - {match: {prefix: /strip/}, route: {cluster: service, prefix_rewrite: /}}
  - {match: {path: /exact-rewrite}, route: {cluster: service, prefix_rewrite: /new}}
  - match: {safe_regex: {regex: "/users/[0-9]+/profile"}}
    route:
      cluster: service
      regex_rewrite: {pattern: {regex: "^/users/([0-9]+)/profile$"}, substitution: "/profiles/\\1"}
  - {match: {prefix: /host}, route: {cluster: service, host_rewrite_literal: upstream.internal}}
  - match: {prefix: /headers}
    request_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: APPEND_IF_EXISTS_OR_ADD}
    - {header: {key: x-winner, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-keep, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-only-if-there, value: replaced}, append_action: OVERWRITE_IF_EXISTS}
    request_headers_to_remove: [x-secret]
    response_headers_to_add:
    - {header: {key: x-served-by, value: route}, append_action: APPEND_IF_EXISTS_OR_ADD}
    - {header: {key: x-upstream, value: overwritten}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    response_headers_to_remove: [x-upstream-secret]
    route: {cluster: service}
  - match: {prefix: /remove-then-add}
    request_headers_to_add: [{header: {key: x-replace, value: new}, append_action: APPEND_IF_EXISTS_OR_ADD}]
    request_headers_to_remove: [x-replace]
    route: {cluster: service}
  - match: {prefix: /weighted-first}
    route:
      weighted_clusters:
        clusters:
        - name: blue
          weight: 100
          request_headers_to_add: [{header: {key: x-level, value: blue}, append_action: APPEND_IF_EXISTS_OR_ADD}]
          response_headers_to_add: [{header: {key: x-weighted, value: blue}}]
        - {name: green, weight: 0}
  - match: {prefix: /weighted-second}
    route:
      weighted_clusters:
        clusters:
        - name: blue
          weight: 0
          request_headers_to_add: [{header: {key: x-level, value: blue}, append_action: APPEND_IF_EXISTS_OR_ADD}]
        - {name: green, weight: 100}
  - {match: {prefix: /by-header}, route: {cluster_header: x-cluster}}
  - {match: {prefix: /direct}, direct_response: {status: 418, body: {inline_string: teapot}}}
  - {match: {prefix: /no-body}, direct_response: {status: 204}}
  - {match: {prefix: /}, route: {cluster: service}}
- name: redirects
  domains: ["redirects.test", "redirects.test:80", "redirects.test:8080"]
  routes:
  - {match: {prefix: /https}, redirect: {https_redirect: true}}
  - {match: {prefix: /old/}, redirect: {prefix_rewrite: /new/, response_code: FOUND}}
  - {match: {prefix: /moved}, redirect: {path_redirect: /landing, strip_query: true}}
  - {match: {prefix: /keep-query}, redirect: {path_redirect: /landing}}
  - {match: {prefix: /elsewhere}, redirect: {scheme_redirect: https, host_redirect: other.example.com, port_redirect: 8443, response_code: PERMANENT_REDIRECT}}
  - {match: {prefix: /own-query}, redirect: {path_redirect: "/t?src=1", strip_query: true, response_code: TEMPORARY_REDIRECT}}
  - {match: {prefix: /port}, redirect: {port_redirect: 9090, response_code: SEE_OTHER}}
- {name: default, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: default}}]}
"#;

/// The route configuration of the `strict` listener: no `*` virtual host, so an
/// unknown authority and an unmatched path are both Envoy's 404.
const STRICT_ROUTES: &str = r#"
name: strict
virtual_hosts:
- {name: only, domains: ["strict.test"], routes: [{match: {prefix: /only}, route: {cluster: strict}}]}
"#;

/// Every cluster the configurations name (or `cluster_header` picks): each gets an
/// echo upstream. Envoy refuses a static route configuration naming a cluster that
/// does not exist, so a missing entry fails at start-up, not silently.
const CLUSTERS: &[&str] = &[
    "exact",
    "suffix",
    "longer-suffix",
    "prefix",
    "longer-prefix",
    "ported",
    "default",
    "path-exact",
    "path-caseless",
    "separated",
    "regex",
    "prefix-caseless",
    "api",
    "api-loose",
    "root",
    "header-exact",
    "present",
    "absent",
    "inverted",
    "range",
    "all-of",
    "multi",
    "multi-joined",
    "authority",
    "pseudo-path",
    "header-regex",
    "caseless",
    "query-present",
    "query-exact",
    "grpc",
    "service",
    "blue",
    "green",
    "picked",
    "strict",
];

/// mesh-host needs one `--workload`; it serves a cluster no route names.
const UNUSED_WORKLOAD_CLUSTER: &str = "differential-unused";

/// The cases: a table, one case a line where it fits, so rustfmt is kept out.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use differential::Expect::{Direct, Local, Redirect};
    let paths = |target| get("paths.test", target);
    let headers = || get("headers.test", "/");
    let query = |target| get("query.test", target);
    let actions = |target| get("actions.test", target);
    let post_grpc = |target, content_type| {
        get("grpc.test", target).h2c().method("POST").header("content-type", content_type)
    };
    vec![
        // Virtual hosts: exact > longest `*.suffix` > longest `prefix.*` > `*`; case-insensitive;
        // the port is part of the authority (no `strip_any_host_port`).
        case("domain_exact", get("api.example.com", "/"), to("exact")),
        case("domain_match_is_case_insensitive", get("API.Example.COM", "/"), to("exact")),
        case("domain_suffix_wildcard", get("www.example.com", "/"), to("suffix")),
        case("domain_longest_suffix_wins", get("foo-bar.example.com", "/"), to("longer-suffix")),
        case("domain_suffix_beats_prefix", get("api.foo.example.com", "/"), to("suffix")),
        case("domain_prefix_wildcard", get("api.other.org", "/"), to("prefix")),
        case("domain_longest_prefix_wins", get("api.internal.corp", "/"), to("longer-prefix")),
        case("domain_default_vhost", get("unknown.org", "/x?y=1"), to("default")),
        case("domain_port_is_not_stripped", get("api.example.com:8080", "/"), to("prefix")),
        case("domain_with_port_matches_exactly", get("ported.com:8080", "/"), to("ported")),
        case("domain_with_port_needs_the_port", get("ported.com", "/"), to("default")),
        // An absolute-form target names the authority; Envoy's HTTP/1 codec replaces `Host`
        // with it (RFC 9112 section 3.2.2).
        case("domain_absolute_form_beats_host_header",
             get("unknown.org", "http://api.example.com/abs?q=1"),
             to("exact").path("/abs?q=1").host("api.example.com")),
        case("domain_strict_match", get("strict.test", "/only/x").on("strict"), to("strict")),
        case("domain_unknown_without_default_is_404", get("other.test", "/only").on("strict"), Local(404)),
        case("route_no_match_is_404", get("strict.test", "/other").on("strict"), Local(404)),
        // Paths, case sensitivity, first-match order.
        case("path_exact", paths("/exact"), to("path-exact")),
        case("path_exact_ignores_query", paths("/exact?x=1"), to("path-exact")),
        case("path_exact_rejects_trailing_slash", paths("/exact/"), to("root")),
        case("path_exact_is_case_sensitive_by_default", paths("/EXACT"), to("root")),
        case("path_exact_case_insensitive", paths("/caseless"), to("path-caseless")),
        case("path_separated_prefix_alone", paths("/sep"), to("separated")),
        case("path_separated_prefix_with_segment", paths("/sep/x"), to("separated")),
        case("path_separated_prefix_with_query", paths("/sep?q=1"), to("separated")),
        case("path_separated_prefix_needs_separator", paths("/sepx"), to("root")),
        case("path_regex_full_match", paths("/regex/42"), to("regex")),
        case("path_regex_ignores_query", paths("/regex/42?x=y"), to("regex")),
        case("path_regex_is_anchored", paths("/regex/42/more"), to("root")),
        case("path_prefix_case_insensitive", paths("/prefix/A"), to("prefix-caseless")),
        case("route_first_match_wins", paths("/api/users"), to("api")),
        case("route_later_route_when_earlier_misses", paths("/apix"), to("api-loose")),
        // Header matchers.
        case("header_exact", headers().header("x-exact", "yes"), to("header-exact")),
        case("header_exact_mismatch", headers().header("x-exact", "no"), to("root")),
        case("header_present_with_empty_value", headers().header("x-present", ""),
             to("present").header("x-present", Some(""))),
        case("header_present_false_requires_absence", headers().header("x-go", "go"), to("absent")),
        case("header_present_false_rejects_presence",
             headers().header("x-go", "go").header("x-block", "1"), to("root")),
        case("header_invert_match", headers().header("x-inverted", "yes"), to("inverted")),
        case("header_invert_match_inverts", headers().header("x-inverted", "no"), to("root")),
        case("header_invert_match_missing_header_never_matches", headers(), to("root")),
        case("header_range_inside", headers().header("x-range", "15"), to("range")),
        case("header_range_end_is_exclusive", headers().header("x-range", "20"), to("root")),
        case("header_all_matchers_must_match",
             headers().method("POST").header("x-all", "abc"), to("all-of")),
        case("header_one_failing_matcher_fails", headers().header("x-all", "abc"), to("root")),
        // Envoy 1.40 matches each value of a repeated header on its own and the matcher holds
        // when one value does (runtime guard `envoy.reloadable_features.match_headers_individually`,
        // on by default; with it off, Envoy matches the values joined with `,`, the
        // CVE-2020-25017 behaviour). Checked against Envoy 1.40 with the guard both ways.
        case("header_repeated_header_matches_when_one_value_does",
             headers().header("x-multi", "1").header("x-multi", "2"),
             to("multi").header("x-multi", Some("1,2"))),
        case("header_comma_separated_value_is_one_value",
             headers().header("x-multi", "1,2"), to("multi-joined")),
        // `invert_match` inverts that outcome: no value may match.
        case("header_invert_match_with_repeated_values",
             headers().header("x-inverted", "no").header("x-inverted", "yes"), to("root")),
        case("header_pseudo_authority", get("headers.internal", "/"), to("authority")),
        case("header_pseudo_path_includes_query", get("headers.test", "/p?debug=1"), to("pseudo-path")),
        case("header_safe_regex", headers().header("x-regex", "v12"), to("header-regex")),
        case("header_safe_regex_is_anchored", headers().header("x-regex", "v12x"), to("root")),
        case("header_ignore_case", headers().header("x-caseless", "abc"), to("caseless")),
        // Query parameters: the first value of a name counts.
        case("query_present", query("/?debug"), to("query-present")),
        case("query_present_with_empty_value", query("/?x=1&debug="), to("query-present")),
        case("query_exact", query("/?v=2"), to("query-exact")),
        case("query_exact_mismatch", query("/?v=3"), to("root")),
        case("query_first_value_counts", query("/?v=3&v=2"), to("root")),
        case("query_missing", query("/?x=2"), to("root")),
        // gRPC: `application/grpc` and `application/grpc+<codec>`, not gRPC-Web. Sent over h2c:
        // mesh-host's front end answers gRPC over HTTP/1.x itself (grpc-status 12, "gRPC
        // requires HTTP/2") where Envoy proxies it, a front-end policy rather than a routing rule.
        case("grpc_content_type",
             post_grpc("/pkg.Svc/Call", "application/grpc"), to("grpc")),
        case("grpc_plus_codec_suffix",
             post_grpc("/pkg.Svc/Call", "application/grpc+proto"), to("grpc")),
        case("grpc_web_is_not_grpc",
             post_grpc("/pkg.Svc/Call", "application/grpc-web"), to("root")),
        case("grpc_requires_content_type", get("grpc.test", "/pkg.Svc/Call").h2c(), to("root")),
        // Rewrites: the old path goes to `x-envoy-original-path` (router, unless
        // `suppress_envoy_headers`).
        case("prefix_rewrite_replaces_matched_prefix", actions("/rewrite/x?q=1"),
             to("service").path("/v2/x?q=1").header("x-envoy-original-path", Some("/rewrite/x?q=1"))),
        case("prefix_rewrite_to_root", actions("/strip/x"), to("service").path("/x")),
        case("prefix_rewrite_on_exact_path", actions("/exact-rewrite?a=b"), to("service").path("/new?a=b")),
        case("regex_rewrite_with_capture_keeps_query", actions("/users/42/profile?full=1"),
             to("service").path("/profiles/42?full=1")
                 .header("x-envoy-original-path", Some("/users/42/profile?full=1"))),
        case("no_rewrite_keeps_path", actions("/plain?x"),
             to("service").header("x-envoy-original-path", None)),
        // The old host goes to `x-envoy-original-host` (router, unless `suppress_envoy_headers`).
        case("host_rewrite_literal_sets_host", actions("/host"),
             to("service").host("upstream.internal").header("x-envoy-original-host", Some("actions.test"))),
        // Header mutations: route, then virtual host, then configuration; so appends read
        // route,vhost,config and the least specific overwrite wins.
        case("header_mutations_append_route_then_vhost_then_config",
             actions("/headers").header("x-level", "client"),
             to("service").header("x-level", Some("client,route,vhost,config"))),
        case("header_mutations_least_specific_overwrite_wins",
             actions("/headers").header("x-winner", "client"),
             to("service").header("x-winner", Some("config"))),
        case("header_mutations_add_if_absent_keeps_client_value",
             actions("/headers").header("x-keep", "client"), to("service").header("x-keep", Some("client"))),
        case("header_mutations_add_if_absent_adds", actions("/headers"),
             to("service").header("x-keep", Some("new")).header("x-only-if-there", None)),
        case("header_mutations_overwrite_if_exists",
             actions("/headers").header("x-only-if-there", "old"),
             to("service").header("x-only-if-there", Some("replaced"))),
        case("header_mutations_remove_at_route", actions("/headers").header("x-secret", "s"),
             to("service").header("x-secret", None)),
        case("header_mutations_remove_at_vhost", actions("/plain").header("x-vhost-drop", "1"),
             to("service").header("x-vhost-drop", None).header("x-level", Some("vhost,config"))),
        case("header_mutations_remove_at_config", actions("/plain").header("x-config-drop", "1"),
             to("service").header("x-config-drop", None)),
        case("header_mutations_remove_before_add",
             actions("/remove-then-add").header("x-replace", "client"),
             to("service").header("x-replace", Some("new"))),
        case("header_mutations_client_headers_pass_through",
             actions("/plain").header("x-client", "kept"), to("service").header("x-client", Some("kept"))),
        case("response_header_mutations_route_then_vhost_then_config", actions("/headers"), to("service"))
            .response("x-served-by", Some("route,vhost,config"))
            .response(CLUSTER_HEADER, Some("overwritten"))
            .response(SECRET_HEADER, None),
        case("response_header_mutations_without_route_level", actions("/plain"), to("service"))
            .response("x-served-by", Some("vhost,config"))
            .response(CLUSTER_HEADER, Some("service"))
            .response(SECRET_HEADER, Some("from-upstream")),
        case("response_header_mutations_config_level_only", get("api.example.com", "/"), to("exact"))
            .response("x-served-by", Some("config")),
        // Weighted clusters (deterministic: one nonzero weight); an entry's own mutations
        // come before the route's chain.
        case("weighted_first_entry", actions("/weighted-first"),
             to("blue").header("x-level", Some("blue,vhost,config")))
            .response("x-weighted", Some("blue")),
        case("weighted_second_entry", actions("/weighted-second"),
             to("green").header("x-level", Some("vhost,config")))
            .response("x-weighted", None),
        // cluster_header: the first value names the cluster; absent, empty or unknown is
        // `cluster_not_found_response_code` (503). The route matched, so Envoy's local reply
        // carries the route's response headers (the router finalizes the headers of its local
        // replies with the route entry).
        case("cluster_header_present", actions("/by-header").header("x-cluster", "picked"),
             to("picked").header("x-cluster", Some("picked"))),
        case("cluster_header_first_value",
             actions("/by-header").header("x-cluster", "picked").header("x-cluster", "service"),
             to("picked")),
        case("cluster_header_absent_is_503", actions("/by-header"), Local(503))
            .response("x-served-by", Some("vhost,config")),
        case("cluster_header_empty_is_503", actions("/by-header").header("x-cluster", ""), Local(503)),
        case("cluster_header_unknown_cluster_is_503",
             actions("/by-header").header("x-cluster", "nowhere"), Local(503)),
        // Direct responses and redirects: Envoy adds the response headers of the route's levels
        // to them too (the router calls `DirectResponseEntry::finalizeResponseHeaders` on its
        // local reply).
        case("direct_response_with_body", actions("/direct"), Direct(418, "teapot"))
            .response("x-served-by", Some("vhost,config")),
        case("direct_response_without_body", actions("/no-body"), Direct(204, "")),
        // Redirects.
        case("redirect_https_strips_default_port", get("redirects.test:80", "/https?x=1"),
             Redirect(301, "https://redirects.test/https?x=1"))
            .response("x-served-by", Some("config")),
        case("redirect_prefix_rewrite", get("redirects.test", "/old/page?x=1"),
             Redirect(302, "http://redirects.test/new/page?x=1")),
        case("redirect_path_strip_query", get("redirects.test", "/moved?x=1"),
             Redirect(301, "http://redirects.test/landing")),
        case("redirect_path_keeps_query", get("redirects.test", "/keep-query?x=1"),
             Redirect(301, "http://redirects.test/landing?x=1")),
        case("redirect_scheme_host_port", get("redirects.test:8080", "/elsewhere"),
             Redirect(308, "https://other.example.com:8443/elsewhere")),
        case("redirect_path_with_own_query_ignores_strip_query",
             get("redirects.test", "/own-query?x=1"), Redirect(307, "http://redirects.test/t?src=1")),
        case("redirect_port_replaces_request_port", get("redirects.test:8080", "/port"),
             Redirect(303, "http://redirects.test:9090/port")),
    ]
}

/// The bootstrap for listeners on `ports` (main, strict).
fn bootstrap(ports: (u16, u16), upstreams: &[EchoUpstream]) -> String {
    let listeners = [
        ListenerSpec {
            name: "main",
            port: ports.0,
            routes: MAIN_ROUTES,
            filters: "",
            tls: None,
            manager: "",
        },
        ListenerSpec {
            name: "strict",
            port: ports.1,
            routes: STRICT_ROUTES,
            filters: "",
            tls: None,
            manager: "",
        },
    ];
    differential::bootstrap(&listeners, upstreams)
}

fn listeners(ports: (u16, u16)) -> HashMap<&'static str, SocketAddr> {
    HashMap::from([
        ("main", SocketAddr::from(([127, 0, 0, 1], ports.0))),
        ("strict", SocketAddr::from(([127, 0, 0, 1], ports.1))),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_route_every_case_alike() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }

    let mut upstreams = Vec::new();
    for cluster in CLUSTERS {
        upstreams.push(
            EchoUpstream::start(cluster)
                .await
                .expect("start echo upstream"),
        );
    }

    let envoy_ports = (free_port(), free_port());
    let Some(envoy) = Envoy::start(&bootstrap(envoy_ports, &upstreams)).await else {
        return;
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let mesh_ports = (free_port(), free_port());
    std::fs::write(&path, bootstrap(mesh_ports, &upstreams)).expect("write bootstrap");
    // Killed on drop, at the end of the test.
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("{UNUSED_WORKLOAD_CLUSTER}={}", component("hello").display()),
    ]);

    let report = differential::run(&cases, &listeners(envoy_ports), &listeners(mesh_ports)).await;
    // mesh-host's log is already on stderr (prefixed `[mesh-host]`); Envoy's only
    // matters when Envoy itself surprised.
    let envoy_log = if report.envoy_unexpected.is_empty() {
        String::new()
    } else {
        format!("\nenvoy log:\n{}", envoy.log())
    };
    assert!(
        report.is_clean(),
        "{} cases; Envoy differs from the expectation in {}:\n  {}\n\
         mesh-host disagrees with Envoy in {}:\n  {}{envoy_log}",
        cases.len(),
        report.envoy_unexpected.len(),
        report.envoy_unexpected.join("\n  "),
        report.disagreements.len(),
        report.disagreements.join("\n  "),
    );
}
