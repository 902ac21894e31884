//! Tests for egress rules, named after the rule they check.

use super::*;

fn rules(yaml: &str) -> EgressRules {
    let config: EgressConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    EgressRules::from_config(&config).expect("valid rules")
}

fn errors(yaml: &str) -> Vec<(String, String)> {
    let config: EgressConfig = serde_yaml::from_str(yaml).expect("valid yaml");
    match EgressRules::from_config(&config) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

fn check(
    rules: &EgressRules,
    scheme: Scheme,
    host: &str,
    port: u16,
    method: Method,
) -> Result<(), EgressDenied> {
    rules.check(&EgressRequest {
        scheme,
        host,
        port,
        method: &method,
    })
}

fn get(rules: &EgressRules, host: &str) -> Result<(), EgressDenied> {
    check(rules, Scheme::Https, host, 443, Method::GET)
}

#[test]
fn no_rules_denies_everything() {
    let none = EgressRules::default();
    assert!(none.is_empty());
    assert!(matches!(
        get(&none, "example.com"),
        Err(EgressDenied::NoRuleMatched { .. })
    ));
    let empty = rules("allow: []");
    assert!(matches!(
        get(&empty, "example.com"),
        Err(EgressDenied::NoRuleMatched { .. })
    ));
}

#[test]
fn exact_authority_matches_only_that_host() {
    let r = rules("allow: [{ authority: api.example.com }]");
    assert_eq!(get(&r, "api.example.com"), Ok(()));
    assert!(get(&r, "example.com").is_err());
    assert!(get(&r, "x.api.example.com").is_err());
    assert!(get(&r, "api.example.com.evil").is_err());
}

#[test]
fn host_match_is_case_insensitive_and_ignores_trailing_dot() {
    let r = rules("allow: [{ authority: API.example.com. }, { authority: \"*.Example.org\" }]");
    assert_eq!(get(&r, "api.EXAMPLE.com"), Ok(()));
    assert_eq!(get(&r, "api.example.com."), Ok(()));
    assert_eq!(get(&r, "A.B.example.ORG."), Ok(()));
}

#[test]
fn wildcard_matches_any_subdomain_depth_but_not_apex() {
    let r = rules("allow: [{ authority: \"*.example.com\" }]");
    assert_eq!(get(&r, "a.example.com"), Ok(()));
    assert_eq!(get(&r, "a.b.c.example.com"), Ok(()));
    assert!(get(&r, "example.com").is_err());
    assert!(get(&r, "badexample.com").is_err());
}

#[test]
fn star_matches_any_host_name_but_not_ip_literals() {
    let r = rules("allow: [{ authority: \"*\" }]");
    assert_eq!(get(&r, "anything.example"), Ok(()));
    assert_eq!(get(&r, "localhost"), Ok(()));
    assert!(matches!(
        get(&r, "10.0.0.1"),
        Err(EgressDenied::IpLiteral { .. })
    ));
}

#[test]
fn ports_restrict_the_rule() {
    let r = rules("allow: [{ authority: a.com, ports: [80, 443] }]");
    assert_eq!(check(&r, Scheme::Http, "a.com", 80, Method::GET), Ok(()));
    assert_eq!(check(&r, Scheme::Http, "a.com", 443, Method::GET), Ok(()));
    assert!(matches!(
        check(&r, Scheme::Http, "a.com", 8080, Method::GET),
        Err(EgressDenied::NoRuleMatched { port: 8080, .. })
    ));
}

#[test]
fn methods_restrict_the_rule() {
    let r = rules("allow: [{ authority: a.com, methods: [GET, POST] }]");
    assert_eq!(check(&r, Scheme::Https, "a.com", 443, Method::POST), Ok(()));
    assert!(check(&r, Scheme::Https, "a.com", 443, Method::DELETE).is_err());
}

#[test]
fn schemes_restrict_the_rule() {
    let r = rules("allow: [{ authority: a.com, schemes: [https] }]");
    assert_eq!(check(&r, Scheme::Https, "a.com", 80, Method::GET), Ok(()));
    assert!(check(&r, Scheme::Http, "a.com", 80, Method::GET).is_err());
}

#[test]
fn any_matching_rule_allows() {
    let r = rules(
        "allow:\n  - { authority: a.com, ports: [443] }\n  - { authority: \"*.com\", ports: [8080] }",
    );
    assert_eq!(check(&r, Scheme::Http, "a.com", 8080, Method::GET), Ok(()));
    assert_eq!(check(&r, Scheme::Http, "a.com", 443, Method::GET), Ok(()));
    assert!(check(&r, Scheme::Http, "a.com", 80, Method::GET).is_err());
}

#[test]
fn ip_literals_are_refused_without_an_explicit_rule() {
    let r = rules("allow: [{ authority: \"*\" }, { authority: a.com }]");
    for host in [
        "10.0.0.1",
        "127.0.0.1",
        "::1",
        "[::1]",
        "[2001:db8::1]",
        "127.1",
        "2130706433",
    ] {
        assert!(
            matches!(get(&r, host), Err(EgressDenied::IpLiteral { .. })),
            "{host}"
        );
    }
}

#[test]
fn ip_literal_is_allowed_by_exact_rule_with_allow_ip_literal() {
    let r = rules(
        "allow:\n  - { authority: 10.0.0.1, allow_ip_literal: true, ports: [8080] }\n  - { authority: \"::1\", allow_ip_literal: true }",
    );
    assert_eq!(
        check(&r, Scheme::Http, "10.0.0.1", 8080, Method::GET),
        Ok(())
    );
    assert!(matches!(
        check(&r, Scheme::Http, "10.0.0.1", 80, Method::GET),
        Err(EgressDenied::NoRuleMatched { .. })
    ));
    assert_eq!(get(&r, "[::1]"), Ok(()));
    assert_eq!(get(&r, "::1"), Ok(()));
    assert!(matches!(
        get(&r, "10.0.0.2"),
        Err(EgressDenied::IpLiteral { .. })
    ));
}

#[test]
fn ip_literal_rule_without_allow_ip_literal_is_a_config_error() {
    let errs = errors("allow: [{ authority: a.com }, { authority: 10.0.0.1 }]");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "egress.allow[1].authority");
    assert!(errs[0].1.contains("allow_ip_literal"), "{}", errs[0].1);
}

