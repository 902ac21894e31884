//! Differential test of the gateway security filters against a real Envoy 1.40:
//! `envoy.filters.http.ext_authz` (gRPC and HTTP services), `jwt_authn` (remote and local
//! JWKS), the global `ratelimit` filter, `basic_auth` and `api_key_auth`. Both proxies load
//! one bootstrap and call the same services (a tonic ext_authz server, an HTTP authorization
//! server, a static JWKS endpoint and a tonic rate-limit service, from
//! `mesh_host_tests::auth_peers`); every case goes to both and mesh-host must answer as
//! Envoy does: status, what reached the upstream (including what the services echoed of
//! what they were asked), the `x-`, `grpc-` and `www-authenticate` response headers and the
//! body of the filters' replies.

use std::collections::HashMap;
use std::net::SocketAddr;

use mesh_host_tests::auth_peers::{self, Tokens};
use mesh_host_tests::component;
use mesh_host_tests::differential::{
    self, Case, Expect, Identities, ListenerSpec, ListenerTls, ServiceCluster, case, get, to,
};
use mesh_host_tests::echo_upstream::EchoUpstream;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;
use serde_json::json;

const AUTHZ_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service: { envoy_grpc: { cluster_name: authz-grpc, authority: authz.local }, timeout: 0.5s }
    with_request_body: { max_request_bytes: 16, allow_partial_message: true }
"#;

