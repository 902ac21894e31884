//! Route-matching conformance: each case is a route configuration in Envoy's own YAML (loaded
//! through `mesh_xds::bootstrap`, as a user's file would be), a request, and what Envoy does with
//! it. The configurations double as documentation of the behaviour; the same files can be fed to
//! a real Envoy to check the expectations.

use std::sync::Arc;
use std::time::Duration;

use mesh_host::routing::{Decision, ForwardDecision, RouteTable};
use mesh_xds::bootstrap::{Bootstrap, Format};
use mesh_xds::config::RouteSource;

/// Compiles a `RouteConfiguration` written in Envoy YAML, embedded in a one-listener bootstrap.
fn table(route_config: &str) -> Result<RouteTable, String> {
    let indented: String = route_config
        .lines()
        .map(|line| format!("            {line}\n"))
        .collect();
    let bootstrap = format!(
        r#"
static_resources:
  listeners:
  - name: conformance
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: conformance
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
{indented}"#
    );
    let bootstrap = Bootstrap::parse(&bootstrap, Format::Yaml, "conformance.yaml")
        .map_err(|e| e.to_string())?;
    let listener = bootstrap
        .static_config
        .listeners
        .get("conformance")
        .ok_or("listener missing")?;
    let chain = listener
        .all_filter_chains()
        .next()
        .ok_or("no filter chain")?;
    let RouteSource::Inline(routes) = &chain.http.route else {
        return Err("route configuration is not inline".into());
    };
    RouteTable::new(Arc::clone(routes)).map_err(|e| e.to_string())
}

