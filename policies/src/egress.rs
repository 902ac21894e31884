//! Per-workload egress allow rules, checked before mesh routing.
//!
//! Deny-all: an outbound request leaves only when some rule allows its host,
//! port, method and scheme. IP literals are refused unless a rule names that
//! exact address with `allow_ip_literal: true`; link-local and cloud metadata
//! addresses and host names are refused always, whatever the rules say.

mod authority;
mod config;
mod host;

use std::collections::HashMap;
use std::net::IpAddr;

use http::Method;

pub use authority::{AuthorityError, Scheme, UnsupportedScheme, parse_authority};
pub(crate) use config::compile as compile_config;
pub use config::{EgressConfig, EgressRuleConfig};
pub use host::is_metadata_address;
use host::{Host, classify_host, is_metadata_host};

/// An outbound request as egress rules see it.
#[derive(Debug, Clone, Copy)]
pub struct EgressRequest<'a> {
    /// The request's scheme.
    pub scheme: Scheme,
    /// The host as the component wrote it: a name (any case, optional
    /// trailing dot) or an IP literal (IPv6 with or without brackets).
    pub host: &'a str,
    /// The destination port (see [`parse_authority`] for defaults).
    pub port: u16,
    /// The request method.
    pub method: &'a Method,
}

/// Which hosts a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Exact(String),
    /// Any subdomain, at any depth, of this name, but not the name itself:
    /// written `*.example.com`, stored as `example.com`.
    Subdomains(String),
    /// Any host name, written `*`. Never matches an IP literal.
    Any,
    /// Exactly this IP literal; only produced from a rule that sets
    /// `allow_ip_literal: true`.
    Ip(IpAddr),
}

/// One allow rule. `None` for ports, methods or schemes means "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    /// The hosts the rule covers.
    pub authority: HostPattern,
    /// Allowed destination ports.
    pub ports: Option<Vec<u16>>,
    /// Allowed methods (compared case-sensitively, as HTTP does).
    pub methods: Option<Vec<Method>>,
    /// Allowed schemes.
    pub schemes: Option<Vec<Scheme>>,
}

impl EgressRule {
    /// True when the rule's port, method and scheme lists allow the request
    /// (the host has already been matched).
    fn allows(&self, req: &EgressRequest<'_>) -> bool {
        self.ports.as_ref().is_none_or(|p| p.contains(&req.port))
            && self.methods.as_ref().is_none_or(|m| m.contains(req.method))
            && self
                .schemes
                .as_ref()
                .is_none_or(|s| s.contains(&req.scheme))
    }
}

/// Why an outbound request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// No rule allows this host, port, method and scheme together.
    #[error(
        "egress {method} {scheme}://{host}:{port} denied: no egress.allow rule matches; \
         add a rule for this authority to the workload's policy"
    )]
    NoRuleMatched {
        /// The request's method.
        method: String,
        /// The request's scheme.
        scheme: Scheme,
        /// The host as requested.
        host: String,
        /// The destination port.
        port: u16,
    },
    /// The host is an IP literal that no rule allows explicitly.
    #[error(
        "egress to IP literal {host:?} denied: address a service by name, or add a rule with \
         this exact address and allow_ip_literal: true"
    )]
    IpLiteral {
        /// The host as requested.
        host: String,
    },
    /// The host is a link-local or cloud metadata address, always refused.
    #[error(
        "egress to {host:?} denied: link-local and cloud metadata addresses are always refused"
    )]
    MetadataAddress {
        /// The host as requested.
        host: String,
    },
    /// The host is not a valid DNS name or IP literal.
    #[error("egress to {host:?} denied: not a valid host name or IP address")]
    InvalidHost {
        /// The host as requested.
        host: String,
    },
}

/// A workload's compiled egress allow rules, indexed by host for fast checks.
#[derive(Debug, Clone, Default)]
pub struct EgressRules {
    rules: Vec<EgressRule>,
    exact: HashMap<String, Vec<usize>>,
    subdomains: HashMap<String, Vec<usize>>,
    any_name: Vec<usize>,
    ips: HashMap<IpAddr, Vec<usize>>,
}

