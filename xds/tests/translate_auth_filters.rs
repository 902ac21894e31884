//! The gateway security filters (ext_authz, jwt_authn, the global rate limit, basic_auth,
//! api_key_auth), their per-route forms and the routes' `rate_limits`, translated from
//! bootstrap YAML as Envoy Gateway and Istio write them; what the host cannot honour is
//! refused by name.

use std::time::Duration;

use mesh_xds::bootstrap::{Bootstrap, Format};
use mesh_xds::config::{
    AuthzService, HttpFilterConfig, JwksSource, JwtPerRoute, JwtRequirement, KeySource,
    PerRouteConfig, RateLimitAction, RequestType, RouteAction, RouteSource,
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
              rate_limits: [{{ actions: [{{ remote_address: {{}} }}] }}]
              routes:
              - match: {{ prefix: / }}
{route_extras}
          http_filters:
{http_filters}
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
"#
    );
    Bootstrap::parse(&yaml, Format::Yaml, "test.yaml").map_err(|e| e.to_string())
}

const DIRECT: &str = "                direct_response: { status: 200 }";

fn filter(http_filters: &str) -> HttpFilterConfig {
    let b = bootstrap(http_filters, DIRECT).expect("valid");
    b.static_config.listeners["l"].filter_chains[0]
        .http
        .http_filters[0]
        .config
        .clone()
}

#[test]
fn ext_authz_grpc_and_http_services_translate() {
    let HttpFilterConfig::ExtAuthz(grpc) = filter(
        r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service: { envoy_grpc: { cluster_name: "outbound|9000||authz.ns.svc", authority: authz.ns.svc }, timeout: 2s }
              failure_mode_allow: true
              include_peer_certificate: true
              status_on_error: { code: 503 }
              with_request_body: { max_request_bytes: 1024, allow_partial_message: true, pack_as_bytes: true }"#,
    ) else {
        panic!("ext_authz expected");
    };
    let AuthzService::Grpc(target) = &grpc.service else {
        panic!("gRPC service expected");
    };
    assert_eq!(target.cluster, "outbound|9000||authz.ns.svc");
    assert_eq!(target.authority, "authz.ns.svc");
    assert_eq!(target.timeout, Some(Duration::from_secs(2)));
    assert!(grpc.failure_mode_allow);
    assert!(grpc.include_peer_certificate);
    assert_eq!(grpc.status_on_error, 503);
    assert_eq!(
        grpc.with_request_body.map(|b| b.max_request_bytes),
        Some(1024)
    );

    let HttpFilterConfig::ExtAuthz(http) = filter(
        r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              http_service:
                server_uri: { uri: "http://authz", cluster: authz, timeout: 0.25s }
                path_prefix: /auth
                authorization_response: { allowed_upstream_headers: { patterns: [{ exact: x-user }] } }"#,
    ) else {
        panic!("ext_authz expected");
    };
    let AuthzService::Http(service) = &http.service else {
        panic!("HTTP service expected");
    };
    assert_eq!(service.path_prefix, "/auth");
    assert_eq!(service.timeout, Duration::from_millis(250));
    assert_eq!(http.status_on_error, 403, "Envoy's default");
}

#[test]
fn jwt_providers_rules_and_requirements_translate() {
    let HttpFilterConfig::JwtAuthn(jwt) = filter(
        r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                p:
                  issuer: https://issuer.test
                  audiences: [api]
                  remote_jwks: { http_uri: { uri: "https://issuer.test/jwks", cluster: idp, timeout: 5s } }
                  from_headers: [{ name: X-Token, value_prefix: "Token " }]
                  payload_in_metadata: issuer.test
              rules:
              - match: { prefix: /api }
                requires: { requires_any: { requirements: [{ provider_name: p }, { allow_missing: {} }] } }
              - match: { prefix: / }"#,
    ) else {
        panic!("jwt_authn expected");
    };
    let provider = &jwt.providers["p"];
    assert_eq!(provider.from_headers[0].name, "x-token");
    assert_eq!(
        provider.clock_skew,
        Duration::from_secs(60),
        "Envoy's default skew"
    );
    let JwksSource::Remote(remote) = &provider.jwks else {
        panic!("remote JWKS expected");
    };
    assert_eq!(remote.cache_duration, Duration::from_secs(600));
    assert!(matches!(
        &jwt.rules[0].requires,
        Some(JwtRequirement::Any(list)) if list.len() == 2 && list[1] == JwtRequirement::AllowMissing
    ));
    assert_eq!(jwt.rules[1].requires, None);
}

