//! Per-component policy model and evaluation for mesh-host.
//!
//! Pure and fast: no I/O, no servers. The host parses each workload's policy
//! section of the mesh config into a [`WorkloadPolicyConfig`], compiles it
//! once with [`WorkloadPolicy::from_config`] (which reports every bad entry,
//! each with its path, before failing), and then asks it per request:
//!
//! - inbound: the gRPC `serve` flag ([`grpc`]), JWT authentication and external
//!   authorization ([`external_auth`]), authorization ([`rbac`], Envoy RBAC rules)
//!   and the local rate limit's bucket ([`rate_limit`]), which the host compiles
//!   into the same HTTP filters (`envoy.filters.http.jwt_authn`, `ext_authz`,
//!   `rbac`, `local_ratelimit`) a connection manager runs, in that order;
//! - outbound: [`WorkloadPolicy::check_outbound`] applies the gRPC flags and
//!   the egress allow rules ([`egress`]) before mesh routing;
//! - [`tracing`]: whether the host writes `traceparent` into the component's outbound
//!   requests;
//! - [`limits`] holds body, header, timeout, concurrency and memory limits,
//!   and the `grpc-timeout` rules ([`limits::parse_grpc_timeout`],
//!   [`limits::effective_deadline`]).
//!
//! An outbound denial is a [`PolicyDenied`], which the host reports to the
//! component as `HTTP-request-denied`.
//!
//! # Configuration
//!
//! Every key is optional. Without any, a workload serves plain HTTP and
//! nothing else: no gRPC, all egress denied, no authorization, default
//! limits, no rate limit.
//!
//! ```
//! # use mesh_policies::{WorkloadPolicy, WorkloadPolicyConfig};
//! let yaml = r#"
//! grpc: { serve: true, outbound: true }
//! egress:
//!   allow:
//!     - authority: "*.example.com"     # any subdomain, not example.com itself
//!       ports: [443]                   # omitted: any port
//!       methods: [GET, POST]           # omitted: any method
//!       schemes: [https]               # omitted: http and https
//!     - authority: "greeter.default.svc"
//!     - authority: "10.0.0.7"          # IP literals need allow_ip_literal
//!       allow_ip_literal: true
//! rbac:
//!   action: ALLOW                      # or DENY
//!   policies:
//!     admins:
//!       permissions: [{ url_path: { prefix: "/admin" } }]
//!       principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/admin" } } }]
//!     public-reads:
//!       permissions:
//!         - and_rules:
//!             rules:
//!               - { method: GET }
//!               - { not_rule: { url_path: { prefix: "/admin" } } }
//!       principals: [{ source_ip: "10.0.0.0/8" }, { any: true }]
//! limits:
//!   max_request_body_bytes: "10MiB"
//!   max_request_header_bytes: "64KiB"
//!   request_timeout: "30s"
//!   max_request_timeout: "5m"          # cap for a client's grpc-timeout
//!   max_concurrent_requests: 1000
//!   memory: "128MiB"                   # per component instance
//! rate_limit: { max_tokens: 100, tokens_per_fill: 100, fill_interval: "1s" }
//! jwt:                                 # Istio's RequestAuthentication
//!   providers:
//!     idp:
//!       issuer: https://idp.example.com
//!       audiences: [greeter]
//!       remote_jwks: { uri: "https://idp.example.com/jwks.json", cluster: idp, cache_duration: "5m" }
//!       forward_payload_header: x-jwt-payload
//!       claim_to_headers: [{ header_name: x-user, claim_name: sub }]
//!   allow_missing: false               # true: only a bad token is refused
//! ext_authz:                           # a CUSTOM AuthorizationPolicy
//!   grpc: { cluster: authz, authority: authz.default.svc, timeout: "500ms" }
//!   failure_mode_allow: false          # a failing service refuses (status_on_error, 403)
//!   with_request_body: { max_request_bytes: 8192, allow_partial_message: true }
//! tracing: { inject_traceparent: true }  # false: outbound headers left as the component wrote them
//! "#;
//! let config: WorkloadPolicyConfig = serde_yaml::from_str(yaml)?;
//! let policy = WorkloadPolicy::from_config(&config)?;
//! assert!(policy.grpc.serve);
//! assert_eq!(policy.egress.rules().len(), 3);
//! assert_eq!(policy.limits.max_request_body_bytes, 10 * 1024 * 1024);
//! assert!(policy.jwt.as_ref().is_some_and(|jwt| jwt.providers.contains_key("idp")));
//! assert!(policy.ext_authz.is_some());
//! assert!(policy.tracing.inject_traceparent);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `ext_authz` names exactly one service: `grpc: { cluster, authority, timeout }`
//! (`envoy.service.auth.v3.Authorization/Check`) or `http: { cluster, path_prefix,
//! timeout, allowed_headers, allowed_upstream_headers, allowed_client_headers }`. `jwt`
//! providers take exactly one of `local_jwks` (the document) and `remote_jwks: { uri,
//! cluster, timeout, cache_duration }`, plus `issuer`, `audiences`, `from_headers: [{ name,
//! value_prefix }]`, `from_params`, `forward`, `forward_payload_header` and
//! `claim_to_headers`; `requires` lists the providers any one of which must verify
//! (default: all of them), `allow_missing` lets requests without a token through. The
//! clusters are the host's (its bootstrap or control plane); without them a check fails and
//! is refused unless `failure_mode_allow`.
//!
//! RBAC uses Envoy's field names and meaning: permissions `any`, `header: {
//! name, string_match }` (pseudo-headers `:method`, `:path`, `:authority`,
//! `:scheme` included), `url_path`, `method` (short for a `:method` header
//! matcher), `destination_port`, `and_rules`, `or_rules`, `not_rule`;
//! principals `any`, `authenticated`, `source_ip` (Envoy's deprecated name of
//! `direct_remote_ip`), `direct_remote_ip`, `header`, `and_ids`, `or_ids`,
//! `not_id`; string matchers `exact`, `prefix`, `suffix`, `contains`,
//! `safe_regex: { regex }` (or `regex`), with `ignore_case`. CIDR ranges are
//! written `10.0.0.0/8`.

pub mod egress;
mod error;
pub mod external_auth;
pub mod grpc;
pub mod limits;
pub mod rate_limit;
pub mod rbac;
pub mod tracing;
pub mod workload;

pub use error::{PolicyConfigError, PolicyConfigErrors, PolicyDenied};
pub use workload::{WorkloadPolicy, WorkloadPolicyConfig};

/// The `http` crate this one uses in its API (methods, header maps).
pub use http;
