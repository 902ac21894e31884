//! Raw egress configuration from YAML and its validation into [`EgressRules`].

use http::Method;
use serde::Deserialize;

use super::authority::Scheme;
use super::host::{Host, classify_host, is_metadata_address, is_metadata_host};
use super::{EgressRule, EgressRules, HostPattern};
use crate::PolicyConfigErrors;

/// The `egress` section of a workload policy, as written.
///
/// ```yaml
/// egress:
///   allow:
///     - authority: "*.example.com"
///       ports: [443]
///       methods: [GET, POST]
///       schemes: [https]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Allow rules; none means every outbound request is denied.
    pub allow: Vec<EgressRuleConfig>,
}

/// One allow rule, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRuleConfig {
    /// `api.example.com`, `*.example.com` (subdomains, not the apex), `*`
    /// (any host name), or an IP literal together with `allow_ip_literal`.
    pub authority: String,
    /// Allowed ports; omitted means any.
    #[serde(default)]
    pub ports: Option<Vec<i64>>,
    /// Allowed methods, for example `[GET, POST]`; omitted means any.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Allowed schemes, `http` and/or `https`; omitted means any.
    #[serde(default)]
    pub schemes: Option<Vec<String>>,
    /// Must be true for an IP-literal authority, and only then.
    #[serde(default)]
    pub allow_ip_literal: bool,
}

/// Validates every rule, recording each bad entry under `path`.
pub(crate) fn compile(
    config: &EgressConfig,
    path: &str,
    errors: &mut PolicyConfigErrors,
) -> EgressRules {
    let rules = config
        .allow
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| compile_rule(rule, &format!("{path}.allow[{i}]"), errors))
        .collect();
    EgressRules::new(rules)
}

fn compile_rule(
    rule: &EgressRuleConfig,
    path: &str,
    errors: &mut PolicyConfigErrors,
) -> Option<EgressRule> {
    let before = errors.len();
    let authority = compile_authority(rule, &format!("{path}.authority"), errors);
    let ports = compile_list(
        rule.ports.as_deref(),
        &format!("{path}.ports"),
        errors,
        |p| {
            u16::try_from(*p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p} is not a port (expected 1-65535)"))
        },
    );
    let methods = compile_list(
        rule.methods.as_deref(),
        &format!("{path}.methods"),
        errors,
        |m| parse_method(m),
    );
    let schemes = compile_list(
        rule.schemes.as_deref(),
        &format!("{path}.schemes"),
        errors,
        |s| {
            Scheme::parse(s).ok_or_else(|| format!("unknown scheme {s:?} (expected http or https)"))
        },
    );
    if errors.len() != before {
        return None;
    }
    Some(EgressRule {
        authority: authority?,
        ports,
        methods,
        schemes,
    })
}

fn compile_authority(
    rule: &EgressRuleConfig,
    path: &str,
    errors: &mut PolicyConfigErrors,
) -> Option<HostPattern> {
    let authority = rule.authority.as_str();
    let pattern = if authority == "*" {
        HostPattern::Any
    } else if let Some(parent) = authority.strip_prefix("*.") {
        match classify_host(parent) {
            Host::Name(name) if !name.contains('*') => HostPattern::Subdomains(name),
            _ => {
                errors.push(path, format!(
                    "{authority:?} is not a valid wildcard; write `*.` followed by a domain name, for example `*.example.com`"
                ));
                return None;
            }
        }
    } else if authority.contains('*') {
        errors.push(path, format!(
            "{authority:?}: only a leading `*.` wildcard (`*.example.com`) or `*` alone is supported"
        ));
        return None;
    } else {
        match classify_host(authority) {
            Host::Name(name) => {
                if is_metadata_host(&name) {
                    errors.push(path, format!(
                        "{authority:?} is a cloud metadata service; it is always refused and cannot be allowed"
                    ));
                    return None;
                }
                HostPattern::Exact(name)
            }
            Host::Ip(ip) => {
                if is_metadata_address(ip) {
                    errors.push(path, format!(
                        "{authority:?} is a link-local or cloud metadata address; it is always refused and cannot be allowed"
                    ));
                    return None;
                }
                if !rule.allow_ip_literal {
                    errors.push(path, format!(
                        "{authority:?} is an IP literal; set allow_ip_literal: true on this rule to allow it, or use a host name"
                    ));
                    return None;
                }
                return Some(HostPattern::Ip(ip));
            }
            Host::NumericLookalike => {
                errors.push(path, format!(
                    "{authority:?} looks like a numeric IP address; write IPv4 in dotted-quad form with allow_ip_literal: true"
                ));
                return None;
            }
            Host::Invalid if authority.contains(':') => {
                errors.push(path, format!(
                    "{authority:?} is not a host name; the authority takes no port (list ports under `ports`)"
                ));
                return None;
            }
            Host::Invalid => {
                errors.push(path, format!("{authority:?} is not a valid host name"));
                return None;
            }
        }
    };
    if rule.allow_ip_literal {
        errors.push(
            path,
            format!(
                "allow_ip_literal: true needs an exact IP address as authority, not {authority:?}"
            ),
        );
        return None;
    }
    Some(pattern)
}

/// Parses a method token, refusing lower-case spellings of standard methods
/// (HTTP methods are case-sensitive: `get` would never match a `GET`).
fn parse_method(method: &str) -> Result<Method, String> {
    let parsed = Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not a valid HTTP method"))?;
    let upper = method.to_ascii_uppercase();
    if upper != method
        && let Ok(standard) = Method::from_bytes(upper.as_bytes())
        && is_standard(&standard)
    {
        return Err(format!(
            "methods are case-sensitive: {method:?} would never match; write {upper:?}"
        ));
    }
    Ok(parsed)
}

fn is_standard(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .contains(method)
}

/// Validates an optional list item by item. `None` stays `None` (any); an
/// empty list is an error since it would allow nothing.
fn compile_list<T, U>(
    items: Option<&[T]>,
    path: &str,
    errors: &mut PolicyConfigErrors,
    parse: impl Fn(&T) -> Result<U, String>,
) -> Option<Vec<U>> {
    let items = items?;
    if items.is_empty() {
        errors.push(
            path,
            "an empty list matches nothing; omit the key to allow any",
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(value) => out.push(value),
            Err(message) => errors.push(format!("{path}[{i}]"), message),
        }
    }
    Some(out)
}
