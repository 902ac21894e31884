//! Envoy RBAC rules (`config.rbac.v3.RBAC`) as plain data: what the RBAC filter evaluates,
//! whether they came from xDS or from a workload's policy in the mesh config.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::matcher::{HeaderMatcher, StringMatcher};

/// An address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub address: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range (an IPv4 range never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What an RBAC filter does when a policy matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbacAction {
    /// Allow only requests that match a policy.
    Allow,
    /// Deny requests that match a policy.
    Deny,
    /// Allow everything; matches are only logged.
    Log,
}

/// Envoy's `config.rbac.v3.RBAC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacRules {
    /// Action on match.
    pub action: RbacAction,
    /// Policies by name; a request matches when any policy matches.
    pub policies: BTreeMap<String, RbacPolicy>,
}

/// Envoy's `config.rbac.v3.Policy`: any permission and any principal must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacPolicy {
    /// What the request does.
    pub permissions: Vec<Permission>,
    /// Who sends it.
    pub principals: Vec<Principal>,
}

/// Envoy's `config.rbac.v3.Permission` (supported subset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Always matches.
    Any,
    /// A request header (pseudo-headers such as `:method` included).
    Header(HeaderMatcher),
    /// The path without query string.
    UrlPath(StringMatcher),
    /// The local port the request arrived on.
    DestinationPort(u16),
    /// The local address the request arrived on.
    DestinationIp(Cidr),
    /// The TLS server name (SNI) the client asked for; empty without TLS.
    RequestedServerName(StringMatcher),
    /// All of these.
    And(Vec<Permission>),
    /// Any of these.
    Or(Vec<Permission>),
    /// Not this.
    Not(Box<Permission>),
}

/// Envoy's `config.rbac.v3.Principal` (supported subset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Always matches.
    Any,
    /// A peer with a verified certificate whose URI SAN (else subject) matches; `None`: any
    /// authenticated peer.
    Authenticated(Option<StringMatcher>),
    /// The downstream address, after trusted `x-forwarded-for` processing.
    RemoteIp(Cidr),
    /// The address of the connection's peer.
    DirectRemoteIp(Cidr),
    /// A request header.
    Header(HeaderMatcher),
    /// The path without query string.
    UrlPath(StringMatcher),
    /// All of these.
    And(Vec<Principal>),
    /// Any of these.
    Or(Vec<Principal>),
    /// Not this.
    Not(Box<Principal>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_checks_prefix_bits() {
        let net = Cidr {
            address: "10.1.0.0".parse().expect("ip"),
            prefix_len: 16,
        };
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        let all = Cidr {
            address: "0.0.0.0".parse().expect("ip"),
            prefix_len: 0,
        };
        assert!(all.contains("192.0.2.1".parse().expect("ip")));
    }
}
