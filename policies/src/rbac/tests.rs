//! Tests for RBAC configuration: what each key compiles to, and every bad entry reported with
//! its path. How the rules decide is tested with the RBAC filter that evaluates them.

use mesh_xds::config::{
    HeaderMatch, Permission, Principal, RbacAction, StringMatcher, StringPattern,
};

use super::*;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";

fn rules(yaml: &str) -> RbacRules {
    let config: RbacConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    config.to_rules().expect("valid rbac")
}

fn config_errors(yaml: &str) -> Vec<String> {
    let config: RbacConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    match config.to_rules() {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.into_iter().map(|e| e.path).collect(),
    }
}

#[test]
fn keys_compile_to_the_rules_the_rbac_filter_evaluates() {
    let compiled = rules(&format!(
        r#"
action: DENY
policies:
  admins:
    permissions:
      - {{ method: POST }}
      - {{ url_path: {{ prefix: /admin }} }}
      - {{ not_rule: {{ destination_port: 8080 }} }}
    principals:
      - {{ authenticated: {{ principal_name: {{ exact: "{ADMIN}" }} }} }}
      - {{ source_ip: 10.0.0.0/8 }}
      - {{ header: {{ name: ":authority", string_match: {{ suffix: .internal }} }} }}
"#
    ));
    assert_eq!(compiled.action, RbacAction::Deny);
    let policy = &compiled.policies["admins"];
    let Permission::Header(method) = &policy.permissions[0] else {
        panic!(
            "method is a :method header matcher: {:?}",
            policy.permissions[0]
        );
    };
    assert_eq!(method.name, ":method");
    assert_eq!(
        method.matcher,
        HeaderMatch::String(StringMatcher::exact("POST"))
    );
    assert!(matches!(
        &policy.permissions[1],
        Permission::UrlPath(StringMatcher { pattern: StringPattern::Prefix(p), .. }) if p == "/admin"
    ));
    assert!(
        matches!(&policy.permissions[2], Permission::Not(inner) if matches!(**inner, Permission::DestinationPort(8080)))
    );
    assert_eq!(
        policy.principals[0],
        Principal::Authenticated(Some(StringMatcher::exact(ADMIN)))
    );
    let Principal::DirectRemoteIp(range) = &policy.principals[1] else {
        panic!(
            "source_ip is Envoy's direct_remote_ip: {:?}",
            policy.principals[1]
        );
    };
    assert_eq!(
        (range.address.to_string(), range.prefix_len),
        ("10.0.0.0".to_owned(), 8)
    );
    assert!(matches!(&policy.principals[2], Principal::Header(h) if h.name == ":authority"));
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