const AUTHZ_ROUTES: &str = r#"
name: authz
virtual_hosts:
- name: authz
  domains: ["authz.test"]
  typed_per_filter_config:
    envoy.filters.http.ext_authz:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
      check_settings: { context_extensions: { level: vhost, shared: vhost } }
  routes:
  - match: { prefix: /open }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.ext_authz: { "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true }
  - match: { prefix: /ctx }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.ext_authz:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
        check_settings: { context_extensions: { route: ctx, shared: route } }
  - match: { prefix: /nobody }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.ext_authz:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
        check_settings: { disable_request_body_buffering: true }
  - match: { prefix: /direct }
    direct_response: { status: 200, body: { inline_string: direct } }
  - match: { prefix: / }
    route: { cluster: backend }
"#;

const FILTERED_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service: { envoy_grpc: { cluster_name: authz-grpc, authority: authz.local }, timeout: 0.5s }
    allowed_headers: { patterns: [{ prefix: x-client- }, { exact: x-user }] }
    disallowed_headers: { patterns: [{ exact: x-client-secret }] }
"#;

const MTLS_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service: { envoy_grpc: { cluster_name: authz-grpc, authority: authz.local }, timeout: 0.5s }
    include_peer_certificate: true
"#;

const DOWN_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service: { envoy_grpc: { cluster_name: dead-grpc }, timeout: 0.5s }
    status_on_error: { code: 503 }
"#;

const ALLOW_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    grpc_service: { envoy_grpc: { cluster_name: dead-grpc }, timeout: 0.5s }
    failure_mode_allow: true
    failure_mode_allow_header_add: true
"#;

const HTTP_AUTHZ_FILTERS: &str = r#"
- name: envoy.filters.http.ext_authz
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
    transport_api_version: V3
    with_request_body: { max_request_bytes: 64 }
    http_service:
      server_uri: { uri: "http://authz-http.local", cluster: authz-http, timeout: 1s }
      path_prefix: /check
      authorization_request:
        allowed_headers: { patterns: [{ exact: x-client-a }] }
        headers_to_add: [{ key: x-added, value: "yes" }]
      authorization_response:
        allowed_upstream_headers: { patterns: [{ exact: x-authz-user }, { prefix: x-check- }] }
        allowed_upstream_headers_to_append: { patterns: [{ exact: x-authz-append }] }
        allowed_client_headers: { patterns: [{ exact: x-authz-denied }] }
        allowed_client_headers_on_success: { patterns: [{ exact: x-auth-on-success }] }
"#;

const PLAIN_ROUTES: &str = r#"
name: plain
virtual_hosts:
- name: plain
  domains: ["*"]
  routes:
  - match: { prefix: / }
    route: { cluster: backend }
"#;

fn jwt_filters(jwks: &str) -> String {
    format!(
        r#"
- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      remote:
        issuer: https://remote.test
        audiences: [api.test]
        remote_jwks: {{ http_uri: {{ uri: "http://jwks.local/jwks.json", cluster: jwks, timeout: 1s }}, cache_duration: 300s }}
        forward_payload_header: x-jwt-payload
        claim_to_headers: [{{ header_name: x-sub, claim_name: sub }}, {{ header_name: x-tenant, claim_name: org.tenant }}]
      local:
        issuer: https://local.test
        local_jwks: {{ inline_string: '{jwks}' }}
        from_headers: [{{ name: x-jwt }}]
        from_params: [token]
        forward: true
      broken:
        issuer: https://broken.test
        remote_jwks: {{ http_uri: {{ uri: "http://jwks.local/missing.json", cluster: jwks, timeout: 1s }} }}
      cookie:
        issuer: https://cookie.test
        local_jwks: {{ inline_string: '{jwks}' }}
        from_cookies: [session]
    rules:
    - match: {{ prefix: /public }}
    - match: {{ prefix: /any }}
      requires: {{ requires_any: {{ requirements: [{{ provider_name: remote }}, {{ provider_name: local }}] }} }}
    - match: {{ prefix: /optional }}
      requires: {{ requires_any: {{ requirements: [{{ provider_name: remote }}, {{ allow_missing: {{}} }}] }} }}
    - match: {{ prefix: /lenient }}
      requires: {{ allow_missing_or_failed: {{}} }}
    - match: {{ prefix: /both }}
      requires: {{ requires_all: {{ requirements: [{{ provider_name: remote }}, {{ provider_name: local }}] }} }}
    - match: {{ prefix: /aud }}
      requires: {{ provider_and_audiences: {{ provider_name: remote, audiences: [other.test] }} }}
    - match: {{ prefix: /fetchfail }}
      requires: {{ provider_name: broken }}
    - match: {{ prefix: /cookie }}
      requires: {{ provider_name: cookie }}
    - match: {{ prefix: / }}
      requires: {{ provider_name: remote }}
    requirement_map:
      local-only: {{ provider_name: local }}
"#
    )
}

const JWT_ROUTES: &str = r#"
name: jwt
virtual_hosts:
- name: jwt
  domains: ["*"]
  routes:
  - match: { prefix: /named }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        requirement_name: local-only
  - match: { prefix: /skip }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        disabled: true
  - match: { prefix: / }
    route: { cluster: backend }
"#;

const RATELIMIT_FILTERS: &str = r#"
- name: envoy.filters.http.ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
    domain: mesh
    enable_x_ratelimit_headers: DRAFT_VERSION_03
    timeout: 1s
    rate_limit_service:
      transport_api_version: V3
      grpc_service: { envoy_grpc: { cluster_name: ratelimit, authority: ratelimit.local } }
"#;

const RATELIMIT_ROUTES: &str = r#"
name: ratelimit
virtual_hosts:
- name: rl
  domains: ["*"]
  rate_limits: [{ actions: [{ generic_key: { descriptor_value: vh } }] }]
  routes:
  - match: { prefix: /hdr }
    route: { cluster: backend, rate_limits: [{ actions: [{ request_headers: { header_name: x-client, descriptor_key: client } }] }] }
  - match: { prefix: /remote }
    route: { cluster: backend, rate_limits: [{ actions: [{ remote_address: {} }] }] }
  - match: { prefix: /generic }
    route: { cluster: backend, rate_limits: [{ actions: [{ generic_key: { descriptor_key: kind, descriptor_value: gen } }] }] }
  - match: { prefix: /match }
    route: { cluster: backend, rate_limits: [{ actions: [{ header_value_match: { descriptor_value: gold, headers: [{ name: x-tier, string_match: { exact: gold } }] } }] }] }
  - match: { prefix: /dest }
    route: { cluster: backend, rate_limits: [{ actions: [{ destination_cluster: {} }] }] }
  - match: { prefix: /multi }
    route:
      cluster: backend
      rate_limits:
      - actions: [{ request_headers: { header_name: x-a, descriptor_key: a } }]
      - actions: [{ generic_key: { descriptor_value: g } }, { request_headers: { header_name: x-b, descriptor_key: b, skip_if_absent: true } }]
  - match: { prefix: /include }
    route: { cluster: backend, include_vh_rate_limits: true, rate_limits: [{ actions: [{ generic_key: { descriptor_value: r } }] }] }
  - match: { prefix: /over-body }
    route: { cluster: backend, rate_limits: [{ actions: [{ generic_key: { descriptor_value: over-body } }] }] }
  - match: { prefix: /over }
    route: { cluster: backend, rate_limits: [{ actions: [{ generic_key: { descriptor_value: over } }] }] }
  - match: { prefix: /error }
    route: { cluster: backend, rate_limits: [{ actions: [{ generic_key: { descriptor_value: error } }] }] }
  - match: { prefix: /per-route }
    route: { cluster: backend, rate_limits: [{ actions: [{ generic_key: { descriptor_value: ignored } }] }] }
    typed_per_filter_config:
      envoy.filters.http.ratelimit:
        "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
        domain: other
        rate_limits: [{ actions: [{ generic_key: { descriptor_value: per-route } }] }]
  - match: { prefix: /direct }
    direct_response: { status: 200, body: { inline_string: direct } }
  - match: { prefix: / }
    route: { cluster: backend }
"#;

const RATELIMIT_DENY_FILTERS: &str = r#"
- name: envoy.filters.http.ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
    domain: strict
    failure_mode_deny: true
    rate_limited_as_resource_exhausted: true
    timeout: 1s
    rate_limit_service:
      transport_api_version: V3
      grpc_service: { envoy_grpc: { cluster_name: ratelimit, authority: ratelimit.local } }
"#;

const BASIC_FILTERS: &str = r#"
- name: envoy.filters.http.basic_auth
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth
    users: { inline_string: "alice:{SHA}tiY7sUhYKUwI5L3866kDY+ENcrQ=\nbob:{SHA}9SMYoF5RilWWASry7TjeaKwmpGg=" }
    forward_username_header: x-username
"#;

const BASIC_ROUTES: &str = r#"
name: basic
virtual_hosts:
- name: basic
  domains: ["*"]
  routes:
  - match: { prefix: /admin }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.basic_auth:
        "@type": type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute
        users: { inline_string: "bob:{SHA}9SMYoF5RilWWASry7TjeaKwmpGg=" }
  - match: { prefix: / }
    route: { cluster: backend }
"#;

const APIKEY_FILTERS: &str = r#"
- name: envoy.filters.http.api_key_auth
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth
    credentials: [{ key: key-one, client: client-one }, { key: key-two, client: client-two }]
    key_sources: [{ header: x-api-key }, { query: api_key }, { cookie: apikey }]
    forwarding: { header: x-client-id, hide_credentials: true }
"#;

const APIKEY_ROUTES: &str = r#"
name: apikey
virtual_hosts:
- name: apikey
  domains: ["*"]
  routes:
  - match: { prefix: /restricted }
    route: { cluster: backend }
    typed_per_filter_config:
      envoy.filters.http.api_key_auth:
        "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute
        allowed_clients: [client-two]
  - match: { prefix: / }
    route: { cluster: backend }
"#;

const LISTENERS: [&str; 11] = [
    "authz",
    "authz-mtls",
    "authz-filtered",
    "authz-down",
    "authz-allow",
    "authz-http",
    "jwt",
    "ratelimit",
    "ratelimit-deny",
    "basic",
    "apikey",
];

struct Ports(HashMap<&'static str, u16>);

impl Ports {
    fn free() -> Ports {
        Ports(LISTENERS.iter().map(|name| (*name, free_port())).collect())
    }

    fn by_name(&self) -> HashMap<&'static str, SocketAddr> {
        self.0
            .iter()
            .map(|(name, port)| (*name, SocketAddr::from(([127, 0, 0, 1], *port))))
            .collect()
    }
}

fn bootstrap(
    ports: &Ports,
    upstreams: &[EchoUpstream],
    services: &[ServiceCluster<'_>],
    jwks: &str,
    tls: &ListenerTls,
) -> String {
    let jwt = jwt_filters(jwks);
    let listener = |name: &'static str, filters: &'static str, routes: &'static str| {
        (name, filters.to_owned(), routes)
    };
    let specs = [
        listener("authz", AUTHZ_FILTERS, AUTHZ_ROUTES),
        listener("authz-mtls", MTLS_FILTERS, PLAIN_ROUTES),
        listener("authz-filtered", FILTERED_FILTERS, PLAIN_ROUTES),
        listener("authz-down", DOWN_FILTERS, PLAIN_ROUTES),
        listener("authz-allow", ALLOW_FILTERS, PLAIN_ROUTES),
        listener("authz-http", HTTP_AUTHZ_FILTERS, PLAIN_ROUTES),
        ("jwt", jwt, JWT_ROUTES),
        listener("ratelimit", RATELIMIT_FILTERS, RATELIMIT_ROUTES),
        listener("ratelimit-deny", RATELIMIT_DENY_FILTERS, RATELIMIT_ROUTES),
        listener("basic", BASIC_FILTERS, BASIC_ROUTES),
        listener("apikey", APIKEY_FILTERS, APIKEY_ROUTES),
    ];
    let listeners: Vec<ListenerSpec<'_>> = specs
        .iter()
        .map(|(name, filters, routes)| ListenerSpec {
            name,
            port: ports.0[name],
            routes,
            filters,
            tls: (*name == "authz-mtls").then_some(tls),
            manager: "",
        })
        .collect();
    differential::bootstrap_with_services(&listeners, upstreams, services)
}

/// A token as a `&'static str` the case builders take.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn bearer(token: &str) -> &'static str {
    leak(format!("Bearer {token}"))
}

