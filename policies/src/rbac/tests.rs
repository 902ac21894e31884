//! Tests for RBAC, named after the Envoy rule they check.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};

use super::*;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";

fn rbac(yaml: &str) -> Rbac {
    let config: RbacConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    Rbac::from_config(&config).expect("valid rbac")
}

fn config_errors(yaml: &str) -> Vec<String> {
    let config: RbacConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    match Rbac::from_config(&config) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.into_iter().map(|e| e.path).collect(),
    }
}

struct Req {
    method: Method,
    path: &'static str,
    headers: HeaderMap,
    source_ip: IpAddr,
    direct_remote_ip: IpAddr,
    port: u16,
    principal: Option<&'static str>,
}

impl Req {
    fn new(path: &'static str) -> Req {
        Req {
            method: Method::GET,
            path,
            headers: HeaderMap::new(),
            source_ip: "10.1.2.3".parse().expect("ip"),
            direct_remote_ip: "192.168.0.9".parse().expect("ip"),
            port: 8080,
            principal: None,
        }
    }

    fn input(&self) -> InboundRequest<'_> {
        InboundRequest {
            method: &self.method,
            path: self.path,
            authority: Some("svc.example.com"),
            headers: &self.headers,
            source_ip: self.source_ip,
            direct_remote_ip: self.direct_remote_ip,
            destination_port: self.port,
            peer_principal: self.principal,
        }
    }
}

const ADMINS: &str = r#"
action: ALLOW
policies:
  admins:
    permissions: [{ url_path: { prefix: "/admin" } }]
    principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/admin" } } }]
"#;

#[test]
fn allow_action_allows_only_when_a_policy_matches() {
    let r = rbac(ADMINS);
    let mut req = Req::new("/admin/users");
    req.principal = Some(ADMIN);
    assert_eq!(r.check(&req.input()), Ok(Some("admins")));
    req.principal = Some("spiffe://cluster.local/ns/default/sa/other");
    assert_eq!(r.check(&req.input()), Err(RbacDenied::NoAllowPolicyMatched));
}

#[test]
fn deny_action_denies_only_when_a_policy_matches() {
    let r = rbac(
        "action: DENY\npolicies:\n  block-debug:\n    permissions: [{ url_path: { prefix: /debug } }]\n    principals: [{ any: true }]",
    );
    assert_eq!(
        r.check(&Req::new("/debug/pprof").input()),
        Err(RbacDenied::DenyPolicyMatched("block-debug".into()))
    );
    assert_eq!(
        r.evaluate(&Req::new("/ok").input()),
        RbacDecision::Allowed { policy: None }
    );
}

#[test]
fn allow_with_no_policies_denies_and_deny_with_no_policies_allows() {
    assert!(rbac("action: ALLOW").check(&Req::new("/").input()).is_err());
    assert!(rbac("action: DENY").check(&Req::new("/").input()).is_ok());
}

#[test]
fn policy_needs_any_permission_and_any_principal() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p:\n    permissions: [{ method: POST }, { destination_port: 8080 }]\n    principals: [{ source_ip: 172.16.0.0/12 }, { direct_remote_ip: 192.168.0.0/16 }]",
    );
    assert!(r.check(&Req::new("/").input()).is_ok());
    let mut req = Req::new("/");
    req.port = 9090;
    assert!(r.check(&req.input()).is_err(), "no permission matches");
    req.method = Method::POST;
    assert!(r.check(&req.input()).is_ok());
    req.direct_remote_ip = "8.8.8.8".parse().expect("ip");
    assert!(r.check(&req.input()).is_err(), "no principal matches");
}

#[test]
fn first_matching_policy_is_reported_in_config_order() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  zeta: { permissions: [{ any: true }], principals: [{ any: true }] }\n  alpha: { permissions: [{ any: true }], principals: [{ any: true }] }",
    );
    assert_eq!(r.check(&Req::new("/").input()), Ok(Some("zeta")));
}

#[test]
fn url_path_ignores_the_query_string() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p: { permissions: [{ url_path: { exact: /a } }], principals: [{ any: true }] }",
    );
    assert!(r.check(&Req::new("/a?x=1").input()).is_ok());
    assert!(r.check(&Req::new("/a/b").input()).is_err());
}

#[test]
fn header_matches_value_and_missing_header_never_matches() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p:\n    permissions: [{ header: { name: X-Team, string_match: { exact: blue, ignore_case: true } } }]\n    principals: [{ any: true }]",
    );
    let mut req = Req::new("/");
    assert!(r.check(&req.input()).is_err());
    req.headers
        .insert("x-team", HeaderValue::from_static("BLUE"));
    assert!(r.check(&req.input()).is_ok());
}