/// The request of a case.
struct Request {
    method: &'static str,
    /// Absolute URI (HTTP/2 `:authority` style) or origin-form path.
    uri: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

fn get(host: &'static str, uri: &'static str) -> Request {
    Request {
        method: "GET",
        uri,
        headers: if host.is_empty() {
            vec![]
        } else {
            vec![("host", host)]
        },
    }
}

impl Request {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn parts(&self) -> http::request::Parts {
        let mut builder = http::Request::builder().method(self.method).uri(self.uri);
        for (name, value) in &self.headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid test request").into_parts().0
    }
}

/// What a forwarded request must look like once the decision is applied.
#[derive(Default)]
struct Forwarded {
    cluster: &'static str,
    /// Path and query after rewrites (`None`: not checked).
    path: Option<&'static str>,
    /// Authority after `host_rewrite_literal` (`Host` header or URI authority).
    host: Option<&'static str>,
    /// Request headers after mutations: values joined with `,`, `None` = absent.
    headers: Vec<(&'static str, Option<&'static str>)>,
    /// Response headers after mutations, applied to an empty response.
    response_headers: Vec<(&'static str, Option<&'static str>)>,
    timeout: Option<Option<Duration>>,
    grpc_timeout_header_max: Option<Option<Duration>>,
    retries: Option<Option<u32>>,
}

fn to(cluster: &'static str) -> Forwarded {
    Forwarded {
        cluster,
        ..Forwarded::default()
    }
}

impl Forwarded {
    fn path(mut self, path: &'static str) -> Self {
        self.path = Some(path);
        self
    }
    fn host(mut self, host: &'static str) -> Self {
        self.host = Some(host);
        self
    }
    fn header(mut self, name: &'static str, value: Option<&'static str>) -> Self {
        self.headers.push((name, value));
        self
    }
    fn response_header(mut self, name: &'static str, value: Option<&'static str>) -> Self {
        self.response_headers.push((name, value));
        self
    }
}

enum Expect {
    Forward(Forwarded),
    Direct(u16, Option<&'static str>),
    Redirect(u16, &'static str),
    NoRoute,
    NoCluster,
    /// `RouteTable::new` (or the xds layer) refuses the configuration; the error contains this.
    Rejected(&'static str),
}

struct Case {
    name: &'static str,
    config: &'static str,
    request: Request,
    random: u64,
    expect: Expect,
}

fn case(name: &'static str, config: &'static str, request: Request, expect: Expect) -> Case {
    Case {
        name,
        config,
        request,
        random: 0,
        expect,
    }
}

fn joined(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let values: Vec<_> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn check_forward(name: &str, request: &Request, forward: &ForwardDecision, want: &Forwarded) {
    assert_eq!(forward.cluster, want.cluster, "{name}: cluster");
    let mut parts = request.parts();
    forward.apply_to_request(&mut parts);
    if let Some(path) = want.path {
        let got = parts.uri.path_and_query().map(|pq| pq.as_str());
        assert_eq!(got, Some(path), "{name}: path");
    }
    if let Some(host) = want.host {
        let got = match parts.uri.authority() {
            Some(authority) => Some(authority.as_str().to_owned()),
            None => joined(&parts.headers, "host"),
        };
        assert_eq!(got.as_deref(), Some(host), "{name}: authority");
    }
    for (header, value) in &want.headers {
        assert_eq!(
            joined(&parts.headers, header).as_deref(),
            *value,
            "{name}: request header {header}"
        );
    }
    let mut response = http::HeaderMap::new();
    forward.apply_to_response(&mut response);
    for (header, value) in &want.response_headers {
        assert_eq!(
            joined(&response, header).as_deref(),
            *value,
            "{name}: response header {header}"
        );
    }
    if let Some(timeout) = want.timeout {
        assert_eq!(forward.timeout, timeout, "{name}: timeout");
    }
    if let Some(max) = want.grpc_timeout_header_max {
        assert_eq!(
            forward.grpc_timeout_header_max, max,
            "{name}: grpc_timeout_header_max"
        );
    }
    if let Some(retries) = want.retries {
        let got = forward.retry_policy.as_ref().map(|r| r.num_retries);
        assert_eq!(got, retries, "{name}: retries");
    }
}

fn run(case: &Case) {
    let name = case.name;
    let table = match (table(case.config), &case.expect) {
        (Err(error), Expect::Rejected(part)) => {
            assert!(
                error.contains(part),
                "{name}: error {error:?} should name {part:?}"
            );
            return;
        }
        (Ok(_), Expect::Rejected(part)) => {
            panic!("{name}: accepted, expected a rejection naming {part}")
        }
        (Err(error), _) => panic!("{name}: configuration refused: {error}"),
        (Ok(table), _) => table,
    };
    let decision = table.select(&case.request.parts(), case.random);
    match (&decision, &case.expect) {
        (Decision::Forward(forward), Expect::Forward(want)) => {
            check_forward(name, &case.request, forward, want);
        }
        (Decision::DirectResponse { status, body, .. }, Expect::Direct(want_status, want_body)) => {
            assert_eq!(status, want_status, "{name}: status");
            assert_eq!(
                body.as_deref(),
                want_body.map(str::as_bytes),
                "{name}: body"
            );
        }
        (
            Decision::Redirect {
                location, status, ..
            },
            Expect::Redirect(want_status, want_location),
        ) => {
            assert_eq!(status, want_status, "{name}: status");
            assert_eq!(location, want_location, "{name}: location");
        }
        (Decision::NoRoute, Expect::NoRoute) | (Decision::NoCluster { .. }, Expect::NoCluster) => {}
        (got, _) => panic!("{name}: unexpected decision {got:?}"),
    }
}

const DOMAINS: &str = r#"
name: domains
virtual_hosts:
- {name: exact, domains: ["api.example.com"], routes: [{match: {prefix: /}, route: {cluster: exact}}]}
- {name: suffix, domains: ["*.example.com"], routes: [{match: {prefix: /}, route: {cluster: suffix}}]}
- {name: longer-suffix, domains: ["*-bar.example.com"], routes: [{match: {prefix: /}, route: {cluster: longer-suffix}}]}
- {name: prefix, domains: ["api.*"], routes: [{match: {prefix: /}, route: {cluster: prefix}}]}
- {name: longer-prefix, domains: ["api.internal.*"], routes: [{match: {prefix: /}, route: {cluster: longer-prefix}}]}
- {name: ported, domains: ["ported.com:8080"], routes: [{match: {prefix: /}, route: {cluster: ported}}]}
- {name: default, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: default}}]}
"#;

const NO_DEFAULT: &str = r#"
name: no-default
virtual_hosts:
- {name: only, domains: ["a.com"], routes: [{match: {prefix: /}, route: {cluster: a}}]}
"#;

const DEFAULT_ONLY: &str = r#"
name: default-only
virtual_hosts:
- {name: all, domains: ["*"], routes: [{match: {prefix: /only}, route: {cluster: all}}]}
"#;

const DUPLICATE_DOMAIN: &str = r#"
name: duplicate
virtual_hosts:
- {name: one, domains: ["a.com"], routes: [{match: {prefix: /}, route: {cluster: a}}]}
- {name: two, domains: ["b.com", "A.com"], routes: [{match: {prefix: /}, route: {cluster: b}}]}
"#;

const DUPLICATE_DEFAULT: &str = r#"
name: duplicate-default
virtual_hosts:
- {name: one, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: a}}]}
- {name: two, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: b}}]}
"#;