const DENIED_BY_AUTHZ: Expect = Expect::Reply(403, "");

fn authz_cases() -> Vec<Case> {
    let on = |target: &'static str| get("authz.test", target).on("authz");
    vec![
        case(
            "ext_authz_allows_with_request_and_response_mutations",
            on("/allowed")
                .header("x-user", "alice")
                .header("x-append-me", "client")
                .header("x-remove-me", "gone"),
            to("backend")
                .header("x-authz-user", Some("alice"))
                .header("x-append-me", Some("client,authz"))
                .header("x-remove-me", None)
                .header("x-check-method", Some("GET"))
                .header("x-check-path", Some("/allowed"))
                .header("x-check-host", Some("authz.test"))
                .header("x-check-context", Some("level=vhost;shared=vhost")),
        )
        .response("x-authz-response", Some("ok"))
        .response("x-authz-set-response", Some("set")),
        case(
            "ext_authz_append_needs_an_existing_header",
            on("/allowed"),
            to("backend")
                .header("x-append-me", None)
                .header("x-authz-user", Some("anonymous")),
        ),
        case(
            "ext_authz_check_carries_path_query_protocol_and_size",
            on("/allowed/q?a=1&b=2").header("content-length", "0"),
            to("backend")
                .header("x-check-path", Some("/allowed/q?a=1&b=2"))
                .header("x-check-query", None)
                .header("x-check-protocol", Some("HTTP/1.1"))
                .header("x-check-size", Some("0")),
        ),
        case(
            "ext_authz_check_over_h2_names_http2",
            on("/allowed").h2c(),
            to("backend").header("x-check-protocol", Some("HTTP/2")),
        ),
        case(
            "ext_authz_check_carries_the_client_address",
            on("/allowed"),
            to("backend").header("x-check-source-ip", Some("127.0.0.1")),
        ),
        case(
            "ext_authz_route_context_extensions_override_the_virtual_hosts",
            on("/ctx"),
            to("backend").header(
                "x-check-context",
                Some("level=vhost;route=ctx;shared=route"),
            ),
        ),
        case(
            "ext_authz_disabled_per_route_skips_the_check",
            on("/open").header("x-remove-me", "kept"),
            to("backend")
                .header("x-remove-me", Some("kept"))
                .header("x-authz-user", None),
        ),
        case(
            "ext_authz_checks_direct_responses_too",
            on("/direct/authz/deny-plain"),
            DENIED_BY_AUTHZ,
        ),
        case(
            "ext_authz_denial_with_custom_status_headers_and_body",
            on("/authz/deny-custom"),
            Expect::Reply(418, "custom denial"),
        )
        .response("x-authz-denied", Some("custom"))
        .response("x-authz-denied-appended", None),
        case(
            "ext_authz_denial_status_chosen_by_the_service",
            on("/authz/deny-custom").header("x-deny-status", "429"),
            Expect::Reply(429, "custom denial"),
        )
        .response("x-authz-denied", Some("custom")),
        case(
            "ext_authz_plain_denial_is_403_without_body",
            on("/authz/deny-plain"),
            DENIED_BY_AUTHZ,
        )
        .response("x-authz-response", None),
        case(
            "ext_authz_denial_can_ask_for_credentials",
            on("/authz/deny-401"),
            Expect::Reply(401, "login first"),
        )
        .response("www-authenticate", Some("Bearer realm=\"authz\"")),
        case(
            "ext_authz_denial_of_a_grpc_call_is_a_grpc_status",
            on("/authz/deny-custom").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("2"))
        .response("grpc-message", Some("custom denial"))
        .response("x-authz-denied", Some("custom")),
        case(
            "ext_authz_plain_denial_of_a_grpc_call_is_permission_denied",
            on("/authz/deny-plain").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("7")),
        case(
            "ext_authz_service_error_is_403",
            on("/authz/error"),
            DENIED_BY_AUTHZ,
        ),
        case(
            "ext_authz_service_timeout_is_403",
            on("/authz/slow"),
            DENIED_BY_AUTHZ,
        ),
        case(
            "ext_authz_body_is_sent_with_the_check",
            on("/allowed").method("POST").body("hello"),
            to("backend")
                .header("x-check-body", Some("hello"))
                .header("x-check-partial", Some("false")),
        ),
        case(
            "ext_authz_long_body_is_cut_to_max_request_bytes",
            on("/allowed").method("POST").body("0123456789abcdefXYZ"),
            to("backend")
                .header("x-check-body", Some("0123456789abcdef"))
                .header("x-check-partial", Some("true")),
        ),
        case(
            "ext_authz_route_can_skip_body_buffering",
            on("/nobody").method("POST").body("hello"),
            to("backend")
                .header("x-check-body", None)
                .header("x-check-partial", None),
        ),
        case(
            "ext_authz_check_carries_the_spiffe_id_and_certificate_of_the_client",
            get("authz.test", "/allowed")
                .on("authz-mtls")
                .tls_as(Some("client")),
            to("backend").header(
                "x-check-principal",
                Some("spiffe://cluster.local/ns/default/sa/client"),
            ),
        ),
        case(
            "ext_authz_check_without_a_client_certificate_has_no_principal",
            get("authz.test", "/allowed").on("authz-mtls").tls_as(None),
            to("backend")
                .header("x-check-principal", None)
                .header("x-check-certificate", None),
        ),
        case(
            "ext_authz_allowed_and_disallowed_headers_shape_the_check",
            get("authz.test", "/allowed")
                .on("authz-filtered")
                .header("x-client-a", "1")
                .header("x-client-secret", "s")
                .header("x-other", "o")
                .header("x-user", "carol"),
            to("backend")
                .header("x-check-client-headers", Some("x-client-a"))
                .header("x-authz-user", Some("carol")),
        ),
        case(
            "ext_authz_service_down_uses_status_on_error",
            get("authz.test", "/x").on("authz-down"),
            Expect::Reply(503, ""),
        ),
        case(
            "ext_authz_service_down_grpc_call_is_unavailable",
            get("authz.test", "/x").on("authz-down").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("14")),
        case(
            "ext_authz_failure_mode_allow_lets_the_request_through_marked",
            get("authz.test", "/x").on("authz-allow"),
            to("backend").header("x-envoy-auth-failure-mode-allowed", Some("true")),
        ),
    ]
}