#[test]
fn multiple_header_values_are_joined_with_commas() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p:\n    permissions: [{ header: { name: x-a, string_match: { exact: \"1,2\" } } }]\n    principals: [{ any: true }]",
    );
    let mut req = Req::new("/");
    req.headers.append("x-a", HeaderValue::from_static("1"));
    req.headers.append("x-a", HeaderValue::from_static("2"));
    assert!(r.check(&req.input()).is_ok());
}

#[test]
fn pseudo_headers_read_method_path_and_authority() {
    let r = rbac(
        r#"
action: ALLOW
policies:
  p:
    permissions:
      - and_rules:
          rules:
            - { header: { name: ":method", string_match: { exact: GET } } }
            - { header: { name: ":path", string_match: { suffix: "?v=1" } } }
            - { header: { name: ":authority", string_match: { regex: "svc\\..*" } } }
    principals: [{ any: true }]
"#,
    );
    assert!(r.check(&Req::new("/x?v=1").input()).is_ok());
    assert!(r.check(&Req::new("/x?v=2").input()).is_err());
}

#[test]
fn and_or_not_permissions_compose() {
    let r = rbac(
        r#"
action: ALLOW
policies:
  p:
    permissions:
      - and_rules:
          rules:
            - or_rules: { rules: [{ method: GET }, { method: HEAD }] }
            - not_rule: { url_path: { prefix: /private } }
    principals: [{ any: true }]
"#,
    );
    assert!(r.check(&Req::new("/public").input()).is_ok());
    assert!(r.check(&Req::new("/private/x").input()).is_err());
    let mut req = Req::new("/public");
    req.method = Method::DELETE;
    assert!(r.check(&req.input()).is_err());
}

#[test]
fn and_or_not_principals_compose() {
    let r = rbac(
        r#"
action: ALLOW
policies:
  p:
    permissions: [{ any: true }]
    principals:
      - and_ids:
          ids:
            - or_ids: { ids: [{ source_ip: 10.0.0.0/8 }, { source_ip: "2001:db8::/32" }] }
            - not_id: { header: { name: x-banned, string_match: { exact: "yes" } } }
"#,
    );
    let mut req = Req::new("/");
    assert!(r.check(&req.input()).is_ok());
    req.headers
        .insert("x-banned", HeaderValue::from_static("yes"));
    assert!(r.check(&req.input()).is_err());
}

#[test]
fn authenticated_without_name_matches_any_authenticated_peer() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p: { permissions: [{ any: true }], principals: [{ authenticated: {} }] }",
    );
    let mut req = Req::new("/");
    assert!(r.check(&req.input()).is_err(), "plaintext peer");
    req.principal = Some("spiffe://x/y");
    assert!(r.check(&req.input()).is_ok());
}

#[test]
fn source_ip_matches_ipv4_mapped_ipv6_addresses() {
    let r = rbac(
        "action: ALLOW\npolicies:\n  p: { permissions: [{ any: true }], principals: [{ source_ip: 10.1.2.3 }] }",
    );
    let mut req = Req::new("/");
    req.source_ip = "::ffff:10.1.2.3".parse().expect("ip");
    assert!(r.check(&req.input()).is_ok());
}

#[test]
fn every_bad_rbac_entry_is_reported_with_its_path() {
    let paths = config_errors(
        r#"
action: ALLOW
policies:
  bad:
    permissions:
      - { url_path: { prefix: "" } }
      - { method: "NOT A METHOD" }
      - { destination_port: 70000 }
      - { any: false }
      - { and_rules: { rules: [] } }
      - { header: { name: "bad header", string_match: { regex: "(" } } }
    principals:
      - { source_ip: "10.0.0.0/33" }
      - { authenticated: { principal_name: { exact: a, prefix: b } } }
  empty:
    permissions: []
    principals: []
"#,
    );
    assert_eq!(
        paths,
        [
            "rbac.policies.bad.permissions[0].url_path.prefix",
            "rbac.policies.bad.permissions[1].method",
            "rbac.policies.bad.permissions[2].destination_port",
            "rbac.policies.bad.permissions[3].any",
            "rbac.policies.bad.permissions[4].and_rules.rules",
            "rbac.policies.bad.permissions[5].header.name",
            "rbac.policies.bad.permissions[5].header.string_match.regex",
            "rbac.policies.bad.principals[0].source_ip",
            "rbac.policies.bad.principals[1].authenticated.principal_name",
            "rbac.policies.empty.permissions",
            "rbac.policies.empty.principals",
        ]
    );
}

#[test]
fn duplicate_policy_names_are_a_config_error() {
    let paths = config_errors(
        "action: ALLOW\npolicies:\n  p: { permissions: [{ any: true }], principals: [{ any: true }] }\n  p: { permissions: [{ any: true }], principals: [{ any: true }] }",
    );
    assert_eq!(paths, ["rbac.policies.p"]);
}

#[test]
fn unknown_keys_and_actions_are_rejected() {
    assert!(serde_yaml::from_str::<RbacConfig>("action: LOG").is_err());
    assert!(serde_yaml::from_str::<RbacConfig>("action: ALLOW\nrules: {}").is_err());
    assert!(
        serde_yaml::from_str::<RbacConfig>(
            "action: ALLOW\npolicies:\n  p: { permissions: [{ path: { exact: / } }], principals: [{ any: true }] }"
        )
        .is_err()
    );
}

#[test]
fn permission_and_principal_need_exactly_one_key() {
    let paths = config_errors(
        "action: ALLOW\npolicies:\n  p:\n    permissions: [{}, { any: true, method: GET }]\n    principals: [{ any: true, source_ip: 10.0.0.0/8 }]",
    );
    assert_eq!(
        paths,
        [
            "rbac.policies.p.permissions[0]",
            "rbac.policies.p.permissions[1]",
            "rbac.policies.p.principals[0]",
        ]
    );
}