const PATHS: &str = r#"
name: paths
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {match: {path: /exact}, route: {cluster: exact}}
  - {match: {path: /CaseLess, case_sensitive: false}, route: {cluster: exact-caseless}}
  - {match: {path_separated_prefix: /sep}, route: {cluster: separated}}
  - {match: {safe_regex: {regex: "/regex/[0-9]+"}}, route: {cluster: regex}}
  - {match: {prefix: /Prefix, case_sensitive: false}, route: {cluster: prefix-caseless}}
  - {match: {prefix: /api/}, route: {cluster: api}}
  - {match: {prefix: /api}, route: {cluster: api-loose}}
  - {match: {prefix: /}, route: {cluster: root}}
"#;

const HEADERS: &str = r#"
name: headers
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {match: {prefix: /, headers: [{name: x-exact, string_match: {exact: "yes"}}]}, route: {cluster: exact}}
  - {match: {prefix: /, headers: [{name: x-present, present_match: true}]}, route: {cluster: present}}
  - {match: {prefix: /, headers: [{name: x-go, string_match: {exact: go}}, {name: x-block, present_match: false}]}, route: {cluster: absent}}
  - {match: {prefix: /, headers: [{name: x-inverted, string_match: {exact: "no"}, invert_match: true}]}, route: {cluster: inverted}}
  - {match: {prefix: /, headers: [{name: x-range, range_match: {start: 10, end: 20}}]}, route: {cluster: range}}
  - {match: {prefix: /, headers: [{name: ":method", string_match: {exact: POST}}, {name: x-all, string_match: {prefix: a}}]}, route: {cluster: all-of}}
  - {match: {prefix: /, headers: [{name: x-multi, string_match: {exact: "2"}}]}, route: {cluster: multi}}
  - {match: {prefix: /, headers: [{name: ":authority", string_match: {suffix: ".internal"}}]}, route: {cluster: authority}}
  - {match: {prefix: /, headers: [{name: ":path", string_match: {contains: "debug=1"}}]}, route: {cluster: pseudo-path}}
  - {match: {prefix: /, headers: [{name: x-regex, string_match: {safe_regex: {regex: "v[0-9]+"}}}]}, route: {cluster: regex}}
  - {match: {prefix: /, headers: [{name: x-caseless, string_match: {exact: ABC, ignore_case: true}}]}, route: {cluster: caseless}}
  - {match: {prefix: /}, route: {cluster: fallback}}
"#;

const QUERY: &str = r#"
name: query
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {match: {prefix: /, query_parameters: [{name: debug, present_match: true}]}, route: {cluster: present}}
  - {match: {prefix: /, query_parameters: [{name: v, string_match: {exact: "2"}}]}, route: {cluster: exact}}
  - {match: {prefix: /}, route: {cluster: fallback}}
"#;

const GRPC: &str = r#"
name: grpc
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {match: {prefix: /, grpc: {}}, route: {cluster: grpc}}
  - {match: {prefix: /}, route: {cluster: http}}
"#;