impl EgressRules {
    /// Indexes already-validated rules. Host names in patterns are
    /// lower-cased and lose a trailing dot. An empty list denies everything.
    pub fn new(mut rules: Vec<EgressRule>) -> EgressRules {
        let mut compiled = EgressRules::default();
        for (i, rule) in rules.iter_mut().enumerate() {
            match &mut rule.authority {
                HostPattern::Exact(name) => {
                    normalize_name(name);
                    compiled.exact.entry(name.clone()).or_default().push(i)
                }
                HostPattern::Subdomains(name) => {
                    normalize_name(name);
                    compiled.subdomains.entry(name.clone()).or_default().push(i)
                }
                HostPattern::Any => compiled.any_name.push(i),
                HostPattern::Ip(ip) => compiled.ips.entry(*ip).or_default().push(i),
            }
        }
        compiled.rules = rules;
        compiled
    }

    /// How many allow rules there are (none: everything is denied).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Validates raw configuration, reporting every bad entry under `egress`.
    pub fn from_config(config: &EgressConfig) -> Result<EgressRules, crate::PolicyConfigErrors> {
        let mut errors = crate::PolicyConfigErrors::default();
        let rules = config::compile(config, "egress", &mut errors);
        errors.into_result(rules)
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> &[EgressRule] {
        &self.rules
    }

    /// True when there are no rules, so every request is denied.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides an outbound request: allowed when some rule matches, refused
    /// with the reason otherwise.
    pub fn check(&self, req: &EgressRequest<'_>) -> Result<(), EgressDenied> {
        match classify_host(req.host) {
            Host::Invalid => Err(EgressDenied::InvalidHost {
                host: req.host.to_owned(),
            }),
            Host::NumericLookalike => Err(EgressDenied::IpLiteral {
                host: req.host.to_owned(),
            }),
            Host::Ip(ip) => {
                if is_metadata_address(ip) {
                    return Err(EgressDenied::MetadataAddress {
                        host: req.host.to_owned(),
                    });
                }
                let Some(candidates) = self.ips.get(&ip) else {
                    return Err(EgressDenied::IpLiteral {
                        host: req.host.to_owned(),
                    });
                };
                if self.any_allows(candidates, req) {
                    Ok(())
                } else {
                    Err(self.no_rule(req))
                }
            }
            Host::Name(name) => {
                if is_metadata_host(&name) {
                    return Err(EgressDenied::MetadataAddress {
                        host: req.host.to_owned(),
                    });
                }
                if self.name_allowed(&name, req) {
                    Ok(())
                } else {
                    Err(self.no_rule(req))
                }
            }
        }
    }

    /// Looks the name up exactly, then each of its parent domains for
    /// `*.` rules, then the `*` rules.
    fn name_allowed(&self, name: &str, req: &EgressRequest<'_>) -> bool {
        if let Some(c) = self.exact.get(name)
            && self.any_allows(c, req)
        {
            return true;
        }
        if !self.subdomains.is_empty() {
            for (dot, _) in name.match_indices('.') {
                if let Some(c) = self.subdomains.get(&name[dot + 1..])
                    && self.any_allows(c, req)
                {
                    return true;
                }
            }
        }
        self.any_allows(&self.any_name, req)
    }

    fn any_allows(&self, candidates: &[usize], req: &EgressRequest<'_>) -> bool {
        candidates
            .iter()
            .any(|&i| self.rules.get(i).is_some_and(|rule| rule.allows(req)))
    }

    fn no_rule(&self, req: &EgressRequest<'_>) -> EgressDenied {
        EgressDenied::NoRuleMatched {
            method: req.method.to_string(),
            scheme: req.scheme,
            host: req.host.to_owned(),
            port: req.port,
        }
    }
}

/// Lower-cases a host name and drops one trailing dot, in place.
fn normalize_name(name: &mut String) {
    if name.ends_with('.') {
        name.pop();
    }
    name.make_ascii_lowercase();
}

#[cfg(test)]
mod tests;
