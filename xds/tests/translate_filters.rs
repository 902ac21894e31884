//! The HTTP filters of a connection manager and their per-route overrides, translated from
//! bootstrap YAML as a control plane would write them; filters and fields the host cannot
//! honour are refused by name.

use std::time::Duration;

use mesh_xds::bootstrap::{Bootstrap, Format};
use mesh_xds::config::{
    AbortSource, DelaySource, Fraction, HeaderEdit, HttpFilterConfig, PerRouteConfig, Permission,
    RateLimitAction, RbacAction, RouteSource,
};

fn bootstrap(http_filters: &str, route_extras: &str) -> Result<Bootstrap, String> {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200 }}
{route_extras}
          http_filters:
{http_filters}
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
"#
    );
    Bootstrap::parse(&yaml, Format::Yaml, "test.yaml").map_err(|e| e.to_string())
}

fn filters(http_filters: &str) -> Vec<mesh_xds::config::HttpFilter> {
    let b = bootstrap(http_filters, "").expect("valid");
    b.static_config.listeners["l"].filter_chains[0]
        .http
        .http_filters
        .clone()
}

#[test]
fn every_implemented_filter_translates_in_order() {
    let chain = filters(
        r#"
          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
          - name: envoy.filters.http.rbac
            disabled: true
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules: { action: DENY, policies: { all: { permissions: [{ any: true }], principals: [{ any: true }] } } }
              shadow_rules: { action: ALLOW, policies: {} }
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
              token_bucket: { max_tokens: 3, tokens_per_fill: 2, fill_interval: 1s }
              filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED } }
              filter_enforced: { default_value: { numerator: 50, denominator: TEN_THOUSAND } }
              response_headers_to_add: [{ header: { key: x-limited, value: "yes" } }]
              enable_x_ratelimit_headers: DRAFT_VERSION_03
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay: { fixed_delay: 0.2s, percentage: { numerator: 10 } }
              abort: { header_abort: {}, percentage: { numerator: 100 } }
              max_active_faults: 5
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations: [{ remove: x-secret }]
                response_mutations: [{ append: { header: { key: x-mutated, value: "1" } } }]
          - name: envoy.filters.http.grpc_stats
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig }
"#,
    );
    let names: Vec<&str> = chain.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.cors",
            "envoy.filters.http.rbac",
            "envoy.filters.http.local_ratelimit",
            "envoy.filters.http.fault",
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.grpc_stats",
        ]
    );
    assert!(chain[1].disabled);
    let HttpFilterConfig::Rbac(rbac) = &chain[1].config else {
        panic!("{:?}", chain[1]);
    };
    assert_eq!(
        rbac.rules.as_ref().map(|r| r.action),
        Some(RbacAction::Deny)
    );
    assert!(rbac.shadow_rules.is_some());
    let HttpFilterConfig::LocalRateLimit(limit) = &chain[2].config else {
        panic!("{:?}", chain[2]);
    };
    let bucket = limit.token_bucket.expect("bucket");
    assert_eq!((bucket.max_tokens, bucket.tokens_per_fill), (3, 2));
    assert_eq!(bucket.fill_interval, Duration::from_secs(1));
    assert_eq!(limit.filter_enabled, Fraction::ALL);
    assert_eq!(
        limit.filter_enforced,
        Fraction {
            numerator: 50,
            denominator: 10_000
        }
    );
    assert_eq!(limit.status, 429);
    assert!(limit.x_ratelimit_headers && limit.always_consume_default_token_bucket);
    let HttpFilterConfig::Fault(fault) = &chain[3].config else {
        panic!("{:?}", chain[3]);
    };
    let delay = fault.delay.as_ref().expect("delay");
    assert_eq!(delay.source, DelaySource::Fixed(Duration::from_millis(200)));
    assert_eq!(
        fault.abort.as_ref().map(|a| a.source),
        Some(AbortSource::Header)
    );
    assert_eq!(fault.max_active_faults, Some(5));
    let HttpFilterConfig::HeaderMutation(mutation) = &chain[4].config else {
        panic!("{:?}", chain[4]);
    };
    assert_eq!(
        mutation.mutations.request,
        [HeaderEdit::Remove("x-secret".into())]
    );
    assert!(matches!(chain[5].config, HttpFilterConfig::Telemetry));
}

