//! Differential test of the HTTP filters against a real Envoy 1.40: one bootstrap, with
//! listeners whose connection managers run `envoy.filters.http.rbac`, `local_ratelimit`,
//! `fault`, `cors` and `header_mutation` (and their per-route and per-virtual-host
//! `typed_per_filter_config`), is loaded into Envoy and into mesh-host; every case goes to
//! both, in order (rate limits are stateful), and mesh-host must answer as Envoy does: status,
//! what reached the upstream, the `x-`, `access-control-` and `grpc-` response headers, and the
//! body of the filters' own replies. Each case also states what Envoy does, checked against
//! the real Envoy, so the cases document Envoy's rules.

use std::collections::HashMap;
use std::net::SocketAddr;

use mesh_host_tests::component;
use mesh_host_tests::differential::{
    self, Case, Expect, Identities, ListenerSpec, ListenerTls, case, get, to,
};
use mesh_host_tests::echo_upstream::EchoUpstream;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;

const CLUSTERS: &[&str] = &["backend", "open", "override", "other"];

/// ALLOW policies over paths, methods, headers, the client address behind proxies and the
/// connection; shadow rules that would deny everything (and must change nothing).
const RBAC_FILTERS: &str = r#"
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        public:
          permissions: [{ url_path: { path: { prefix: /public } } }]
          principals: [{ any: true }]
        admins:
          permissions: [{ and_rules: { rules: [{ url_path: { path: { prefix: /admin } } }, { header: { name: ":method", string_match: { exact: GET } } }] } }]
          principals: [{ header: { name: x-role, string_match: { exact: admin } } }]
        api:
          permissions: [{ and_rules: { rules: [{ url_path: { path: { prefix: /api } } }, { not_rule: { url_path: { path: { prefix: /api/secret } } } }] } }]
          principals: [{ or_ids: { ids: [{ remote_ip: { address_prefix: 203.0.113.0, prefix_len: 24 } }, { header: { name: x-token, present_match: true } }] } }]
        local:
          permissions: [{ and_rules: { rules: [{ url_path: { path: { prefix: /local } } }, { not_rule: { destination_port: 1 } }] } }]
          principals: [{ and_ids: { ids: [{ direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }, { not_id: { header: { name: x-evil, present_match: true } } }] } }]
    shadow_rules:
      action: DENY
      policies: { everything: { permissions: [{ any: true }], principals: [{ any: true }] } }
"#;

const RBAC_ROUTES: &str = r#"
name: rbac
virtual_hosts:
- name: rbac
  domains: ["rbac.test"]
  routes:
  - match: { prefix: /open }
    route: { cluster: open }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
  - match: { prefix: /override }
    route: { cluster: override }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac: { rules: { action: ALLOW, policies: { vip: { permissions: [{ any: true }], principals: [{ header: { name: x-vip, string_match: { exact: "1" } } }] } } } }
  - match: { prefix: /disabled }
    route: { cluster: open }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }
  - match: { prefix: /direct }
    direct_response: { status: 200, body: { inline_string: direct } }
  - match: { prefix: / }
    route: { cluster: backend }
- name: strict
  domains: ["strict.test"]
  typed_per_filter_config:
    envoy.filters.http.rbac:
      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
      rbac: { rules: { action: DENY, policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } } } }
  routes:
  - match: { prefix: /route-open }
    route: { cluster: open }
    typed_per_filter_config:
      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
  - match: { prefix: / }
    route: { cluster: backend }
"#;

/// A deny-all RBAC filter listed `disabled: true`: it runs only where a route enables it.
const OPT_IN_FILTERS: &str = r#"
- name: envoy.filters.http.rbac
  disabled: true
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules: { action: DENY, policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } } }
"#;

const OPT_IN_ROUTES: &str = r#"
name: opt-in
virtual_hosts:
- name: opt-in
  domains: ["*"]
  routes:
  - match: { prefix: /protected }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac: { rules: { action: ALLOW, policies: { member: { permissions: [{ any: true }], principals: [{ header: { name: x-member, present_match: true } }] } } } }
  - match: { prefix: / }
    route: { cluster: backend }
"#;

