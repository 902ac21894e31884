//! Raw RBAC configuration as written in YAML, with Envoy's field names.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Action, StringMatchConfig};

/// The `rbac` section of a workload policy, as written.
///
/// ```yaml
/// rbac:
///   action: ALLOW
///   policies:
///     admins:
///       permissions: [{ url_path: { prefix: "/admin" } }]
///       principals: [{ authenticated: { principal_name: { exact: "spiffe://cluster.local/ns/default/sa/admin" } } }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    /// `ALLOW` or `DENY`.
    pub action: Action,
    /// Named policies. With ALLOW and none, every request is denied; with
    /// DENY and none, every request is allowed (as in Envoy).
    #[serde(default)]
    pub policies: PoliciesConfig,
}

/// Named policies in the order written (a YAML mapping from name to policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoliciesConfig(pub Vec<(String, PolicyConfig)>);

impl<'de> Deserialize<'de> for PoliciesConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = PoliciesConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from policy name to policy")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut policies = Vec::new();
                while let Some(entry) = map.next_entry::<String, PolicyConfig>()? {
                    policies.push(entry);
                }
                Ok(PoliciesConfig(policies))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

/// One policy, as written: at least one permission and one principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Any of these must match the request.
    pub permissions: Vec<PermissionConfig>,
    /// Any of these must match the sender.
    pub principals: Vec<PrincipalConfig>,
}

/// A permission, as written: a mapping with exactly one of these keys
/// (Envoy's `Permission` oneof).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionConfig {
    /// `any: true`.
    pub any: Option<bool>,
    /// `header: { name, string_match }`.
    pub header: Option<HeaderMatchConfig>,
    /// `url_path: { prefix: "/admin" }`: the path without query string.
    pub url_path: Option<StringMatchConfig>,
    /// `method: GET`.
    pub method: Option<String>,
    /// `destination_port: 8080`.
    pub destination_port: Option<i64>,
    /// `and_rules: { rules: [...] }`.
    pub and_rules: Option<RulesConfig>,
    /// `or_rules: { rules: [...] }`.
    pub or_rules: Option<RulesConfig>,
    /// `not_rule: { ... }`.
    pub not_rule: Option<Box<PermissionConfig>>,
}

/// A list of permissions, as in Envoy's `Permission.Set`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The permissions.
    pub rules: Vec<PermissionConfig>,
}

/// A principal, as written: a mapping with exactly one of these keys
/// (Envoy's `Principal` oneof).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalConfig {
    /// `any: true`.
    pub any: Option<bool>,
    /// `authenticated: { principal_name: { exact: "spiffe://..." } }`.
    pub authenticated: Option<AuthenticatedConfig>,
    /// `source_ip: "10.0.0.0/8"` (a CIDR or a single address).
    pub source_ip: Option<String>,
    /// `direct_remote_ip: "10.0.0.0/8"`.
    pub direct_remote_ip: Option<String>,
    /// `header: { name, string_match }`.
    pub header: Option<HeaderMatchConfig>,
    /// `and_ids: { ids: [...] }`.
    pub and_ids: Option<IdsConfig>,
    /// `or_ids: { ids: [...] }`.
    pub or_ids: Option<IdsConfig>,
    /// `not_id: { ... }`.
    pub not_id: Option<Box<PrincipalConfig>>,
}

/// A list of principals, as in Envoy's `Principal.Set`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsConfig {
    /// The principals.
    pub ids: Vec<PrincipalConfig>,
}

/// `authenticated`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticatedConfig {
    /// Matcher for the peer principal; omitted means any authenticated peer.
    pub principal_name: Option<StringMatchConfig>,
}

/// A header matcher, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// A header name, or `:method`, `:path`, `:authority`.
    pub name: String,
    /// The matcher for its value.
    pub string_match: StringMatchConfig,
}