#[test]
fn metadata_addresses_are_refused_even_when_allowed() {
    let r = rules("allow: [{ authority: \"*\" }, { authority: \"*.internal\" }]");
    for host in [
        "169.254.169.254",
        "169.254.1.1",
        "[fd00:ec2::254]",
        "fd00:ec2::254",
        "[::ffff:169.254.169.254]",
        "metadata.google.internal",
        "METADATA.google.internal.",
        "metadata",
    ] {
        assert!(
            matches!(get(&r, host), Err(EgressDenied::MetadataAddress { .. })),
            "{host}"
        );
    }
}

#[test]
fn metadata_rule_is_a_config_error() {
    let errs = errors(
        "allow:\n  - { authority: 169.254.169.254, allow_ip_literal: true }\n  - { authority: metadata.google.internal }",
    );
    let paths: Vec<_> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        ["egress.allow[0].authority", "egress.allow[1].authority"]
    );
}

#[test]
fn invalid_request_host_is_refused() {
    let r = rules("allow: [{ authority: \"*\" }]");
    for host in ["", "a b", "exa%6dple.com", "[example.com]", "a..b"] {
        assert!(
            matches!(get(&r, host), Err(EgressDenied::InvalidHost { .. })),
            "{host:?}"
        );
    }
}

#[test]
fn every_bad_entry_is_reported_with_its_path() {
    let errs = errors(
        r#"
allow:
  - { authority: "api.example.com:443" }
  - { authority: "a.*.com", ports: [0, 70000, 443] }
  - { authority: ok.com, methods: [get, "BAD METHOD", PURGE], schemes: [ftp] }
  - { authority: "*.example.com", allow_ip_literal: true }
  - { authority: ok.com, ports: [] }
"#,
    );
    let paths: Vec<_> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "egress.allow[0].authority",
            "egress.allow[1].authority",
            "egress.allow[1].ports[0]",
            "egress.allow[1].ports[1]",
            "egress.allow[2].methods[0]",
            "egress.allow[2].methods[1]",
            "egress.allow[2].schemes[0]",
            "egress.allow[3].authority",
            "egress.allow[4].ports",
        ]
    );
    assert!(errs[0].1.contains("ports"), "{}", errs[0].1);
    assert!(errs[4].1.contains("\"GET\""), "{}", errs[4].1);
}

#[test]
fn custom_method_tokens_are_accepted() {
    let r = rules("allow: [{ authority: a.com, methods: [PURGE] }]");
    let purge = Method::from_bytes(b"PURGE").expect("token");
    assert_eq!(check(&r, Scheme::Http, "a.com", 80, purge), Ok(()));
}

#[test]
fn unknown_rule_keys_are_rejected() {
    assert!(
        serde_yaml::from_str::<EgressConfig>("allow: [{ authority: a.com, port: 80 }]").is_err()
    );
    assert!(serde_yaml::from_str::<EgressConfig>("deny: []").is_err());
}

#[test]
fn denial_message_names_the_request() {
    let r = EgressRules::default();
    let err = check(&r, Scheme::Https, "api.example.com", 443, Method::GET).expect_err("denied");
    assert_eq!(
        err.to_string(),
        "egress GET https://api.example.com:443 denied: no egress.allow rule matches; \
         add a rule for this authority to the workload's policy"
    );
}

#[test]
fn large_rule_sets_match_by_index() {
    let rules_vec: Vec<_> = (0..1000)
        .map(|i| EgressRule {
            authority: if i % 2 == 0 {
                HostPattern::Exact(format!("svc{i}.example.com"))
            } else {
                HostPattern::Subdomains(format!("zone{i}.example.net"))
            },
            ports: Some(vec![443]),
            methods: None,
            schemes: None,
        })
        .collect();
    let r = EgressRules::new(rules_vec);
    assert_eq!(get(&r, "svc998.example.com"), Ok(()));
    assert_eq!(get(&r, "a.zone999.example.net"), Ok(()));
    assert!(get(&r, "svc999.example.com").is_err());
}

#[test]
fn typed_rules_are_normalised_like_configured_ones() {
    let r = EgressRules::new(vec![EgressRule {
        authority: HostPattern::Exact("API.Example.com.".into()),
        ports: None,
        methods: None,
        schemes: None,
    }]);
    assert_eq!(get(&r, "api.example.com"), Ok(()));
    assert_eq!(
        r.rules()[0].authority,
        HostPattern::Exact("api.example.com".into())
    );
}
