//! Inbound authorization modelled on Envoy's RBAC HTTP filter (a subset).
//!
//! A [`Policy`] matches when any of its permissions and any of its principals
//! match. With action ALLOW a request is allowed only when some policy
//! matches; with DENY it is denied when some policy matches. A workload
//! without RBAC allows every request.

mod compile;
mod config;
mod string_match;

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, Method};
use ipnet::IpNet;
use serde::Deserialize;

pub use config::{
    AuthenticatedConfig, HeaderMatchConfig, IdsConfig, PermissionConfig, PoliciesConfig,
    PolicyConfig, PrincipalConfig, RbacConfig, RulesConfig,
};
pub use string_match::{MatchKind, SafeRegexConfig, StringMatch, StringMatchConfig};

/// What happens to a request that matches a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Allow matching requests, deny all others.
    Allow,
    /// Deny matching requests, allow all others.
    Deny,
}

/// A workload's inbound authorization: an action and named policies, kept
/// in configuration order (the first matching policy is reported).
#[derive(Debug, Clone)]
pub struct Rbac {
    /// What a match means.
    pub action: Action,
    /// The named policies.
    pub policies: Vec<(String, Policy)>,
}

/// A policy: matches when ANY permission and ANY principal match.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What the request does.
    pub permissions: Vec<Permission>,
    /// Who sends it.
    pub principals: Vec<Principal>,
}

/// A condition on the request itself.
#[derive(Debug, Clone)]
pub enum Permission {
    /// Every request.
    Any,
    /// A header (or `:method`, `:path`, `:authority`) matches.
    Header(HeaderMatch),
    /// The path without its query string matches.
    UrlPath(StringMatch),
    /// The method equals this one.
    Method(Method),
    /// The request arrived on this local port.
    DestinationPort(u16),
    /// All of these match.
    And(Vec<Permission>),
    /// Any of these matches.
    Or(Vec<Permission>),
    /// This one does not match.
    Not(Box<Permission>),
}

/// A condition on who sends the request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Every peer.
    Any,
    /// The peer presented a certificate; with a matcher, its principal name
    /// (for example a SPIFFE id) must match, without one any will do.
    Authenticated {
        /// Matcher for the peer principal; `None` accepts any.
        principal_name: Option<StringMatch>,
    },
    /// The client address after trusted-proxy processing (Envoy's `remote_ip`).
    SourceIp(IpNet),
    /// The address of the directly connected peer.
    DirectRemoteIp(IpNet),
    /// A header matches.
    Header(HeaderMatch),
    /// All of these match.
    And(Vec<Principal>),
    /// Any of these matches.
    Or(Vec<Principal>),
    /// This one does not match.
    Not(Box<Principal>),
}

/// Which header a [`HeaderMatch`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKey {
    /// `:method`, the request method.
    Method,
    /// `:path`, the path with its query string.
    Path,
    /// `:authority`, the request authority (or `host`).
    Authority,
    /// An ordinary header.
    Named(HeaderName),
}

/// A header and a matcher for its value. A missing header never matches;
/// several values are joined with `,` before matching, as in Envoy.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// The header to read.
    pub name: HeaderKey,
    /// The matcher for its value.
    pub matcher: StringMatch,
}

/// What RBAC sees of an inbound request.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, with its query string if any.
    pub path: &'a str,
    /// The authority (`:authority`, or `host` for HTTP/1.1), if any.
    pub authority: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The client address after trusted-proxy processing.
    pub source_ip: IpAddr,
    /// The directly connected peer's address.
    pub direct_remote_ip: IpAddr,
    /// The local port the request arrived on.
    pub destination_port: u16,
    /// The peer's authenticated principal (for example its SPIFFE id).
    pub peer_principal: Option<&'a str>,
}

/// The outcome of RBAC for one request, borrowing the matched policy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacDecision<'a> {
    /// The request may proceed; `policy` is the ALLOW policy that matched.
    Allowed {
        /// The matching policy, if the action is ALLOW.
        policy: Option<&'a str>,
    },
    /// The request is refused; `policy` is the DENY policy that matched.
    Denied {
        /// The matching policy, if the action is DENY.
        policy: Option<&'a str>,
    },
}

/// A request refused by RBAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacDenied {
    /// Action ALLOW and no policy matched.
    #[error("request denied by RBAC: no ALLOW policy matches")]
    NoAllowPolicyMatched,
    /// Action DENY and this policy matched.
    #[error("request denied by RBAC policy {0:?}")]
    DenyPolicyMatched(String),
}

