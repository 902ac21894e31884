//! The RBAC HTTP filter -> [`RbacFilter`].

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter_;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;

use super::error::{FieldError, FieldResult};
use super::matcher::{header_matcher, string_matcher};
use super::path::FieldPath;
use super::reflect::{reject_unsupported, unsupported_variant};
use crate::config::{
    Cidr, Permission, Principal, RbacAction, RbacFilter, RbacPolicy, RbacRules, StringMatcher,
};

/// Translates the filter's typed config (at `path`): the enforced rules and the shadow rules,
/// which are evaluated with the same matchers so a shadow policy the host cannot evaluate is
/// refused as well.
pub(crate) fn rbac_filter(
    mut filter: RbacFilter_,
    path: &FieldPath<'_>,
) -> FieldResult<RbacFilter> {
    let enforced = filter
        .rules
        .take()
        .map(|r| rules(r, &path.field("rules")).map(Arc::new))
        .transpose()?;
    let shadow_rules = filter
        .shadow_rules
        .take()
        .map(|r| rules(r, &path.field("shadow_rules")).map(Arc::new))
        .transpose()?;
    // Statistics only.
    filter.shadow_rules_stat_prefix.clear();
    filter.rules_stat_prefix.clear();
    filter.track_per_rule_stats = false;
    reject_unsupported(&filter, path)?;
    Ok(RbacFilter {
        rules: enforced,
        shadow_rules,
    })
}

fn rules(mut r: rbac::Rbac, path: &FieldPath<'_>) -> FieldResult<RbacRules> {
    let action = match rbac::rbac::Action::try_from(std::mem::take(&mut r.action)) {
        Ok(rbac::rbac::Action::Allow) => RbacAction::Allow,
        Ok(rbac::rbac::Action::Deny) => RbacAction::Deny,
        Ok(rbac::rbac::Action::Log) => RbacAction::Log,
        Err(_) => return Err(FieldError::invalid(&path.field("action"), "unknown value")),
    };
    let policies_path = path.field("policies");
    let mut policies = std::collections::BTreeMap::new();
    for (name, mut p) in std::mem::take(&mut r.policies) {
        let at = policies_path.key(&name);
        let permissions_path = at.field("permissions");
        let permissions = std::mem::take(&mut p.permissions)
            .into_iter()
            .enumerate()
            .map(|(i, perm)| permission(perm, &permissions_path.index(i)))
            .collect::<FieldResult<Vec<_>>>()?;
        let principals_path = at.field("principals");
        let principals = std::mem::take(&mut p.principals)
            .into_iter()
            .enumerate()
            .map(|(i, pr)| principal(pr, &principals_path.index(i)))
            .collect::<FieldResult<Vec<_>>>()?;
        reject_unsupported(&p, &at)?;
        policies.insert(
            name,
            RbacPolicy {
                permissions,
                principals,
            },
        );
    }
    reject_unsupported(&r, path)?;
    Ok(RbacRules { action, policies })
}

fn permission(p: rbac::Permission, path: &FieldPath<'_>) -> FieldResult<Permission> {
    use rbac::permission::Rule;
    let list = |set: rbac::permission::Set, field: &str| -> FieldResult<Vec<Permission>> {
        let at = path.field(field);
        let rules = at.field("rules");
        set.rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| permission(r, &rules.index(i)))
            .collect()
    };
    Ok(match p.rule {
        Some(Rule::Any(true)) => Permission::Any,
        Some(Rule::AndRules(set)) => Permission::And(list(set, "and_rules")?),
        Some(Rule::OrRules(set)) => Permission::Or(list(set, "or_rules")?),
        Some(Rule::Header(h)) => Permission::Header(header_matcher(h, &path.field("header"))?),
        Some(Rule::UrlPath(m)) => Permission::UrlPath(path_matcher(m, &path.field("url_path"))?),
        Some(Rule::DestinationIp(c)) => {
            Permission::DestinationIp(cidr(c, &path.field("destination_ip"))?)
        }
        Some(Rule::DestinationPort(port)) => {
            Permission::DestinationPort(u16::try_from(port).map_err(|_| {
                FieldError::invalid(
                    &path.field("destination_port"),
                    format!("{port} is not a port"),
                )
            })?)
        }
        Some(Rule::NotRule(inner)) => {
            Permission::Not(Box::new(permission(*inner, &path.field("not_rule"))?))
        }
        Some(Rule::RequestedServerName(m)) => Permission::RequestedServerName(string_matcher(
            m,
            &path.field("requested_server_name"),
        )?),
        Some(Rule::Any(false)) | None => return Err(FieldError::missing(&path.field("rule"))),
        Some(other) => {
            return Err(unsupported_variant(
                &rbac::Permission { rule: Some(other) },
                path,
            ));
        }
    })
}

