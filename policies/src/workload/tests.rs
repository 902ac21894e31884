//! Tests for whole-workload policies.

use http::Method;

use super::*;
use crate::egress::{EgressDenied, Scheme};
use crate::grpc::GrpcDenied;

/// The YAML shape from the crate documentation, kept in step with it.
const DOC_EXAMPLE: &str = r#"
grpc: { serve: true, outbound: true }
egress:
  allow:
    - authority: "*.example.com"
      ports: [443]
      methods: [GET, POST]
      schemes: [https]
    - authority: "greeter.default.svc"
rbac:
  action: ALLOW
  policies:
    admins:
      permissions: [{ url_path: { prefix: "/admin" } }]
      principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/admin" } } }]
limits: { max_request_body_bytes: "10MiB", request_timeout: "30s", memory: "128MiB" }
rate_limit: { max_tokens: 100, tokens_per_fill: 100, fill_interval: "1s" }
"#;

fn policy(yaml: &str) -> WorkloadPolicy {
    let config: WorkloadPolicyConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    WorkloadPolicy::from_config(&config).expect("valid policy")
}

fn outbound<'a>(host: &'a str, method: &'a Method) -> EgressRequest<'a> {
    EgressRequest {
        scheme: Scheme::Https,
        host,
        port: 443,
        method,
    }
}

#[test]
fn brief_yaml_example_compiles() {
    let p = policy(DOC_EXAMPLE);
    assert!(p.grpc.serve && p.grpc.outbound);
    assert_eq!(p.egress.rules().len(), 2);
    assert!(p.rbac.is_some());
    assert_eq!(p.limits.memory_bytes, 128 * 1024 * 1024);
    assert_eq!(p.rate_limit.map(|bucket| bucket.max_tokens), Some(100));
}

#[test]
fn default_policy_serves_plain_http_only() {
    let p = policy("{}");
    let get = Method::GET;
    assert!(!p.grpc.serve && p.rbac.is_none() && p.rate_limit.is_none());
    assert!(matches!(
        p.check_outbound(&outbound("api.example.com", &get), false),
        Err(PolicyDenied::Egress(EgressDenied::NoRuleMatched { .. }))
    ));
    assert_eq!(
        p.check_outbound(&outbound("api.example.com", &get), true),
        Err(PolicyDenied::Grpc(GrpcDenied::OutboundDisabled))
    );
    assert!(WorkloadPolicy::default().egress.is_empty());
}

#[test]
fn outbound_applies_grpc_flags_then_egress_rules() {
    let p = policy(DOC_EXAMPLE);
    let (get, delete) = (Method::GET, Method::DELETE);
    assert_eq!(
        p.check_outbound(&outbound("api.example.com", &get), true),
        Ok(())
    );
    assert!(
        p.check_outbound(&outbound("api.example.com", &delete), false)
            .is_err()
    );
    assert_eq!(
        p.check_outbound(&outbound("greeter.default.svc", &delete), false),
        Ok(())
    );
}

#[test]
fn every_bad_entry_in_every_section_is_reported_with_its_path() {
    let config: WorkloadPolicyConfig = serde_yaml::from_str(
        r#"
egress:
  allow:
    - authority: ok.example.com
    - authority: "bad host"
    - authority: 10.0.0.1
rbac:
  action: ALLOW
  policies:
    p: { permissions: [{ method: "B A D" }], principals: [{ source_ip: nope }] }
limits: { request_timeout: "forever" }
rate_limit: { max_tokens: 0, fill_interval: "1s" }
"#,
    )
    .expect("valid yaml");
    let err = WorkloadPolicy::from_config(&config).expect_err("invalid");
    let paths: Vec<_> = err.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "egress.allow[1].authority",
            "egress.allow[2].authority",
            "rbac.policies.p.permissions[0].method",
            "rbac.policies.p.principals[0].source_ip",
            "limits.request_timeout",
            "rate_limit.max_tokens",
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("invalid workload policy (6 problems)\n  - egress.allow[1].authority: "),
        "{text}"
    );
}

#[test]
fn unknown_top_level_keys_are_rejected() {
    assert!(serde_yaml::from_str::<WorkloadPolicyConfig>("egres: {}").is_err());
}

#[test]
fn traceparent_injection_is_on_unless_the_policy_turns_it_off() {
    assert!(policy("{}").tracing.inject_traceparent);
    assert!(
        !policy("tracing: { inject_traceparent: false }")
            .tracing
            .inject_traceparent
    );
    let unknown: Result<WorkloadPolicyConfig, _> =
        serde_yaml::from_str("tracing: { inject: false }");
    assert!(unknown.is_err(), "an unknown tracing key is refused");
}