#[test]
fn unset_local_rate_limit_percentages_are_envoys_zero() {
    let chain = filters(
        r#"
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
"#,
    );
    let HttpFilterConfig::LocalRateLimit(limit) = &chain[0].config else {
        panic!("{:?}", chain[0]);
    };
    assert_eq!(
        (
            limit.filter_enabled,
            limit.filter_enforced,
            limit.token_bucket
        ),
        (Fraction::NONE, Fraction::NONE, None)
    );
}

#[test]
fn per_route_configs_translate_at_every_level() {
    let b = bootstrap(
        "",
        r#"
                typed_per_filter_config:
                  envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
                  envoy.filters.http.cors:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                    allow_origin_string_match: [{ exact: "https://app.test" }]
                    allow_credentials: true
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
                  custom.ratelimit:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: route
                      token_bucket: { max_tokens: 1, fill_interval: 60s }
                      descriptors: [{ entries: [{ key: client, value: a }], token_bucket: { max_tokens: 1, fill_interval: 60s } }]
                      rate_limits: [{ actions: [{ request_headers: { header_name: x-client, descriptor_key: client } }] }]
"#,
    )
    .expect("valid");
    let RouteSource::Inline(routes) = &b.static_config.listeners["l"].filter_chains[0].http.route
    else {
        panic!("inline routes");
    };
    let per_filter = &routes.virtual_hosts[0].routes[0].typed_per_filter_config;
    let rbac = &per_filter["envoy.filters.http.rbac"];
    assert!(
        rbac.disabled,
        "RBACPerRoute without rbac disables the filter"
    );
    let cors = &per_filter["envoy.filters.http.cors"];
    assert!(
        matches!(&cors.config, Some(PerRouteConfig::Cors(p)) if p.allow_credentials == Some(true))
    );
    assert!(per_filter["envoy.filters.http.fault"].disabled);
    let Some(PerRouteConfig::LocalRateLimit(limit)) = &per_filter["custom.ratelimit"].config else {
        panic!("{:?}", per_filter["custom.ratelimit"]);
    };
    assert_eq!(
        limit.descriptors[0].entries,
        [("client".into(), "a".into())]
    );
    assert!(matches!(
        &limit.rate_limits[0].actions[0],
        RateLimitAction::RequestHeaders { header_name, key, .. } if header_name == "x-client" && key == "client"
    ));
}

#[test]
fn what_the_host_cannot_honour_is_refused_by_name() {
    for (filters, extras, named) in [
        (
            r#"          - { name: envoy.filters.http.buffer, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 10 } }"#,
            "",
            "HTTP filter type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              response_rate_limit: { fixed_limit: { limit_kbps: 1 }, percentage: { numerator: 100 } }"#,
            "",
            "response_rate_limit is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules: { policies: { p: { permissions: [{ metadata: { filter: f, path: [{ key: k }], value: { present_match: true } } }], principals: [{ any: true }] } } }"#,
            "",
            "metadata is not supported",
        ),
        (
            "",
            r#"                typed_per_filter_config:
                  envoy.filters.http.buffer: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true }"#,
            "per-route config type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute is not supported",
        ),
        (
            "",
            r#"                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit: { "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: x }"#,
            "a per-route local rate limit needs a token bucket",
        ),
    ] {
        let error = bootstrap(filters, extras).expect_err(named);
        assert!(error.contains(named), "expected {named:?} in: {error}");
    }
}

#[test]
fn an_optional_unknown_filter_is_skipped() {
    let chain = filters(
        r#"
          - name: envoy.filters.http.buffer
            is_optional: true
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 10 }
"#,
    );
    assert!(chain.is_empty());
}

#[test]
fn rbac_header_and_server_name_permissions_translate() {
    let chain = filters(
        r#"
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                policies:
                  p:
                    permissions: [{ requested_server_name: { exact: a.test } }, { header: { name: ":method", string_match: { exact: GET } } }]
                    principals: [{ authenticated: { principal_name: { prefix: "spiffe://cluster.local/ns/" } } }]
"#,
    );
    let HttpFilterConfig::Rbac(rbac) = &chain[0].config else {
        panic!("{:?}", chain[0]);
    };
    let rules = rbac.rules.as_ref().expect("rules");
    assert_eq!(rules.action, RbacAction::Allow);
    assert!(matches!(
        rules.policies["p"].permissions[0],
        Permission::RequestedServerName(_)
    ));
}