fn principal(p: rbac::Principal, path: &FieldPath<'_>) -> FieldResult<Principal> {
    use rbac::principal::Identifier;
    let list = |set: rbac::principal::Set, field: &str| -> FieldResult<Vec<Principal>> {
        let at = path.field(field);
        let ids = at.field("ids");
        set.ids
            .into_iter()
            .enumerate()
            .map(|(i, r)| principal(r, &ids.index(i)))
            .collect()
    };
    Ok(match p.identifier {
        Some(Identifier::Any(true)) => Principal::Any,
        Some(Identifier::AndIds(set)) => Principal::And(list(set, "and_ids")?),
        Some(Identifier::OrIds(set)) => Principal::Or(list(set, "or_ids")?),
        Some(Identifier::Authenticated(a)) => Principal::Authenticated(
            a.principal_name
                .map(|m| string_matcher(m, &path.field("authenticated").field("principal_name")))
                .transpose()?,
        ),
        // `source_ip` is the deprecated name of `direct_remote_ip`.
        Some(Identifier::SourceIp(c)) => {
            Principal::DirectRemoteIp(cidr(c, &path.field("source_ip"))?)
        }
        Some(Identifier::DirectRemoteIp(c)) => {
            Principal::DirectRemoteIp(cidr(c, &path.field("direct_remote_ip"))?)
        }
        Some(Identifier::RemoteIp(c)) => Principal::RemoteIp(cidr(c, &path.field("remote_ip"))?),
        Some(Identifier::Header(h)) => Principal::Header(header_matcher(h, &path.field("header"))?),
        Some(Identifier::UrlPath(m)) => {
            Principal::UrlPath(path_matcher(m, &path.field("url_path"))?)
        }
        Some(Identifier::NotId(inner)) => {
            Principal::Not(Box::new(principal(*inner, &path.field("not_id"))?))
        }
        Some(Identifier::Any(false)) | None => {
            return Err(FieldError::missing(&path.field("identifier")));
        }
        Some(other) => {
            return Err(unsupported_variant(
                &rbac::Principal {
                    identifier: Some(other),
                },
                path,
            ));
        }
    })
}

fn path_matcher(m: matcher::PathMatcher, path: &FieldPath<'_>) -> FieldResult<StringMatcher> {
    match m.rule {
        Some(matcher::path_matcher::Rule::Path(s)) => string_matcher(s, &path.field("path")),
        None => Err(FieldError::missing(&path.field("path"))),
    }
}

fn cidr(c: core::CidrRange, path: &FieldPath<'_>) -> FieldResult<Cidr> {
    let address: IpAddr = c.address_prefix.parse().map_err(|_| {
        FieldError::invalid(
            &path.field("address_prefix"),
            format!("\"{}\" is not an IP address", c.address_prefix),
        )
    })?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = c.prefix_len.map_or(max, |p| p.value);
    let prefix_len = u8::try_from(prefix_len)
        .ok()
        .filter(|p| u32::from(*p) <= max)
        .ok_or_else(|| {
            FieldError::invalid(
                &path.field("prefix_len"),
                format!("{prefix_len} is longer than the address"),
            )
        })?;
    Ok(Cidr {
        address,
        prefix_len,
    })
}