/// RBAC on the verified client certificate (SPIFFE ids) and the SNI.
const MTLS_FILTERS: &str = r#"
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules:
      action: ALLOW
      policies:
        admin:
          permissions: [{ any: true }]
          principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/admin" } } }]
        namespace:
          permissions: [{ url_path: { path: { prefix: /ns } } }]
          principals: [{ authenticated: { principal_name: { prefix: "spiffe://cluster.local/ns/default/" } } }]
        anyone-authenticated:
          permissions: [{ url_path: { path: { prefix: /authn } } }]
          principals: [{ authenticated: {} }]
        sni:
          permissions: [{ and_rules: { rules: [{ url_path: { path: { prefix: /sni } } }, { requested_server_name: { exact: localhost } }] } }]
          principals: [{ any: true }]
"#;

const MTLS_ROUTES: &str = r#"
name: mtls
virtual_hosts:
- { name: mtls, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: backend } }] }
"#;

/// A listener-wide bucket (2 tokens, refilled every minute) and per-route buckets.
const RATE_LIMIT_FILTERS: &str = r#"
- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: listener
    token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: 60s }
    filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: rl_enabled }
    filter_enforced: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: rl_enforced }
    response_headers_to_add: [{ header: { key: x-limited, value: "true" } }]
"#;

const LOCAL_RATE_LIMIT: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

fn rate_limit_routes() -> String {
    let enabled = "filter_enabled: { default_value: { numerator: 100 } }";
    let enforced = "filter_enforced: { default_value: { numerator: 100 } }";
    let per_route = |extra: &str| {
        format!(
            r#"
      envoy.filters.http.local_ratelimit:
        "@type": {LOCAL_RATE_LIMIT}
        stat_prefix: route
        {enabled}
        {extra}"#
        )
    };
    format!(
        r#"
name: ratelimit
virtual_hosts:
- name: rl
  domains: ["*"]
  routes:
  - match: {{ prefix: /custom-status }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{custom}
  - match: {{ prefix: /not-enforced }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{not_enforced}
  - match: {{ prefix: /refill }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{refill}
  - match: {{ prefix: /off }}
    route: {{ cluster: backend }}
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit: {{ "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true }}
  - match: {{ prefix: /descriptors }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{descriptors}
  - match: {{ prefix: /route-descriptors }}
    route: {{ cluster: backend, rate_limits: [{{ actions: [{{ request_headers: {{ header_name: x-client, descriptor_key: client }} }}] }}] }}
    typed_per_filter_config:{route_descriptors}
  - match: {{ prefix: /grpc-exhausted }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{grpc_exhausted}
  - match: {{ prefix: /grpc }}
    route: {{ cluster: backend }}
    typed_per_filter_config:{grpc}
  - match: {{ prefix: /unset }}
    route: {{ cluster: backend }}
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        "@type": {LOCAL_RATE_LIMIT}
        stat_prefix: unset
        token_bucket: {{ max_tokens: 1, fill_interval: 60s }}
  - match: {{ prefix: / }}
    route: {{ cluster: backend }}
"#,
        custom = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 1, fill_interval: 60s }}\n        status: {{ code: ServiceUnavailable }}"
        )),
        not_enforced = per_route(
            "filter_enforced: { default_value: { numerator: 0 } }\n        token_bucket: { max_tokens: 1, fill_interval: 60s }\n        request_headers_to_add_when_not_enforced: [{ header: { key: x-would-limit, value: \"1\" } }]"
        ),
        refill = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 5s }}"
        )),
        descriptors = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 100, fill_interval: 60s }}\n        always_consume_default_token_bucket: false\n        rate_limits: [{{ actions: [{{ request_headers: {{ header_name: x-client, descriptor_key: client }} }}] }}]\n        descriptors: [{{ entries: [{{ key: client, value: a }}], token_bucket: {{ max_tokens: 1, fill_interval: 60s }} }}]"
        )),
        // Envoy Gateway's shape: the actions on the route, only the buckets in the filter.
        route_descriptors = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 100, fill_interval: 60s }}\n        always_consume_default_token_bucket: false\n        descriptors: [{{ entries: [{{ key: client, value: a }}], token_bucket: {{ max_tokens: 1, fill_interval: 60s }} }}]"
        )),
        grpc_exhausted = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 1, fill_interval: 60s }}\n        rate_limited_as_resource_exhausted: true"
        )),
        grpc = per_route(&format!(
            "{enforced}\n        token_bucket: {{ max_tokens: 1, fill_interval: 60s }}"
        )),
    )
}