const ACTIONS: &str = r#"
name: actions
request_headers_to_add:
- {header: {key: x-level, value: config}, append_action: APPEND_IF_EXISTS_OR_ADD}
- {header: {key: x-winner, value: config}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
response_headers_to_add:
- {header: {key: x-served-by, value: config}, append_action: APPEND_IF_EXISTS_OR_ADD}
virtual_hosts:
- name: all
  domains: ["*"]
  request_headers_to_add:
  - {header: {key: x-level, value: vhost}, append_action: APPEND_IF_EXISTS_OR_ADD}
  - {header: {key: x-winner, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
  response_headers_to_add:
  - {header: {key: x-served-by, value: vhost}, append_action: APPEND_IF_EXISTS_OR_ADD}
  retry_policy: {retry_on: "5xx", num_retries: 2}
  routes:
  - {match: {prefix: /rewrite/}, route: {cluster: c, prefix_rewrite: /v2/}}
  - {match: {prefix: /strip/}, route: {cluster: c, prefix_rewrite: /}}
  - {match: {path: /exact-rewrite}, route: {cluster: c, prefix_rewrite: /new}}
  - match: {safe_regex: {regex: "/users/[0-9]+/profile"}}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "^/users/([0-9]+)/profile$"}, substitution: "/profiles/\\1"}
  - {match: {prefix: /host}, route: {cluster: c, host_rewrite_literal: upstream.internal}}
  - match: {prefix: /headers}
    request_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: APPEND_IF_EXISTS_OR_ADD}
    - {header: {key: x-winner, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-keep, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-only-if-there, value: replaced}, append_action: OVERWRITE_IF_EXISTS}
    request_headers_to_remove: [x-secret]
    response_headers_to_add:
    - {header: {key: x-served-by, value: route}, append_action: APPEND_IF_EXISTS_OR_ADD}
    route: {cluster: c}
  - match: {prefix: /weighted}
    route:
      weighted_clusters:
        clusters:
        - name: blue
          weight: 30
          request_headers_to_add: [{header: {key: x-level, value: blue}, append_action: APPEND_IF_EXISTS_OR_ADD}]
        - {name: green, weight: 70}
  - {match: {prefix: /by-header}, route: {cluster_header: x-cluster}}
  - {match: {prefix: /direct}, direct_response: {status: 418, body: {inline_string: teapot}}}
  - {match: {prefix: /no-body}, direct_response: {status: 204}}
  - {match: {prefix: /timeouts}, route: {cluster: c, timeout: 3s, max_stream_duration: {grpc_timeout_header_max: 5s}}}
  - {match: {prefix: /no-timeout}, route: {cluster: c, timeout: 0s}}
  - {match: {prefix: /retry}, route: {cluster: c, retry_policy: {retry_on: "5xx", num_retries: 5}}}
  - {match: {prefix: /}, route: {cluster: c}}
"#;

const REDIRECTS: &str = r#"
name: redirects
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - {match: {prefix: /https}, redirect: {https_redirect: true}}
  - {match: {prefix: /old/}, redirect: {prefix_rewrite: /new/, response_code: FOUND}}
  - {match: {prefix: /moved}, redirect: {path_redirect: /landing, strip_query: true}}
  - {match: {prefix: /keep-query}, redirect: {path_redirect: /landing}}
  - {match: {prefix: /elsewhere}, redirect: {scheme_redirect: https, host_redirect: other.example.com, port_redirect: 8443, response_code: PERMANENT_REDIRECT}}
  - {match: {prefix: /own-query}, redirect: {path_redirect: "/t?src=1", strip_query: true, response_code: TEMPORARY_REDIRECT}}
  - {match: {prefix: /port}, redirect: {port_redirect: 9090, response_code: SEE_OTHER}}
"#;

const INVALID_HEADER: &str = r#"
name: invalid-header
virtual_hosts:
- name: all
  domains: ["*"]
  request_headers_to_remove: [host]
  routes: [{match: {prefix: /}, route: {cluster: c}}]
"#;