impl Rbac {
    /// Validates raw configuration, reporting every bad entry under `rbac`.
    pub fn from_config(config: &RbacConfig) -> Result<Rbac, crate::PolicyConfigErrors> {
        let mut errors = crate::PolicyConfigErrors::default();
        let rbac = config.compile("rbac", &mut errors);
        errors.into_result(rbac)
    }

    /// Evaluates the request with Envoy's semantics, naming the first
    /// matching policy.
    pub fn evaluate(&self, req: &InboundRequest<'_>) -> RbacDecision<'_> {
        let matched = self
            .policies
            .iter()
            .find(|(_, policy)| policy.matches(req))
            .map(|(name, _)| name.as_str());
        match (self.action, matched) {
            (Action::Allow, Some(name)) => RbacDecision::Allowed { policy: Some(name) },
            (Action::Allow, None) => RbacDecision::Denied { policy: None },
            (Action::Deny, Some(name)) => RbacDecision::Denied { policy: Some(name) },
            (Action::Deny, None) => RbacDecision::Allowed { policy: None },
        }
    }

    /// Like [`Rbac::evaluate`], as a `Result`: `Ok` carries the matching
    /// ALLOW policy name, if any.
    pub fn check(&self, req: &InboundRequest<'_>) -> Result<Option<&str>, RbacDenied> {
        match self.evaluate(req) {
            RbacDecision::Allowed { policy } => Ok(policy),
            RbacDecision::Denied { policy: Some(name) } => {
                Err(RbacDenied::DenyPolicyMatched(name.to_owned()))
            }
            RbacDecision::Denied { policy: None } => Err(RbacDenied::NoAllowPolicyMatched),
        }
    }
}

impl Policy {
    /// True when any permission and any principal match.
    pub fn matches(&self, req: &InboundRequest<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(req))
            && self.principals.iter().any(|p| p.matches(req))
    }
}

impl Permission {
    /// True when the request satisfies this permission.
    pub fn matches(&self, req: &InboundRequest<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::Header(h) => h.matches(req),
            Permission::UrlPath(m) => m.matches(path_without_query(req.path)),
            Permission::Method(m) => req.method == m,
            Permission::DestinationPort(p) => req.destination_port == *p,
            Permission::And(all) => all.iter().all(|p| p.matches(req)),
            Permission::Or(any) => any.iter().any(|p| p.matches(req)),
            Permission::Not(p) => !p.matches(req),
        }
    }
}

impl Principal {
    /// True when the request's sender satisfies this principal.
    pub fn matches(&self, req: &InboundRequest<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::Authenticated { principal_name } => {
                match (req.peer_principal, principal_name) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(peer), Some(m)) => m.matches(peer),
                }
            }
            Principal::SourceIp(net) => net.contains(&req.source_ip.to_canonical()),
            Principal::DirectRemoteIp(net) => net.contains(&req.direct_remote_ip.to_canonical()),
            Principal::Header(h) => h.matches(req),
            Principal::And(all) => all.iter().all(|p| p.matches(req)),
            Principal::Or(any) => any.iter().any(|p| p.matches(req)),
            Principal::Not(p) => !p.matches(req),
        }
    }
}

impl HeaderMatch {
    /// True when the header is present and its value matches.
    pub fn matches(&self, req: &InboundRequest<'_>) -> bool {
        match &self.name {
            HeaderKey::Method => self.matcher.matches(req.method.as_str()),
            HeaderKey::Path => self.matcher.matches(req.path),
            HeaderKey::Authority => match req.authority {
                Some(authority) => self.matcher.matches(authority),
                None => self.named(req.headers, &http::header::HOST),
            },
            HeaderKey::Named(name) => self.named(req.headers, name),
        }
    }

    fn named(&self, headers: &HeaderMap, name: &HeaderName) -> bool {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        let Some(rest) = values.next() else {
            return std::str::from_utf8(first.as_bytes()).is_ok_and(|v| self.matcher.matches(v));
        };
        let mut joined = Vec::with_capacity(first.len() + rest.len() + 1);
        joined.extend_from_slice(first.as_bytes());
        for value in std::iter::once(rest).chain(values) {
            joined.push(b',');
            joined.extend_from_slice(value.as_bytes());
        }
        std::str::from_utf8(&joined).is_ok_and(|v| self.matcher.matches(v))
    }
}

/// The path up to its query string or fragment.
fn path_without_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests;