/// An empty fault filter on the listener: routes configure the faults.
const FAULT_FILTERS: &str = r#"
- name: envoy.filters.http.fault
  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault }
"#;

fn fault_routes() -> String {
    let fault = |prefix: &str, config: &str| {
        format!(
            r#"
  - match: {{ prefix: {prefix} }}
    route: {{ cluster: backend }}
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        {config}"#
        )
    };
    let routes: String = [
        fault("/abort-all", "abort: { http_status: 503, percentage: { numerator: 100 } }"),
        fault("/abort-none", "abort: { http_status: 503, percentage: { numerator: 0 } }"),
        fault(
            "/abort-million",
            "abort: { http_status: 502, percentage: { numerator: 1000000, denominator: MILLION } }",
        ),
        fault("/abort-grpc", "abort: { grpc_status: 14, percentage: { numerator: 100 } }"),
        fault("/abort-header", "abort: { header_abort: {}, percentage: { numerator: 100 } }"),
        fault("/fixed-delay", "delay: { fixed_delay: 0.1s, percentage: { numerator: 100 } }"),
        fault("/header-delay", "delay: { header_delay: {}, percentage: { numerator: 100 } }"),
        fault(
            "/slow-abort",
            "delay: { fixed_delay: 0.05s, percentage: { numerator: 100 } }\n        abort: { http_status: 429, percentage: { numerator: 100 } }",
        ),
        fault(
            "/matched",
            "abort: { http_status: 500, percentage: { numerator: 100 } }\n        headers: [{ name: x-fault, string_match: { exact: \"yes\" } }]",
        ),
        fault(
            "/elsewhere",
            "abort: { http_status: 500, percentage: { numerator: 100 } }\n        upstream_cluster: other",
        ),
    ]
    .concat();
    format!(
        r#"
name: fault
virtual_hosts:
- name: fault
  domains: ["*"]
  routes:{routes}
  - match: {{ prefix: / }}
    route: {{ cluster: backend }}
"#
    )
}

const CORS_FILTERS: &str = r#"
- name: envoy.filters.http.cors
  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
"#;

const CORS_ROUTES: &str = r#"
name: cors
virtual_hosts:
- name: cors
  domains: ["cors.test"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{ exact: "https://app.test" }, { suffix: ".trusted.test" }]
      allow_methods: "GET, POST"
      allow_headers: "x-custom"
      expose_headers: "x-trace"
      max_age: "600"
      allow_credentials: true
  routes:
  - match: { prefix: /strict }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        allow_origin_string_match: [{ exact: "https://other.test" }]
        allow_credentials: false
        forward_not_matching_preflights: false
  - match: { prefix: /star }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        allow_methods: "*"
        allow_headers: "*"
        allow_private_network_access: true
  - match: { prefix: / }
    route: { cluster: backend }
- name: plain
  domains: ["plain.test"]
  routes: [{ match: { prefix: / }, route: { cluster: backend } }]
"#;

/// Header mutation ahead of an RBAC filter that refuses `/denied`.
const MUTATION_FILTERS: &str = r#"
- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
    mutations:
      request_mutations:
      - { append: { header: { key: x-added-by, value: filter } } }
      - { remove: x-drop }
      response_mutations:
      - { append: { header: { key: x-response-by, value: filter } } }
      - { remove: x-upstream-secret }
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules: { action: DENY, policies: { denied: { permissions: [{ url_path: { path: { prefix: /denied } } }], principals: [{ any: true }] } } }
"#;

/// The same filters the other way round: the refusal comes before the mutation.
const LATE_MUTATION_FILTERS: &str = r#"
- name: envoy.filters.http.rbac
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
    rules: { action: DENY, policies: { denied: { permissions: [{ url_path: { path: { prefix: /denied } } }], principals: [{ any: true }] } } }
- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
    mutations:
      response_mutations:
      - { append: { header: { key: x-response-by, value: filter } } }
"#;