fn http_authz_cases() -> Vec<Case> {
    let on = |target: &'static str| get("authz.test", target).on("authz-http");
    vec![
        case(
            "http_authz_allows_with_listed_upstream_headers",
            on("/ok?x=1")
                .header("authorization", "Token t")
                .header("x-client-a", "a")
                .header("x-other", "o")
                .header("x-authz-append", "client")
                .header("x-remove-me", "gone"),
            to("backend")
                .header("x-authz-user", Some("http-user"))
                .header("x-authz-append", Some("client,appended"))
                .header("x-authz-not-listed", None)
                .header("x-remove-me", None)
                .header("x-check-path", Some("/check/ok?x=1"))
                .header("x-check-auth", Some("Token t"))
                .header("x-check-client-a", Some("a"))
                .header("x-check-other", Some("none"))
                .header("x-check-added", Some("yes")),
        )
        .response("x-auth-on-success", Some("yes")),
        case(
            "http_authz_check_carries_the_body",
            on("/ok").method("POST").body("payload"),
            to("backend")
                .header("x-check-body", Some("payload"))
                .header("x-check-length", Some("7")),
        ),
        case(
            "http_authz_body_over_the_limit_is_413",
            on("/ok")
                .method("POST")
                .body("0123456789012345678901234567890123456789012345678901234567890123456789"),
            Expect::Reply(413, "Payload Too Large"),
        ),
        case(
            "http_authz_denial_passes_listed_headers_and_body",
            on("/deny"),
            Expect::Reply(403, "http denial"),
        )
        .response("x-authz-denied", Some("http"))
        .response("x-authz-hidden", None)
        .response("www-authenticate", Some("Basic realm=\"authz\"")),
        case("http_authz_5xx_is_an_error", on("/error"), DENIED_BY_AUTHZ),
    ]
}

