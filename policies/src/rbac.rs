//! Inbound authorization in a workload's policy, with Envoy RBAC's field names and meaning. It
//! compiles into the same rules ([`RbacRules`]) the host's RBAC filter evaluates for a
//! connection manager's `envoy.filters.http.rbac`, so a policy written here and one delivered
//! over xDS decide alike. A policy matches when any of its permissions and any of its
//! principals match; ALLOW admits only matching requests, DENY refuses them.

mod compile;
mod config;
mod string_match;

use serde::Deserialize;

pub use config::{
    AuthenticatedConfig, HeaderMatchConfig, IdsConfig, PermissionConfig, PoliciesConfig,
    PolicyConfig, PrincipalConfig, RbacConfig, RulesConfig,
};
pub use mesh_xds::config::RbacRules;
pub use string_match::{SafeRegexConfig, StringMatchConfig};

/// What happens to a request that matches a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Allow matching requests, deny all others.
    Allow,
    /// Deny matching requests, allow all others.
    Deny,
}

impl RbacConfig {
    /// Validates the configuration into rules, reporting every bad entry under `rbac`.
    pub fn to_rules(&self) -> Result<RbacRules, crate::PolicyConfigErrors> {
        let mut errors = crate::PolicyConfigErrors::default();
        let rules = self.compile("rbac", &mut errors);
        errors.into_result(rules)
    }
}

#[cfg(test)]
mod tests;
