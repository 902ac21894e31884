//! Validation of RBAC configuration into the rules the RBAC filter evaluates, recording every
//! bad entry with its path.

use std::collections::BTreeMap;

use http::{HeaderName, Method};
use ipnet::IpNet;
use mesh_xds::config::{
    Cidr, HeaderMatch, HeaderMatcher, Permission, Principal, RbacAction, RbacPolicy, RbacRules,
    StringMatcher,
};

use super::Action;
use super::config::{
    HeaderMatchConfig, PermissionConfig, PolicyConfig, PrincipalConfig, RbacConfig,
};
use crate::PolicyConfigErrors;

impl RbacConfig {
    pub(crate) fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> RbacRules {
        let mut policies = BTreeMap::new();
        for (i, (name, policy)) in self.policies.0.iter().enumerate() {
            let at = format!("{path}.policies.{name}");
            if self.policies.0[..i].iter().any(|(other, _)| other == name) {
                errors.push(
                    &at,
                    format!("policy {name:?} is defined twice; give each policy its own name"),
                );
                continue;
            }
            if let Some(policy) = policy.compile(&at, errors) {
                policies.insert(name.clone(), policy);
            }
        }
        RbacRules {
            action: match self.action {
                Action::Allow => RbacAction::Allow,
                Action::Deny => RbacAction::Deny,
            },
            policies,
        }
    }
}

impl PolicyConfig {
    fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> Option<RbacPolicy> {
        let before = errors.len();
        if self.permissions.is_empty() {
            errors.push(
                format!("{path}.permissions"),
                "needs at least one permission (use `any: true` for every request)",
            );
        }
        if self.principals.is_empty() {
            errors.push(
                format!("{path}.principals"),
                "needs at least one principal (use `any: true` for every peer)",
            );
        }
        let permissions = compile_all(
            &self.permissions,
            &format!("{path}.permissions"),
            errors,
            PermissionConfig::compile,
        );
        let principals = compile_all(
            &self.principals,
            &format!("{path}.principals"),
            errors,
            PrincipalConfig::compile,
        );
        (errors.len() == before).then_some(RbacPolicy {
            permissions,
            principals,
        })
    }
}

fn compile_all<C, T>(
    items: &[C],
    path: &str,
    errors: &mut PolicyConfigErrors,
    compile: fn(&C, &str, &mut PolicyConfigErrors) -> Option<T>,
) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| compile(item, &format!("{path}[{i}]"), errors))
        .collect()
}

fn compile_set<C, T>(
    items: &[C],
    path: &str,
    errors: &mut PolicyConfigErrors,
    compile: fn(&C, &str, &mut PolicyConfigErrors) -> Option<T>,
) -> Option<Vec<T>> {
    if items.is_empty() {
        errors.push(path, "needs at least one entry");
        return None;
    }
    let before = errors.len();
    let out = compile_all(items, path, errors, compile);
    (errors.len() == before).then_some(out)
}

fn any_true(any: bool, path: &str, errors: &mut PolicyConfigErrors) -> bool {
    if !any {
        errors.push(
            format!("{path}.any"),
            "`any` must be true (remove the entry to match nothing)",
        );
    }
    any
}

/// Reports an entry that sets no key or several keys of a oneof.
fn exactly_one(
    set: usize,
    path: &str,
    what: &str,
    keys: &str,
    errors: &mut PolicyConfigErrors,
) -> bool {
    if set != 1 {
        errors.push(
            path,
            format!("{what} needs exactly one of {keys} ({set} given)"),
        );
    }
    set == 1
}