#[test]
fn the_global_rate_limit_and_route_rate_limits_translate() {
    let b = bootstrap(
        r#"          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: gateway
              request_type: external
              rate_limit_service: { transport_api_version: V3, grpc_service: { envoy_grpc: { cluster_name: rls } } }"#,
        r#"                route:
                  cluster: c
                  include_vh_rate_limits: true
                  rate_limits: [{ actions: [{ destination_cluster: {} }, { request_headers: { header_name: X-User, descriptor_key: user } }] }]
                typed_per_filter_config:
                  envoy.filters.http.ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
                    domain: other"#,
    )
    .expect("valid");
    let chain = &b.static_config.listeners["l"].filter_chains[0].http;
    let HttpFilterConfig::RateLimit(limit) = &chain.http_filters[0].config else {
        panic!("ratelimit expected");
    };
    assert_eq!(limit.domain, "gateway");
    assert_eq!(limit.request_type, RequestType::External);
    assert_eq!(limit.timeout, Duration::from_millis(20), "Envoy's default");
    assert_eq!(limit.status_on_error, 500);
    let RouteSource::Inline(routes) = &chain.route else {
        panic!("inline routes expected");
    };
    let vhost = &routes.virtual_hosts[0];
    assert_eq!(
        vhost.rate_limits[0].actions,
        [RateLimitAction::RemoteAddress]
    );
    let RouteAction::Forward(forward) = &vhost.routes[0].action else {
        panic!("forward expected");
    };
    assert!(forward.include_vh_rate_limits);
    assert_eq!(
        forward.rate_limits[0].actions[0],
        RateLimitAction::DestinationCluster
    );
    assert!(matches!(
        &vhost.routes[0].typed_per_filter_config["envoy.filters.http.ratelimit"].config,
        Some(PerRouteConfig::RateLimit(per_route)) if per_route.domain == "other"
    ));
}

#[test]
fn basic_and_api_key_auth_translate() {
    let HttpFilterConfig::BasicAuth(basic) = filter(
        r#"          - name: envoy.filters.http.basic_auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth
              users: { inline_string: "alice:{SHA}tiY7sUhYKUwI5L3866kDY+ENcrQ=" }"#,
    ) else {
        panic!("basic_auth expected");
    };
    assert_eq!(basic.users[0].0, "alice");
    assert_eq!(basic.authentication_header, "authorization");
    let HttpFilterConfig::ApiKeyAuth(keys) = filter(
        r#"          - name: envoy.filters.http.api_key_auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth
              credentials: [{ key: k, client: c }]
              key_sources: [{ header: X-Key }, { query: key }]"#,
    ) else {
        panic!("api_key_auth expected");
    };
    assert_eq!(
        keys.key_sources,
        [
            KeySource::Header("x-key".into()),
            KeySource::Query("key".into())
        ]
    );
}

#[test]
fn per_route_settings_translate_and_disable() {
    let b = bootstrap(
        "",
        r#"                direct_response: { status: 200 }
                typed_per_filter_config:
                  envoy.filters.http.ext_authz: { "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true }
                  envoy.filters.http.jwt_authn: { "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig, requirement_name: r }"#,
    )
    .expect("valid");
    let RouteSource::Inline(routes) = &b.static_config.listeners["l"].filter_chains[0].http.route
    else {
        panic!("inline routes expected");
    };
    let per_filter = &routes.virtual_hosts[0].routes[0].typed_per_filter_config;
    assert!(per_filter["envoy.filters.http.ext_authz"].disabled);
    assert_eq!(
        per_filter["envoy.filters.http.jwt_authn"].config,
        Some(PerRouteConfig::JwtAuthn(JwtPerRoute::RequirementName(
            "r".into()
        )))
    );
}

#[test]
fn what_the_host_cannot_honour_is_refused_by_name() {
    for (filters, named) in [
        (
            r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              grpc_service: { google_grpc: { target_uri: "authz:9000", stat_prefix: a } }"#,
            "grpc_service.google_grpc is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              grpc_service: { envoy_grpc: { cluster_name: authz } }
              include_tls_session: true"#,
            "include_tls_session is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              grpc_service: { envoy_grpc: { cluster_name: authz, authority: "authz server" } }"#,
            "\"authz server\" is not a valid :authority",
        ),
        (
            r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers: { p: { issuer: i, local_jwks: { inline_string: "{}" }, require_expiration: true } }"#,
            "require_expiration is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers: { p: { issuer: i, local_jwks: { inline_string: "{}" } } }
              rules: [{ match: { prefix: / }, requires: { provider_name: q } }]"#,
            "no provider named \"q\"",
        ),
        (
            r#"          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: d
              rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: rls } } }
              rate_limits: [{ actions: [{ source_cluster: {} }] }]"#,
            "source_cluster is not supported",
        ),
        (
            r#"          - name: envoy.filters.http.basic_auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth
              users: { inline_string: "alice:$apr1$salt$hash" }"#,
            "only {SHA} hashes are supported",
        ),
    ] {
        let error = bootstrap(filters, DIRECT).expect_err(named);
        assert!(error.contains(named), "expected {named:?} in: {error}");
    }
}