fn jwt_cases(tokens: &Tokens) -> Vec<Case> {
    let on = |target: &'static str| get("jwt.test", target).on("jwt");
    let remote = |claims: serde_json::Value| {
        let mut base =
            json!({ "iss": "https://remote.test", "aud": "api.test", "sub": "alice", "exp": 600 });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        base
    };
    let valid = leak(tokens.sign("RS256", remote(json!({ "org": { "tenant": "t1" } }))));
    let es256 = leak(tokens.sign("ES256", remote(json!({ "sub": "bob" }))));
    let eddsa = leak(tokens.sign("EdDSA", remote(json!({ "sub": "eve" }))));
    let expired = leak(tokens.sign("RS256", remote(json!({ "exp": -600 }))));
    let skewed = leak(tokens.sign("RS256", remote(json!({ "exp": -30 }))));
    let early = leak(tokens.sign("RS256", remote(json!({ "nbf": 600 }))));
    let wrong_aud = leak(tokens.sign("RS256", remote(json!({ "aud": "other.test" }))));
    let wrong_iss = leak(tokens.sign("RS256", remote(json!({ "iss": "https://nobody.test" }))));
    let local = leak(tokens.sign(
        "HS256",
        json!({ "iss": "https://local.test", "sub": "svc", "exp": 600 }),
    ));
    let cookie = leak(tokens.sign(
        "ES256",
        json!({ "iss": "https://cookie.test", "sub": "c", "exp": 600 }),
    ));
    let broken = leak(tokens.sign("RS256", json!({ "iss": "https://broken.test", "exp": 600 })));
    // A character in the middle of the signature changed: a signature that does not verify.
    // (The last character of an RS256 signature carries four unused bits; changing only those
    // leaves the signature valid for Envoy, which the next case checks.)
    let signature_at = valid.rfind('.').expect("three parts") + 20;
    let mut tampered = valid.to_owned();
    let flipped = if valid[signature_at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(signature_at..=signature_at, flipped);
    let tampered = leak(tampered);
    let mut trailing_bits = valid.to_owned();
    let last = trailing_bits.pop().expect("a signature");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).expect("base64url");
    trailing_bits.push(alphabet.as_bytes()[index ^ 1] as char);
    let trailing_bits = leak(trailing_bits);
    let missing = |status| Expect::Reply(status, "Jwt is missing");
    vec![
        case(
            "jwt_valid_rs256_from_remote_jwks_with_payload_and_claims",
            on("/api")
                .header("authorization", bearer(valid))
                .header("x-sub", "spoofed"),
            to("backend")
                .header("authorization", None)
                .header("x-sub", Some("alice"))
                .header("x-tenant", Some("t1")),
        ),
        case(
            "jwt_valid_es256",
            on("/api").header("authorization", bearer(es256)),
            to("backend").header("x-sub", Some("bob")),
        ),
        case(
            "jwt_valid_eddsa",
            on("/api").header("authorization", bearer(eddsa)),
            to("backend").header("x-sub", Some("eve")),
        ),
        case("jwt_missing_token_is_401", on("/api"), missing(401)),
        case(
            "jwt_token_in_access_token_param",
            on(leak(format!("/api?access_token={valid}"))),
            to("backend").path("/api").header("x-sub", Some("alice")),
        ),
        case(
            "jwt_expired_token",
            on("/api").header("authorization", bearer(expired)),
            Expect::Reply(401, "Jwt is expired"),
        ),
        case(
            "jwt_expiry_within_the_clock_skew_passes",
            on("/api").header("authorization", bearer(skewed)),
            to("backend"),
        ),
        case(
            "jwt_not_yet_valid",
            on("/api").header("authorization", bearer(early)),
            Expect::Reply(401, "Jwt not yet valid"),
        ),
        case(
            "jwt_wrong_audience_is_403",
            on("/api").header("authorization", bearer(wrong_aud)),
            Expect::Reply(403, "Audiences in Jwt are not allowed"),
        ),
        case(
            "jwt_unknown_issuer",
            on("/api").header("authorization", bearer(wrong_iss)),
            Expect::Reply(401, "Jwt issuer is not configured"),
        ),
        case(
            "jwt_bad_signature",
            on("/api").header("authorization", bearer(tampered)),
            Expect::Reply(401, "Jwt verification fails"),
        ),
        case(
            "jwt_signature_with_unused_trailing_bits_set",
            on("/api").header("authorization", bearer(trailing_bits)),
            to("backend")
                .header("authorization", None)
                .header("x-sub", Some("alice"))
                .header("x-tenant", Some("t1")),
        ),
        case(
            "jwt_not_a_token",
            on("/api").header("authorization", "Bearer abc"),
            Expect::Reply(
                401,
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
            ),
        ),
        case(
            "jwt_public_rule_requires_nothing",
            on("/public"),
            to("backend"),
        ),
        case(
            "jwt_requires_any_accepts_the_second_provider",
            on("/any").header("x-jwt", local),
            to("backend").header("x-jwt", Some(local)),
        ),
        case(
            "jwt_requires_any_reports_the_telling_failure",
            on("/any").header("authorization", bearer(expired)),
            Expect::Reply(401, "Jwt is expired"),
        ),
        case(
            "jwt_allow_missing_lets_a_missing_token_through",
            on("/optional"),
            to("backend"),
        ),
        case(
            "jwt_allow_missing_still_refuses_a_bad_token",
            on("/optional").header("authorization", bearer(expired)),
            Expect::Reply(401, "Jwt is expired"),
        ),
        case(
            "jwt_allow_missing_or_failed_lets_a_bad_token_through",
            on("/lenient").header("authorization", bearer(expired)),
            to("backend"),
        ),
        case(
            "jwt_requires_all_needs_both",
            on("/both").header("authorization", bearer(valid)),
            missing(401),
        ),
        case(
            "jwt_requires_all_with_both_tokens",
            on("/both")
                .header("authorization", bearer(valid))
                .header("x-jwt", local),
            to("backend").header("x-sub", Some("alice")),
        ),
        case(
            "jwt_provider_and_audiences_replaces_the_providers",
            on("/aud").header("authorization", bearer(valid)),
            Expect::Reply(403, "Audiences in Jwt are not allowed"),
        ),
        case(
            "jwt_jwks_fetch_failure",
            on("/fetchfail").header("authorization", bearer(broken)),
            Expect::Reply(401, "Jwks remote fetch is failed"),
        ),
        case(
            "jwt_token_from_a_cookie",
            on("/cookie").header("cookie", leak(format!("other=1; session={cookie}"))),
            to("backend"),
        ),
        case(
            "jwt_per_route_requirement_name",
            on("/named").header("authorization", bearer(valid)),
            missing(401),
        ),
        case(
            "jwt_per_route_requirement_name_with_its_token",
            on(leak(format!("/named?token={local}"))),
            to("backend"),
        ),
        case("jwt_per_route_disabled", on("/skip"), to("backend")),
        case(
            "jwt_missing_token_on_a_grpc_call_is_unauthenticated",
            on("/pkg.Svc/Call").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("16"))
        .response("grpc-message", Some("Jwt is missing")),
    ]
}