impl PermissionConfig {
    fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> Option<Permission> {
        let set = [
            self.any.is_some(),
            self.header.is_some(),
            self.url_path.is_some(),
            self.method.is_some(),
            self.destination_port.is_some(),
            self.and_rules.is_some(),
            self.or_rules.is_some(),
            self.not_rule.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        const KEYS: &str =
            "any, header, url_path, method, destination_port, and_rules, or_rules, not_rule";
        if !exactly_one(set, path, "a permission", KEYS, errors) {
            return None;
        }
        if let Some(any) = self.any {
            return any_true(any, path, errors).then_some(Permission::Any);
        }
        if let Some(h) = &self.header {
            return h
                .compile(&format!("{path}.header"), errors)
                .map(Permission::Header);
        }
        if let Some(m) = &self.url_path {
            return m
                .compile(&format!("{path}.url_path"), errors)
                .map(Permission::UrlPath);
        }
        if let Some(m) = &self.method {
            // Envoy has no method permission; Istio writes it as a `:method` header matcher.
            return match Method::from_bytes(m.as_bytes()) {
                Ok(method) => Some(Permission::Header(header_matcher(
                    ":method",
                    StringMatcher::exact(method.as_str()),
                ))),
                Err(_) => {
                    errors.push(
                        format!("{path}.method"),
                        format!("{m:?} is not a valid HTTP method"),
                    );
                    None
                }
            };
        }
        if let Some(p) = self.destination_port {
            return match u16::try_from(p) {
                Ok(port) if port != 0 => Some(Permission::DestinationPort(port)),
                _ => {
                    errors.push(
                        format!("{path}.destination_port"),
                        format!("{p} is not a port (expected 1-65535)"),
                    );
                    None
                }
            };
        }
        if let Some(r) = &self.and_rules {
            return compile_set(
                &r.rules,
                &format!("{path}.and_rules.rules"),
                errors,
                Self::compile,
            )
            .map(Permission::And);
        }
        if let Some(r) = &self.or_rules {
            return compile_set(
                &r.rules,
                &format!("{path}.or_rules.rules"),
                errors,
                Self::compile,
            )
            .map(Permission::Or);
        }
        let p = self.not_rule.as_deref()?;
        p.compile(&format!("{path}.not_rule"), errors)
            .map(|p| Permission::Not(Box::new(p)))
    }
}

impl PrincipalConfig {
    fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> Option<Principal> {
        let set = [
            self.any.is_some(),
            self.authenticated.is_some(),
            self.source_ip.is_some(),
            self.direct_remote_ip.is_some(),
            self.header.is_some(),
            self.and_ids.is_some(),
            self.or_ids.is_some(),
            self.not_id.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        const KEYS: &str =
            "any, authenticated, source_ip, direct_remote_ip, header, and_ids, or_ids, not_id";
        if !exactly_one(set, path, "a principal", KEYS, errors) {
            return None;
        }
        if let Some(any) = self.any {
            return any_true(any, path, errors).then_some(Principal::Any);
        }
        if let Some(a) = &self.authenticated {
            let principal_name = match &a.principal_name {
                None => None,
                Some(m) => {
                    Some(m.compile(&format!("{path}.authenticated.principal_name"), errors)?)
                }
            };
            return Some(Principal::Authenticated(principal_name));
        }
        // Envoy's `source_ip` is the deprecated name of `direct_remote_ip`.
        if let Some(cidr) = &self.source_ip {
            return parse_cidr(cidr, &format!("{path}.source_ip"), errors)
                .map(Principal::DirectRemoteIp);
        }
        if let Some(cidr) = &self.direct_remote_ip {
            return parse_cidr(cidr, &format!("{path}.direct_remote_ip"), errors)
                .map(Principal::DirectRemoteIp);
        }
        if let Some(h) = &self.header {
            return h
                .compile(&format!("{path}.header"), errors)
                .map(Principal::Header);
        }
        if let Some(s) = &self.and_ids {
            return compile_set(
                &s.ids,
                &format!("{path}.and_ids.ids"),
                errors,
                Self::compile,
            )
            .map(Principal::And);
        }
        if let Some(s) = &self.or_ids {
            return compile_set(&s.ids, &format!("{path}.or_ids.ids"), errors, Self::compile)
                .map(Principal::Or);
        }
        let p = self.not_id.as_deref()?;
        p.compile(&format!("{path}.not_id"), errors)
            .map(|p| Principal::Not(Box::new(p)))
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a single address.
fn parse_cidr(cidr: &str, path: &str, errors: &mut PolicyConfigErrors) -> Option<Cidr> {
    let parsed = cidr
        .parse::<IpNet>()
        .ok()
        .or_else(|| cidr.parse::<std::net::IpAddr>().ok().map(IpNet::from));
    if parsed.is_none() {
        errors.push(
            path,
            format!("{cidr:?} is not a CIDR range (for example 10.0.0.0/8) or an IP address"),
        );
    }
    parsed.map(|net| Cidr {
        address: net.network(),
        prefix_len: net.prefix_len(),
    })
}

fn header_matcher(name: &str, matcher: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        matcher: HeaderMatch::String(matcher),
        invert_match: false,
        treat_missing_header_as_empty: false,
    }
}

impl HeaderMatchConfig {
    fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> Option<HeaderMatcher> {
        let pseudo = matches!(
            self.name.as_str(),
            ":method" | ":path" | ":authority" | ":scheme"
        );
        let name = if pseudo {
            Some(self.name.clone())
        } else {
            match HeaderName::from_bytes(self.name.as_bytes()) {
                Ok(name) => Some(name.as_str().to_owned()),
                Err(_) => {
                    errors.push(
                        format!("{path}.name"),
                        format!(
                            "{:?} is not a valid header name (pseudo-headers supported: :method, :path, :authority, :scheme)",
                            self.name
                        ),
                    );
                    None
                }
            }
        };
        let matcher = self
            .string_match
            .compile(&format!("{path}.string_match"), errors);
        Some(header_matcher(&name?, matcher?))
    }
}