const MUTATION_ROUTES: &str = r#"
name: mutation
virtual_hosts:
- name: mutation
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.header_mutation:
      "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
      mutations:
        request_mutations: [{ append: { header: { key: x-level, value: vhost }, append_action: OVERWRITE_IF_EXISTS_OR_ADD } }]
        response_mutations: [{ append: { header: { key: x-level-response, value: vhost }, append_action: OVERWRITE_IF_EXISTS_OR_ADD } }]
  routes:
  - match: { prefix: /route }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.header_mutation:
        "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
        mutations:
          request_mutations: [{ append: { header: { key: x-level, value: route }, append_action: OVERWRITE_IF_EXISTS_OR_ADD } }]
          response_mutations: [{ append: { header: { key: x-level-response, value: route }, append_action: OVERWRITE_IF_EXISTS_OR_ADD } }]
  - match: { prefix: / }
    route: { cluster: backend }
"#;

struct Ports {
    rbac: u16,
    opt_in: u16,
    mtls: u16,
    rate_limit: u16,
    fault: u16,
    cors: u16,
    mutation: u16,
    late_mutation: u16,
}

impl Ports {
    fn free() -> Ports {
        Ports {
            rbac: free_port(),
            opt_in: free_port(),
            mtls: free_port(),
            rate_limit: free_port(),
            fault: free_port(),
            cors: free_port(),
            mutation: free_port(),
            late_mutation: free_port(),
        }
    }

    fn by_name(&self) -> HashMap<&'static str, SocketAddr> {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        HashMap::from([
            ("rbac", addr(self.rbac)),
            ("opt-in", addr(self.opt_in)),
            ("mtls", addr(self.mtls)),
            ("ratelimit", addr(self.rate_limit)),
            ("fault", addr(self.fault)),
            ("cors", addr(self.cors)),
            ("mutation", addr(self.mutation)),
            ("late-mutation", addr(self.late_mutation)),
        ])
    }
}

fn bootstrap(ports: &Ports, tls: &ListenerTls, upstreams: &[EchoUpstream]) -> String {
    let rate_limit_routes = rate_limit_routes();
    let fault_routes = fault_routes();
    let spec = |name, port, routes, filters| ListenerSpec {
        name,
        port,
        routes,
        filters,
        tls: None,
        manager: "",
    };
    let listeners = [
        spec("rbac", ports.rbac, RBAC_ROUTES, RBAC_FILTERS),
        spec("opt-in", ports.opt_in, OPT_IN_ROUTES, OPT_IN_FILTERS),
        ListenerSpec {
            tls: Some(tls),
            ..spec("mtls", ports.mtls, MTLS_ROUTES, MTLS_FILTERS)
        },
        spec(
            "ratelimit",
            ports.rate_limit,
            &rate_limit_routes,
            RATE_LIMIT_FILTERS,
        ),
        spec("fault", ports.fault, &fault_routes, FAULT_FILTERS),
        spec("cors", ports.cors, CORS_ROUTES, CORS_FILTERS),
        spec(
            "mutation",
            ports.mutation,
            MUTATION_ROUTES,
            MUTATION_FILTERS,
        ),
        spec(
            "late-mutation",
            ports.late_mutation,
            MUTATION_ROUTES,
            LATE_MUTATION_FILTERS,
        ),
    ];
    differential::bootstrap(&listeners, upstreams)
}

const DENIED: Expect = Expect::Reply(403, "RBAC: access denied");