fn rate_limit_cases() -> Vec<Case> {
    let on = |target: &'static str| get("rl.test", target).on("ratelimit");
    let descriptors = |value: &'static str| to("backend").header("x-rl-descriptors", Some(value));
    vec![
        case(
            "ratelimit_request_header_descriptor_with_x_ratelimit_headers",
            on("/hdr").header("x-client", "c1"),
            descriptors("mesh|client=c1"),
        )
        .response("x-rl", Some("ok"))
        .response("x-ratelimit-limit", Some("10, 10;w=60, 100;w=3600"))
        .response("x-ratelimit-remaining", Some("7"))
        .response("x-ratelimit-reset", Some("42")),
        case(
            "ratelimit_missing_header_drops_the_descriptor",
            on("/hdr"),
            to("backend").header("x-rl-descriptors", None),
        )
        .response("x-rl", None),
        case(
            "ratelimit_remote_address_descriptor",
            on("/remote"),
            descriptors("mesh|remote_address=127.0.0.1"),
        ),
        case(
            "ratelimit_generic_key_with_its_own_key",
            on("/generic"),
            descriptors("mesh|kind=gen"),
        ),
        case(
            "ratelimit_header_value_match",
            on("/match").header("x-tier", "gold"),
            descriptors("mesh|header_match=gold"),
        ),
        case(
            "ratelimit_header_value_mismatch_asks_nothing",
            on("/match").header("x-tier", "silver"),
            to("backend").header("x-rl-descriptors", None),
        ),
        case(
            "ratelimit_destination_cluster",
            on("/dest"),
            descriptors("mesh|destination_cluster=backend"),
        ),
        case(
            "ratelimit_several_descriptors_in_order",
            on("/multi").header("x-a", "1").header("x-b", "2"),
            descriptors("mesh|a=1;generic_key=g,b=2"),
        ),
        case(
            "ratelimit_skip_if_absent_keeps_the_descriptor",
            on("/multi"),
            descriptors("mesh|generic_key=g"),
        ),
        case(
            "ratelimit_include_vh_rate_limits",
            on("/include"),
            descriptors("mesh|generic_key=r;generic_key=vh"),
        ),
        case(
            "ratelimit_virtual_host_limits_when_the_route_has_none",
            on("/plain"),
            descriptors("mesh|generic_key=vh"),
        ),
        case(
            "ratelimit_per_route_limits_and_domain",
            on("/per-route"),
            descriptors("other|generic_key=per-route"),
        ),
        case(
            "ratelimit_over_limit_is_429",
            on("/over"),
            Expect::Reply(429, ""),
        )
        .response("x-envoy-ratelimited", Some("true"))
        .response("x-rl", Some("over"))
        .response("x-ratelimit-limit", Some("5, 5;w=60"))
        .response("x-ratelimit-remaining", Some("0"))
        .response("x-ratelimit-reset", Some("30")),
        case(
            "ratelimit_over_limit_with_the_services_body",
            on("/over-body"),
            Expect::Reply(429, "slow down"),
        ),
        case(
            "ratelimit_over_limit_grpc_call_is_unavailable",
            on("/over").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("14"))
        .response("x-envoy-ratelimited", Some("true")),
        case(
            "ratelimit_service_error_lets_the_request_through",
            on("/error"),
            to("backend"),
        ),
        case(
            "ratelimit_direct_responses_are_not_limited",
            on("/direct"),
            Expect::Direct(200, "direct"),
        ),
        case(
            "ratelimit_failure_mode_deny_refuses_on_service_error",
            get("rl.test", "/error").on("ratelimit-deny"),
            Expect::Reply(500, ""),
        ),
        case(
            "ratelimit_resource_exhausted_for_grpc_when_configured",
            get("rl.test", "/over").on("ratelimit-deny").grpc(),
            Expect::Reply(200, ""),
        )
        .response("grpc-status", Some("8"))
        .response("x-envoy-ratelimited", Some("true")),
    ]
}