fn fwd(cluster: &'static str) -> Expect {
    Expect::Forward(to(cluster))
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let d = DOMAINS;
    let mut cases = vec![
        // Domains: exact > *.suffix (longest) > prefix.* (longest) > "*", port kept.
        case(
            "domain_exact_match",
            d,
            get("api.example.com", "/"),
            fwd("exact"),
        ),
        case(
            "domain_match_is_case_insensitive",
            d,
            get("API.Example.COM", "/"),
            fwd("exact"),
        ),
        case(
            "domain_suffix_wildcard",
            d,
            get("www.example.com", "/"),
            fwd("suffix"),
        ),
        case(
            "domain_longest_suffix_wins",
            d,
            get("foo-bar.example.com", "/"),
            fwd("longer-suffix"),
        ),
        case(
            "domain_suffix_needs_a_longer_host",
            d,
            get(".example.com", "/"),
            fwd("default"),
        ),
        case(
            "domain_suffix_beats_prefix",
            d,
            get("api.foo.example.com", "/"),
            fwd("suffix"),
        ),
        case(
            "domain_prefix_wildcard",
            d,
            get("api.other.org", "/"),
            fwd("prefix"),
        ),
        case(
            "domain_longest_prefix_wins",
            d,
            get("api.internal.corp", "/"),
            fwd("longer-prefix"),
        ),
        case(
            "domain_default_vhost",
            d,
            get("unknown.org", "/"),
            fwd("default"),
        ),
        case(
            "domain_port_is_not_stripped",
            d,
            get("api.example.com:8080", "/"),
            fwd("prefix"),
        ),
        case(
            "domain_with_port_matches_exactly",
            d,
            get("ported.com:8080", "/"),
            fwd("ported"),
        ),
        case(
            "domain_with_port_needs_the_port",
            d,
            get("ported.com", "/"),
            fwd("default"),
        ),
        case(
            "domain_uri_authority_beats_host_header",
            d,
            get("unknown.org", "http://api.example.com/"),
            fwd("exact"),
        ),
        case(
            "domain_no_match_without_default_is_404",
            NO_DEFAULT,
            get("b.com", "/"),
            NoRoute,
        ),
        case(
            "domain_missing_authority_is_404",
            NO_DEFAULT,
            get("", "/"),
            NoRoute,
        ),
        case(
            "domain_default_only_needs_no_authority",
            DEFAULT_ONLY,
            get("", "/only"),
            fwd("all"),
        ),
        case(
            "domain_duplicates_are_rejected",
            DUPLICATE_DOMAIN,
            get("a.com", "/"),
            Rejected("a.com"),
        ),
        case(
            "domain_single_default_only",
            DUPLICATE_DEFAULT,
            get("a.com", "/"),
            Rejected("*"),
        ),
        case(
            "route_no_match_is_404",
            DEFAULT_ONLY,
            get("a.com", "/other"),
            NoRoute,
        ),
        // Paths, case sensitivity, first-match order.
        case("path_exact", PATHS, get("a", "/exact"), fwd("exact")),
        case(
            "path_exact_ignores_query",
            PATHS,
            get("a", "/exact?x=1"),
            fwd("exact"),
        ),
        case(
            "path_exact_rejects_trailing_slash",
            PATHS,
            get("a", "/exact/"),
            fwd("root"),
        ),
        case(
            "path_exact_is_case_sensitive_by_default",
            PATHS,
            get("a", "/EXACT"),
            fwd("root"),
        ),
        case(
            "path_exact_case_insensitive",
            PATHS,
            get("a", "/caseless"),
            fwd("exact-caseless"),
        ),
        case(
            "path_separated_prefix_alone",
            PATHS,
            get("a", "/sep"),
            fwd("separated"),
        ),
        case(
            "path_separated_prefix_with_segment",
            PATHS,
            get("a", "/sep/x"),
            fwd("separated"),
        ),
        case(
            "path_separated_prefix_with_query",
            PATHS,
            get("a", "/sep?q=1"),
            fwd("separated"),
        ),
        case(
            "path_separated_prefix_needs_separator",
            PATHS,
            get("a", "/sepx"),
            fwd("root"),
        ),
        case(
            "path_regex_full_match",
            PATHS,
            get("a", "/regex/42"),
            fwd("regex"),
        ),
        case(
            "path_regex_ignores_query",
            PATHS,
            get("a", "/regex/42?x=y"),
            fwd("regex"),
        ),
        case(
            "path_regex_is_anchored",
            PATHS,
            get("a", "/regex/42/more"),
            fwd("root"),
        ),
        case(
            "path_prefix_case_insensitive",
            PATHS,
            get("a", "/prefix/A"),
            fwd("prefix-caseless"),
        ),
        case(
            "route_first_match_wins",
            PATHS,
            get("a", "/api/users"),
            fwd("api"),
        ),
        case(
            "route_later_route_when_earlier_misses",
            PATHS,
            get("a", "/apix"),
            fwd("api-loose"),
        ),
        // Header matchers.
        case(
            "header_exact",
            HEADERS,
            get("a", "/").header("x-exact", "yes"),
            fwd("exact"),
        ),
        case(
            "header_exact_mismatch",
            HEADERS,
            get("a", "/").header("x-exact", "no"),
            fwd("fallback"),
        ),
        case(
            "header_present",
            HEADERS,
            get("a", "/").header("x-present", ""),
            fwd("present"),
        ),
        case(
            "header_present_false_requires_absence",
            HEADERS,
            get("a", "/").header("x-go", "go"),
            fwd("absent"),
        ),
        case(
            "header_present_false_rejects_presence",
            HEADERS,
            get("a", "/").header("x-go", "go").header("x-block", "1"),
            fwd("fallback"),
        ),
        case(
            "header_invert_match",
            HEADERS,
            get("a", "/").header("x-inverted", "yes"),
            fwd("inverted"),
        ),
        case(
            "header_invert_match_inverts",
            HEADERS,
            get("a", "/").header("x-inverted", "no"),
            fwd("fallback"),
        ),
        case(
            "header_invert_match_missing_header_never_matches",
            HEADERS,
            get("a", "/"),
            fwd("fallback"),
        ),
        case(
            "header_range_inside",
            HEADERS,
            get("a", "/").header("x-range", "15"),
            fwd("range"),
        ),
        case(
            "header_range_end_is_exclusive",
            HEADERS,
            get("a", "/").header("x-range", "20"),
            fwd("fallback"),
        ),
        case(
            "header_all_matchers_must_match",
            HEADERS,
            get("a", "/").method("POST").header("x-all", "abc"),
            fwd("all-of"),
        ),
        case(
            "header_one_failing_matcher_fails",
            HEADERS,
            get("a", "/").header("x-all", "abc"),
            fwd("fallback"),
        ),
        // Envoy 1.40 tests each value of a repeated header on its own (runtime guard
        // `envoy.reloadable_features.match_headers_individually`, on by default): any value
        // may match, and an inverted matcher needs that no value matches.
        case(
            "header_repeated_values_match_individually",
            HEADERS,
            get("a", "/").header("x-multi", "1").header("x-multi", "2"),
            fwd("multi"),
        ),
        case(
            "header_repeated_values_are_not_joined",
            HEADERS,
            get("a", "/").header("x-multi", "1,2"),
            fwd("fallback"),
        ),
        case(
            "header_invert_match_needs_no_value_to_match",
            HEADERS,
            get("a", "/")
                .header("x-inverted", "no")
                .header("x-inverted", "yes"),
            fwd("fallback"),
        ),
        case(
            "header_pseudo_authority",
            HEADERS,
            get("svc.internal", "/"),
            fwd("authority"),
        ),
        case(
            "header_pseudo_path_includes_query",
            HEADERS,
            get("a", "/p?debug=1"),
            fwd("pseudo-path"),
        ),
        case(
            "header_safe_regex",
            HEADERS,
            get("a", "/").header("x-regex", "v12"),
            fwd("regex"),
        ),
        case(
            "header_safe_regex_is_anchored",
            HEADERS,
            get("a", "/").header("x-regex", "v12x"),
            fwd("fallback"),
        ),
        case(
            "header_ignore_case",
            HEADERS,
            get("a", "/").header("x-caseless", "abc"),
            fwd("caseless"),
        ),
        // Query parameters.
        case("query_present", QUERY, get("a", "/?debug"), fwd("present")),
        case(
            "query_present_with_empty_value",
            QUERY,
            get("a", "/?x=1&debug="),
            fwd("present"),
        ),
        case("query_exact", QUERY, get("a", "/?v=2"), fwd("exact")),
        case(
            "query_exact_mismatch",
            QUERY,
            get("a", "/?v=3"),
            fwd("fallback"),
        ),
        case(
            "query_first_value_counts",
            QUERY,
            get("a", "/?v=3&v=2"),
            fwd("fallback"),
        ),
        case("query_missing", QUERY, get("a", "/?x=2"), fwd("fallback")),
        // gRPC.
        case(
            "grpc_content_type",
            GRPC,
            get("a", "/").header("content-type", "application/grpc"),
            fwd("grpc"),
        ),
        case(
            "grpc_plus_suffix",
            GRPC,
            get("a", "/").header("content-type", "application/grpc+proto"),
            fwd("grpc"),
        ),
        case(
            "grpc_web_is_not_grpc",
            GRPC,
            get("a", "/").header("content-type", "application/grpc-web"),
            fwd("http"),
        ),
        case(
            "grpc_requires_content_type",
            GRPC,
            get("a", "/"),
            fwd("http"),
        ),
        // Actions.
        case(
            "prefix_rewrite_replaces_matched_prefix",
            ACTIONS,
            get("a", "/rewrite/x?q=1"),
            Forward(
                to("c")
                    .path("/v2/x?q=1")
                    .header("x-envoy-original-path", Some("/rewrite/x?q=1")),
            ),
        ),
        case(
            "prefix_rewrite_to_root",
            ACTIONS,
            get("a", "/strip/x"),
            Forward(to("c").path("/x")),
        ),
        case(
            "prefix_rewrite_on_exact_path",
            ACTIONS,
            get("a", "/exact-rewrite?a=b"),
            Forward(to("c").path("/new?a=b")),
        ),
        case(
            "regex_rewrite_with_capture_keeps_query",
            ACTIONS,
            get("a", "/users/42/profile?full=1"),
            Forward(to("c").path("/profiles/42?full=1")),
        ),
        case(
            "no_rewrite_keeps_path",
            ACTIONS,
            get("a", "/plain?x"),
            Forward(
                to("c")
                    .path("/plain?x")
                    .header("x-envoy-original-path", None),
            ),
        ),
        case(
            "host_rewrite_literal_sets_host",
            ACTIONS,
            get("a.com", "/host"),
            Forward(
                to("c")
                    .host("upstream.internal")
                    .header("x-envoy-original-host", Some("a.com")),
            ),
        ),
        case(
            "host_rewrite_literal_sets_uri_authority",
            ACTIONS,
            get("", "http://a.com/host"),
            Forward(to("c").host("upstream.internal")),
        ),
        case(
            "header_mutations_append_route_then_vhost_then_config",
            ACTIONS,
            get("a", "/headers").header("x-level", "client"),
            Forward(to("c").header("x-level", Some("client,route,vhost,config"))),
        ),
        case(
            "header_mutations_least_specific_overwrite_wins",
            ACTIONS,
            get("a", "/headers"),
            Forward(to("c").header("x-winner", Some("config"))),
        ),
        case(
            "header_mutations_add_if_absent_keeps_client_value",
            ACTIONS,
            get("a", "/headers").header("x-keep", "client"),
            Forward(to("c").header("x-keep", Some("client"))),
        ),
        case(
            "header_mutations_add_if_absent_adds",
            ACTIONS,
            get("a", "/headers"),
            Forward(
                to("c")
                    .header("x-keep", Some("new"))
                    .header("x-only-if-there", None),
            ),
        ),
        case(
            "header_mutations_overwrite_if_exists",
            ACTIONS,
            get("a", "/headers").header("x-only-if-there", "old"),
            Forward(to("c").header("x-only-if-there", Some("replaced"))),
        ),
        case(
            "header_mutations_remove",
            ACTIONS,
            get("a", "/headers").header("x-secret", "s"),
            Forward(to("c").header("x-secret", None)),
        ),
        case(
            "response_header_mutations_route_then_vhost_then_config",
            ACTIONS,
            get("a", "/headers"),
            Forward(to("c").response_header("x-served-by", Some("route,vhost,config"))),
        ),
        case(
            "response_header_mutations_without_route_level",
            ACTIONS,
            get("a", "/plain"),
            Forward(to("c").response_header("x-served-by", Some("vhost,config"))),
        ),
        Case {
            random: 0,
            ..case(
                "weighted_first_bucket_start",
                ACTIONS,
                get("a", "/weighted"),
                Forward(to("blue").header("x-level", Some("blue,vhost,config"))),
            )
        },
        Case {
            random: 29,
            ..case(
                "weighted_first_bucket_end",
                ACTIONS,
                get("a", "/weighted"),
                fwd("blue"),
            )
        },
        Case {
            random: 30,
            ..case(
                "weighted_second_bucket_start",
                ACTIONS,
                get("a", "/weighted"),
                Forward(to("green").header("x-level", Some("vhost,config"))),
            )
        },
        Case {
            random: 99,
            ..case(
                "weighted_second_bucket_end",
                ACTIONS,
                get("a", "/weighted"),
                fwd("green"),
            )
        },
        Case {
            random: 130,
            ..case(
                "weighted_random_modulo_total",
                ACTIONS,
                get("a", "/weighted"),
                fwd("green"),
            )
        },
        case(
            "cluster_header_present",
            ACTIONS,
            get("a", "/by-header").header("x-cluster", "picked"),
            fwd("picked"),
        ),
        case(
            "cluster_header_first_value",
            ACTIONS,
            get("a", "/by-header")
                .header("x-cluster", "one")
                .header("x-cluster", "two"),
            fwd("one"),
        ),
        case(
            "cluster_header_absent_is_503",
            ACTIONS,
            get("a", "/by-header"),
            NoCluster,
        ),
        case(
            "cluster_header_empty_is_503",
            ACTIONS,
            get("a", "/by-header").header("x-cluster", ""),
            NoCluster,
        ),
        case(
            "direct_response_with_body",
            ACTIONS,
            get("a", "/direct"),
            Direct(418, Some("teapot")),
        ),
        case(
            "direct_response_without_body",
            ACTIONS,
            get("a", "/no-body"),
            Direct(204, None),
        ),
        case(
            "route_timeout_and_grpc_timeout_header_max",
            ACTIONS,
            get("a", "/timeouts"),
            Forward(Forwarded {
                timeout: Some(Some(Duration::from_secs(3))),
                grpc_timeout_header_max: Some(Some(Duration::from_secs(5))),
                ..to("c")
            }),
        ),
        case(
            "route_timeout_defaults_to_15s",
            ACTIONS,
            get("a", "/plain"),
            Forward(Forwarded {
                timeout: Some(Some(Duration::from_secs(15))),
                grpc_timeout_header_max: Some(None),
                ..to("c")
            }),
        ),
        case(
            "route_timeout_zero_disables",
            ACTIONS,
            get("a", "/no-timeout"),
            Forward(Forwarded {
                timeout: Some(None),
                ..to("c")
            }),
        ),
        case(
            "retry_policy_of_the_route",
            ACTIONS,
            get("a", "/retry"),
            Forward(Forwarded {
                retries: Some(Some(5)),
                ..to("c")
            }),
        ),
        case(
            "retry_policy_inherited_from_vhost",
            ACTIONS,
            get("a", "/plain"),
            Forward(Forwarded {
                retries: Some(Some(2)),
                ..to("c")
            }),
        ),
        case(
            "header_mutation_of_host_is_rejected",
            INVALID_HEADER,
            get("a", "/"),
            Rejected("host"),
        ),
        // Redirects.
        case(
            "redirect_https_strips_default_port",
            REDIRECTS,
            get("a.com:80", "/https?x=1"),
            Redirect(301, "https://a.com/https?x=1"),
        ),
        case(
            "redirect_prefix_rewrite",
            REDIRECTS,
            get("a.com", "/old/page?x=1"),
            Redirect(302, "http://a.com/new/page?x=1"),
        ),
        case(
            "redirect_path_strip_query",
            REDIRECTS,
            get("a.com", "/moved?x=1"),
            Redirect(301, "http://a.com/landing"),
        ),
        case(
            "redirect_path_keeps_query",
            REDIRECTS,
            get("a.com", "/keep-query?x=1"),
            Redirect(301, "http://a.com/landing?x=1"),
        ),
        case(
            "redirect_scheme_host_port",
            REDIRECTS,
            get("a.com:8080", "/elsewhere"),
            Redirect(308, "https://other.example.com:8443/elsewhere"),
        ),
        case(
            "redirect_path_with_own_query_ignores_strip_query",
            REDIRECTS,
            get("a.com", "/own-query?x=1"),
            Redirect(307, "http://a.com/t?src=1"),
        ),
        case(
            "redirect_port_replaces_request_port",
            REDIRECTS,
            get("a.com:8080", "/port"),
            Redirect(303, "http://a.com:9090/port"),
        ),
    ];
    cases.push(case(
        "redirect_https_with_forwarded_proto_http_strips_80",
        REDIRECTS,
        get("a.com:80", "/https").header("x-forwarded-proto", "http"),
        Redirect(301, "https://a.com/https"),
    ));
    cases
}

#[test]
fn envoy_route_conformance() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }
    // Every case runs, so one report lists all the rules that fail.
    let failing: Vec<_> = cases
        .iter()
        .filter(|case| std::panic::catch_unwind(|| run(case)).is_err())
        .map(|case| case.name)
        .collect();
    assert!(failing.is_empty(), "failing cases: {failing:?}");
}