fn rbac_cases() -> Vec<Case> {
    let rbac = |path| get("rbac.test", path).on("rbac");
    vec![
        case(
            "rbac_allow_policy_matches_a_path",
            rbac("/public/a"),
            to("backend"),
        ),
        case(
            "rbac_allow_policy_matches_over_h2c",
            rbac("/public/a").h2c(),
            to("backend"),
        ),
        case("rbac_no_policy_matches_so_403", rbac("/private"), DENIED),
        case(
            "rbac_no_policy_matches_over_h2c",
            rbac("/private").h2c(),
            DENIED,
        ),
        case(
            "rbac_method_and_header_principal",
            rbac("/admin/users").header("x-role", "admin"),
            to("backend"),
        ),
        case(
            "rbac_method_permission_refuses_post",
            rbac("/admin/users")
                .header("x-role", "admin")
                .method("POST"),
            DENIED,
        ),
        case(
            "rbac_header_principal_missing",
            rbac("/admin/users"),
            DENIED,
        ),
        case(
            "rbac_present_match_header_principal",
            rbac("/api/items").header("x-token", "t"),
            to("backend"),
        ),
        case(
            "rbac_not_rule_excludes_a_sub_path",
            rbac("/api/secret/x").header("x-token", "t"),
            DENIED,
        ),
        case(
            "rbac_remote_ip_is_the_last_x_forwarded_for_entry",
            rbac("/api/items").header("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
            to("backend"),
        ),
        case(
            "rbac_remote_ip_outside_the_range",
            rbac("/api/items").header("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
            DENIED,
        ),
        case(
            "rbac_direct_remote_ip_and_destination_port",
            rbac("/local/x"),
            to("backend"),
        ),
        case(
            "rbac_not_id_principal",
            rbac("/local/x").header("x-evil", "1"),
            DENIED,
        ),
        case(
            "rbac_url_path_ignores_the_query",
            rbac("/public?x=/private"),
            to("backend"),
        ),
        case(
            "rbac_per_route_without_rules_disables_the_filter",
            rbac("/open"),
            to("open"),
        ),
        case(
            "rbac_per_route_disable_over_h2c",
            rbac("/open/x").h2c(),
            to("open"),
        ),
        case(
            "rbac_per_route_rules_replace_the_filters",
            rbac("/override").header("x-vip", "1"),
            to("override"),
        ),
        case("rbac_per_route_rules_refuse", rbac("/override"), DENIED),
        case(
            "rbac_per_route_rules_ignore_the_listener_policies",
            rbac("/override/public"),
            DENIED,
        ),
        case(
            "rbac_filter_config_disabled_on_a_route",
            rbac("/disabled"),
            to("open"),
        ),
        case(
            "rbac_runs_before_a_direct_response",
            rbac("/direct"),
            DENIED,
        ),
        case(
            "rbac_virtual_host_config_applies_to_its_routes",
            get("strict.test", "/public").on("rbac"),
            DENIED,
        ),
        case(
            "rbac_route_config_wins_over_the_virtual_hosts",
            get("strict.test", "/route-open").on("rbac"),
            to("open"),
        ),
        case(
            "rbac_no_route_is_still_checked",
            get("nowhere.test", "/private").on("rbac"),
            DENIED,
        ),
        case(
            "rbac_grpc_denial_is_permission_denied",
            rbac("/private.Service/Call").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("7"))
        .response("grpc-message", Some("RBAC: access denied")),
        case(
            "rbac_grpc_allowed",
            rbac("/public.Service/Call").grpc(),
            to("backend"),
        ),
        case(
            "rbac_disabled_filter_does_not_run_without_a_route_enabling_it",
            get("any.test", "/free").on("opt-in"),
            to("backend"),
        ),
        case(
            "rbac_disabled_filter_enabled_by_a_route_refuses",
            get("any.test", "/protected").on("opt-in"),
            DENIED,
        ),
        case(
            "rbac_disabled_filter_enabled_by_a_route_allows",
            get("any.test", "/protected")
                .on("opt-in")
                .header("x-member", "1"),
            to("backend"),
        ),
    ]
}

fn mtls_cases() -> Vec<Case> {
    let mtls = |path, client| get("localhost", path).on("mtls").tls_as(client);
    vec![
        case(
            "mtls_spiffe_principal_exact",
            mtls("/", Some("admin")),
            to("backend"),
        ),
        case(
            "mtls_spiffe_principal_over_h2",
            mtls("/", Some("admin")).h2c(),
            to("backend"),
        ),
        case(
            "mtls_other_spiffe_principal_refused",
            mtls("/", Some("reader")),
            DENIED,
        ),
        case(
            "mtls_without_a_certificate_refused",
            mtls("/", None),
            DENIED,
        ),
        case(
            "mtls_spiffe_principal_prefix_matches_the_namespace",
            mtls("/ns/x", Some("reader")),
            to("backend"),
        ),
        case(
            "mtls_spiffe_principal_prefix_refuses_another_trust_domain",
            mtls("/ns/x", Some("stranger")),
            DENIED,
        ),
        case(
            "mtls_authenticated_without_name_matches_any_certificate",
            mtls("/authn", Some("stranger")),
            to("backend"),
        ),
        case(
            "mtls_authenticated_without_name_matches_a_tls_connection_without_a_certificate",
            mtls("/authn", None),
            to("backend"),
        ),
        case(
            "mtls_requested_server_name",
            mtls("/sni", None),
            to("backend"),
        ),
    ]
}

const LIMITED: Expect = Expect::Reply(429, "local_rate_limited");

fn rate_limit_cases() -> Vec<Case> {
    let rl = |path| get("rl.test", path).on("ratelimit");
    vec![
        case("ratelimit_first_token", rl("/"), to("backend")),
        case("ratelimit_second_token", rl("/a").h2c(), to("backend")),
        case("ratelimit_bucket_exhausted", rl("/b"), LIMITED).response("x-limited", Some("true")),
        case(
            "ratelimit_stays_exhausted_over_h2c",
            rl("/c").h2c(),
            LIMITED,
        )
        .response("x-limited", Some("true")),
        case(
            "ratelimit_per_route_bucket_first",
            rl("/custom-status"),
            to("backend"),
        ),
        case(
            "ratelimit_per_route_custom_status",
            rl("/custom-status"),
            Expect::Reply(503, "local_rate_limited"),
        )
        .response("x-limited", None),
        case(
            "ratelimit_not_enforced_first",
            rl("/not-enforced"),
            to("backend"),
        ),
        case(
            "ratelimit_not_enforced_adds_request_headers",
            rl("/not-enforced"),
            to("backend").header("x-would-limit", Some("1")),
        ),
        case("ratelimit_disabled_route_one", rl("/off"), to("backend")),
        case("ratelimit_disabled_route_two", rl("/off"), to("backend")),
        case("ratelimit_disabled_route_three", rl("/off"), to("backend")),
        case(
            "ratelimit_descriptor_bucket_first",
            rl("/descriptors").header("x-client", "a"),
            to("backend"),
        ),
        case(
            "ratelimit_descriptor_bucket_exhausted",
            rl("/descriptors").header("x-client", "a"),
            LIMITED,
        ),
        case(
            "ratelimit_other_descriptor_uses_the_default_bucket",
            rl("/descriptors").header("x-client", "b"),
            to("backend"),
        ),
        case(
            "ratelimit_no_descriptor_uses_the_default_bucket",
            rl("/descriptors"),
            to("backend"),
        ),
        case(
            "ratelimit_route_descriptor_bucket_first",
            rl("/route-descriptors").header("x-client", "a"),
            to("backend"),
        ),
        case(
            "ratelimit_route_descriptor_bucket_exhausted",
            rl("/route-descriptors").header("x-client", "a"),
            LIMITED,
        ),
        case(
            "ratelimit_route_other_descriptor_uses_the_default_bucket",
            rl("/route-descriptors").header("x-client", "b"),
            to("backend"),
        ),
        case("ratelimit_grpc_first", rl("/grpc").grpc(), to("backend")),
        case(
            "ratelimit_grpc_refusal_is_unavailable",
            rl("/grpc").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("14"))
        .response("grpc-message", Some("local_rate_limited")),
        case(
            "ratelimit_grpc_exhausted_first",
            rl("/grpc-exhausted").grpc(),
            to("backend"),
        ),
        case(
            "ratelimit_grpc_resource_exhausted",
            rl("/grpc-exhausted").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("8")),
        case(
            "ratelimit_unset_percentages_limit_nothing_one",
            rl("/unset"),
            to("backend"),
        ),
        case(
            "ratelimit_unset_percentages_limit_nothing_two",
            rl("/unset"),
            to("backend"),
        ),
        case("ratelimit_refill_first", rl("/refill"), to("backend")),
        case("ratelimit_refill_exhausted", rl("/refill"), LIMITED),
        case(
            "ratelimit_refilled_after_the_interval",
            rl("/refill").after_ms(5_200),
            to("backend"),
        ),
    ]
}

fn fault_cases() -> Vec<Case> {
    let f = |path| get("fault.test", path).on("fault");
    let abort = |status| Expect::Reply(status, "fault filter abort");
    vec![
        case("fault_abort_at_100_percent", f("/abort-all"), abort(503)),
        case(
            "fault_abort_at_100_percent_over_h2c",
            f("/abort-all").h2c(),
            abort(503),
        ),
        case("fault_abort_at_0_percent", f("/abort-none"), to("backend")),
        case("fault_abort_per_million", f("/abort-million"), abort(502)),
        case(
            "fault_grpc_abort",
            f("/abort-grpc").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("14"))
        .response("grpc-message", Some("fault filter abort")),
        case(
            "fault_http_abort_of_a_grpc_call_maps_the_status",
            f("/abort-all").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("14")),
        case(
            "fault_header_abort",
            f("/abort-header").header("x-envoy-fault-abort-request", "418"),
            abort(418),
        ),
        case(
            "fault_header_abort_without_the_header",
            f("/abort-header"),
            to("backend"),
        ),
        case(
            "fault_header_abort_percentage_zero",
            f("/abort-header")
                .header("x-envoy-fault-abort-request", "418")
                .header("x-envoy-fault-abort-request-percentage", "0"),
            to("backend"),
        ),
        case(
            "fault_header_grpc_abort",
            f("/abort-header")
                .header("x-envoy-fault-abort-grpc-request", "4")
                .grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("4")),
        case(
            "fault_fixed_delay_then_forward",
            f("/fixed-delay"),
            to("backend"),
        ),
        case(
            "fault_header_delay_then_forward",
            f("/header-delay").header("x-envoy-fault-delay-request", "50"),
            to("backend"),
        ),
        case("fault_delay_then_abort", f("/slow-abort"), abort(429)),
        case(
            "fault_applies_when_headers_match",
            f("/matched").header("x-fault", "yes"),
            abort(500),
        ),
        case(
            "fault_skipped_when_headers_do_not_match",
            f("/matched"),
            to("backend"),
        ),
        case(
            "fault_skipped_for_another_upstream_cluster",
            f("/elsewhere"),
            to("backend"),
        ),
        case(
            "fault_empty_listener_config_injects_nothing",
            f("/plain"),
            to("backend"),
        ),
    ]
}

fn cors_cases() -> Vec<Case> {
    let preflight = |path, origin| {
        get("cors.test", path)
            .on("cors")
            .method("OPTIONS")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
    };
    let answered = || Expect::Reply(200, "");
    vec![
        case(
            "cors_preflight_allowed_origin",
            preflight("/", "https://app.test"),
            answered(),
        )
        .response("access-control-allow-origin", Some("https://app.test"))
        .response("access-control-allow-methods", Some("GET, POST"))
        .response("access-control-allow-headers", Some("x-custom"))
        .response("access-control-max-age", Some("600"))
        .response("access-control-allow-credentials", Some("true")),
        case(
            "cors_preflight_allowed_by_suffix_over_h2c",
            preflight("/", "https://a.trusted.test").h2c(),
            answered(),
        )
        .response(
            "access-control-allow-origin",
            Some("https://a.trusted.test"),
        ),
        case(
            "cors_preflight_refused_origin_goes_upstream",
            preflight("/", "https://evil.test"),
            to("backend"),
        )
        .response("access-control-allow-origin", None),
        case(
            "cors_preflight_refused_and_not_forwarded",
            preflight("/strict", "https://evil.test"),
            answered(),
        )
        .response("access-control-allow-origin", None)
        .response("access-control-allow-methods", Some("GET, POST"))
        .response("access-control-allow-credentials", None),
        case(
            "cors_route_policy_origins_replace_the_virtual_hosts",
            preflight("/strict", "https://other.test"),
            answered(),
        )
        .response("access-control-allow-origin", Some("https://other.test")),
        case(
            "cors_star_echoes_the_requested_method_and_headers",
            preflight("/star", "https://app.test")
                .header("access-control-request-headers", "x-a, x-b"),
            answered(),
        )
        .response("access-control-allow-methods", Some("PUT"))
        .response("access-control-allow-headers", Some("x-a, x-b")),
        case(
            "cors_private_network_access",
            preflight("/star", "https://app.test")
                .header("access-control-request-private-network", "true"),
            answered(),
        )
        .response("access-control-allow-private-network", Some("true")),
        case(
            "cors_simple_request_from_an_allowed_origin",
            get("cors.test", "/")
                .on("cors")
                .header("origin", "https://app.test"),
            to("backend"),
        )
        .response("access-control-allow-origin", Some("https://app.test"))
        .response("access-control-allow-credentials", Some("true"))
        .response("access-control-expose-headers", Some("x-trace")),
        case(
            "cors_simple_request_from_a_refused_origin",
            get("cors.test", "/")
                .on("cors")
                .header("origin", "https://evil.test"),
            to("backend"),
        )
        .response("access-control-allow-origin", None),
        case(
            "cors_request_without_origin",
            get("cors.test", "/").on("cors"),
            to("backend"),
        )
        .response("access-control-allow-origin", None),
        case(
            "cors_options_without_a_requested_method_is_not_a_preflight",
            get("cors.test", "/")
                .on("cors")
                .method("OPTIONS")
                .header("origin", "https://app.test"),
            to("backend"),
        )
        .response("access-control-allow-origin", Some("https://app.test")),
        case(
            "cors_virtual_host_without_a_policy",
            get("plain.test", "/")
                .on("cors")
                .method("OPTIONS")
                .header("origin", "https://app.test")
                .header("access-control-request-method", "PUT"),
            to("backend"),
        )
        .response("access-control-allow-origin", None),
        case(
            "cors_route_allow_credentials_false_wins",
            get("cors.test", "/strict")
                .on("cors")
                .header("origin", "https://other.test"),
            to("backend"),
        )
        .response("access-control-allow-credentials", None)
        .response("access-control-expose-headers", Some("x-trace")),
    ]
}

fn mutation_cases() -> Vec<Case> {
    let m = |path| get("mutation.test", path).on("mutation");
    vec![
        case(
            "header_mutation_filter_request_and_response",
            m("/").header("x-drop", "1"),
            to("backend")
                .header("x-added-by", Some("filter"))
                .header("x-drop", None)
                .header("x-level", Some("vhost")),
        )
        .response("x-response-by", Some("filter"))
        .response("x-upstream-secret", None)
        .response("x-level-response", Some("vhost")),
        case(
            "header_mutation_route_level_applies_after_the_virtual_hosts",
            m("/route"),
            to("backend").header("x-level", Some("vhost")),
        )
        .response("x-level-response", Some("vhost")),
        case(
            "header_mutation_over_h2c",
            m("/route").h2c(),
            to("backend").header("x-added-by", Some("filter")),
        ),
        case(
            "header_mutation_response_mutations_reach_a_later_filters_reply",
            m("/denied"),
            DENIED,
        )
        .response("x-response-by", Some("filter"))
        .response("x-level-response", Some("vhost")),
        case(
            "header_mutation_after_the_refusing_filter",
            get("mutation.test", "/denied").on("late-mutation"),
            DENIED,
        )
        .response("x-response-by", Some("filter")),
        case(
            "header_mutation_after_rbac_when_allowed",
            get("mutation.test", "/ok").on("late-mutation"),
            to("backend"),
        )
        .response("x-response-by", Some("filter")),
    ]
}

fn cases() -> Vec<Case> {
    [
        rbac_cases(),
        mtls_cases(),
        rate_limit_cases(),
        fault_cases(),
        cors_cases(),
        mutation_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The client identities of the mTLS cases and the CA bundle that trusts them.
fn identities(dir: &std::path::Path) -> (Identities, ListenerTls) {
    let server = TestCert::generate();
    let clients = HashMap::from([
        (
            "admin",
            TestCert::for_uri("spiffe://cluster.local/ns/default/sa/admin"),
        ),
        (
            "reader",
            TestCert::for_uri("spiffe://cluster.local/ns/default/sa/reader"),
        ),
        (
            "stranger",
            TestCert::for_uri("spiffe://elsewhere.test/ns/default/sa/admin"),
        ),
    ]);
    let bundle: String = clients.values().map(TestCert::pem).collect();
    let client_ca = dir.join("clients.pem");
    std::fs::write(&client_ca, bundle).expect("write client CA bundle");
    let tls = ListenerTls {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca,
    };
    (
        Identities {
            server: Some(server),
            clients,
        },
        tls,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_run_the_http_filters_alike() {
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
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
    let dir = tempfile::tempdir().expect("tempdir");
    let (identities, tls) = identities(dir.path());

    let envoy_ports = Ports::free();
    let Some(envoy) = Envoy::start(&bootstrap(&envoy_ports, &tls, &upstreams)).await else {
        return;
    };
    let path = dir.path().join("bootstrap.yaml");
    let mesh_ports = Ports::free();
    std::fs::write(&path, bootstrap(&mesh_ports, &tls, &upstreams)).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("unused={}", component("hello").display()),
    ]);

    let report = differential::run_with(
        &cases,
        &envoy_ports.by_name(),
        &mesh_ports.by_name(),
        &identities,
    )
    .await;
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