fn basic_auth_cases() -> Vec<Case> {
    let on = |target: &'static str| get("basic.test", target).on("basic");
    vec![
        case(
            "basic_auth_valid_user_is_forwarded",
            on("/").header("authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
            to("backend").header("x-username", Some("alice")),
        ),
        case(
            "basic_auth_missing_credentials",
            on("/"),
            Expect::Reply(
                401,
                "User authentication failed. Missing username and password.",
            ),
        ),
        case(
            "basic_auth_wrong_password",
            on("/").header("authorization", "Basic YWxpY2U6d3Jvbmc="),
            Expect::Reply(
                401,
                "User authentication failed. Invalid username/password combination.",
            ),
        ),
        case(
            "basic_auth_not_basic",
            on("/").header("authorization", "Bearer abc"),
            Expect::Reply(
                401,
                "User authentication failed. Expected 'Basic' authentication scheme.",
            ),
        ),
        case(
            "basic_auth_per_route_users",
            on("/admin").header("authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
            Expect::Reply(
                401,
                "User authentication failed. Invalid username/password combination.",
            ),
        ),
        case(
            "basic_auth_per_route_user_allowed",
            on("/admin").header("authorization", "Basic Ym9iOmJ1aWxkZXI="),
            to("backend").header("x-username", Some("bob")),
        ),
    ]
}

fn api_key_cases() -> Vec<Case> {
    let on = |target: &'static str| get("key.test", target).on("apikey");
    vec![
        case(
            "api_key_from_a_header_is_hidden_and_the_client_forwarded",
            on("/").header("x-api-key", "key-one"),
            to("backend")
                .header("x-api-key", None)
                .header("x-client-id", Some("client-one")),
        ),
        case(
            "api_key_from_the_query",
            on("/?api_key=key-two"),
            to("backend")
                .path("/")
                .header("x-client-id", Some("client-two")),
        ),
        case(
            "api_key_from_a_cookie",
            on("/").header("cookie", "apikey=key-one"),
            to("backend")
                .header("cookie", None)
                .header("x-client-id", Some("client-one")),
        ),
        case(
            "api_key_missing",
            on("/"),
            Expect::Reply(401, "Client authentication failed."),
        ),
        case(
            "api_key_unknown",
            on("/").header("x-api-key", "nope"),
            Expect::Reply(401, "Client authentication failed."),
        ),
        case(
            "api_key_client_not_allowed_on_the_route",
            on("/restricted").header("x-api-key", "key-one"),
            Expect::Reply(403, "Client is forbidden."),
        ),
        case(
            "api_key_route_settings_replace_forwarding",
            on("/restricted").header("x-api-key", "key-two"),
            to("backend")
                .header("x-client-id", None)
                .header("x-api-key", Some("key-two")),
        ),
    ]
}

/// The client identity of the mTLS cases and the CA bundle that trusts it.
fn identities(dir: &std::path::Path) -> (Identities, ListenerTls) {
    let server = TestCert::generate();
    let client = TestCert::for_uri("spiffe://cluster.local/ns/default/sa/client");
    let client_ca = dir.join("clients.pem");
    std::fs::write(&client_ca, client.pem()).expect("write client CA bundle");
    let tls = ListenerTls {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca,
    };
    (
        Identities {
            server: Some(server),
            clients: HashMap::from([("client", client)]),
        },
        tls,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_run_the_gateway_security_filters_alike() {
    let tokens = Tokens::load();
    let cases: Vec<Case> = [
        authz_cases(),
        http_authz_cases(),
        jwt_cases(&tokens),
        rate_limit_cases(),
        basic_auth_cases(),
        api_key_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
    }
    let backend = EchoUpstream::start("backend").await.expect("echo upstream");
    let authz = auth_peers::start_ext_authz()
        .await
        .expect("ext_authz server");
    let http_authz = auth_peers::start_http_authz()
        .await
        .expect("HTTP authz server");
    let jwks = auth_peers::start_jwks().await.expect("JWKS server");
    let rate_limit = auth_peers::start_rate_limit()
        .await
        .expect("rate limit service");
    let dead: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let services = [
        ServiceCluster {
            name: "authz-grpc",
            addr: authz.addr,
            http2: true,
        },
        ServiceCluster {
            name: "authz-http",
            addr: http_authz.addr,
            http2: false,
        },
        ServiceCluster {
            name: "jwks",
            addr: jwks.addr,
            http2: false,
        },
        ServiceCluster {
            name: "ratelimit",
            addr: rate_limit.addr,
            http2: true,
        },
        ServiceCluster {
            name: "dead-grpc",
            addr: dead,
            http2: true,
        },
    ];
    let jwks_json =
        std::fs::read_to_string(mesh_host_tests::workspace_root().join("tests/data/jwks.json"))
            .expect("jwks.json")
            .replace('\n', "");
    let upstreams = [backend];
    let dir = tempfile::tempdir().expect("tempdir");
    let (identities, tls) = identities(dir.path());

    let envoy_ports = Ports::free();
    let envoy_bootstrap = bootstrap(&envoy_ports, &upstreams, &services, &jwks_json, &tls);
    let Some(envoy) = Envoy::start(&envoy_bootstrap).await else {
        return;
    };
    let path = dir.path().join("bootstrap.yaml");
    let mesh_ports = Ports::free();
    std::fs::write(
        &path,
        bootstrap(&mesh_ports, &upstreams, &services, &jwks_json, &tls),
    )
    .expect("write bootstrap");
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
