//! Virtual-host selection by request authority, as Envoy's `RouteMatcher::findVirtualHost`.
//!
//! Precedence: exact domain, then suffix wildcards (`*.example.com`, `*-bar.example.com`)
//! longest first, then prefix wildcards (`foo.*`) longest first, then the `*` virtual host.
//! The port is part of the authority: `example.com` does not match `example.com:8080`,
//! unless the route configuration sets `ignore_port_in_host_matching`, which strips a numeric
//! port from the authority (not from the domains) before matching. Wildcards are kept in one hash map per distinct length, so a lookup costs one hash
//! probe per distinct wildcard length, not one comparison per virtual host.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::RouteTableError;

/// Wildcard keys of one length (without the `*`), to virtual-host indexes.
type WildcardGroup = (usize, HashMap<Box<[u8]>, usize>);

/// Maps a request authority to the index of its virtual host.
#[derive(Debug, Default)]
pub(super) struct DomainIndex {
    exact: HashMap<Box<[u8]>, usize>,
    /// `*.example.com` stored as `.example.com`, grouped by that length, longest first.
    suffixes: Vec<WildcardGroup>,
    /// `foo.*` stored as `foo.`, grouped by that length, longest first.
    prefixes: Vec<WildcardGroup>,
    default: Option<usize>,
    ignore_port: bool,
}

impl DomainIndex {
    /// An empty index; `ignore_port` is the route configuration's
    /// `ignore_port_in_host_matching`.
    pub(super) fn new(ignore_port: bool) -> Self {
        Self {
            ignore_port,
            ..Self::default()
        }
    }

    /// Registers `domain` (lower-cased, as Envoy does) for virtual host `vhost`.
    ///
    /// A domain listed twice, in one virtual host or in two, is an error, as in Envoy.
    pub(super) fn insert(
        &mut self,
        domain: &str,
        vhost: usize,
        route_config: &str,
    ) -> Result<(), RouteTableError> {
        let domain = domain.to_ascii_lowercase();
        let duplicate = || RouteTableError::DuplicateDomain {
            route_config: route_config.to_owned(),
            domain: domain.clone(),
        };
        if domain == "*" {
            if self.default.replace(vhost).is_some() {
                return Err(duplicate());
            }
            return Ok(());
        }
        let (map, key) = if let Some(suffix) = domain.strip_prefix('*') {
            (by_length(&mut self.suffixes, suffix.len()), suffix)
        } else if let Some(prefix) = domain.strip_suffix('*') {
            (by_length(&mut self.prefixes, prefix.len()), prefix)
        } else {
            (&mut self.exact, domain.as_str())
        };
        match map.entry(key.as_bytes().into()) {
            Entry::Occupied(_) => Err(duplicate()),
            Entry::Vacant(slot) => {
                slot.insert(vhost);
                Ok(())
            }
        }
    }

    /// The virtual host for `authority` (`None`: the request has none).
    ///
    /// With only a `*` virtual host, Envoy answers without looking at the authority at all.
    pub(super) fn find(&self, authority: Option<&[u8]>) -> Option<usize> {
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.default;
        }
        let mut authority = authority?;
        if self.ignore_port {
            authority = without_port(authority);
        }
        let host: Cow<'_, [u8]> = if authority.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(authority.to_ascii_lowercase())
        } else {
            Cow::Borrowed(authority)
        };
        if let Some(vhost) = self.exact.get(host.as_ref()) {
            return Some(*vhost);
        }
        longest_wildcard(&self.suffixes, &host, |h, len| &h[h.len() - len..])
            .or_else(|| longest_wildcard(&self.prefixes, &host, |h, len| &h[..len]))
            .or(self.default)
    }
}

/// The authority without a trailing `:port` (Envoy's `getPortStart`: after an IPv6
/// literal's `]`, digits only).
fn without_port(authority: &[u8]) -> &[u8] {
    let Some(colon) = authority.iter().rposition(|b| *b == b':') else {
        return authority;
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    let ipv6_without_brackets = host.contains(&b':') && !host.ends_with(b"]");
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) || ipv6_without_brackets {
        return authority;
    }
    host
}

fn by_length(groups: &mut Vec<WildcardGroup>, len: usize) -> &mut HashMap<Box<[u8]>, usize> {
    // Sorted longest first, so that lookups try the most specific wildcard first.
    let at = match groups.binary_search_by(|(l, _)| len.cmp(l)) {
        Ok(at) => at,
        Err(at) => {
            groups.insert(at, (len, HashMap::new()));
            at
        }
    };
    &mut groups[at].1
}

fn longest_wildcard(
    groups: &[WildcardGroup],
    host: &[u8],
    part: impl Fn(&[u8], usize) -> &[u8],
) -> Option<usize> {
    groups
        .iter()
        // Strictly shorter than the host: `*.foo.com` must not match `.foo.com` (Envoy).
        .filter(|(len, _)| *len < host.len())
        .find_map(|(len, map)| map.get(part(host, *len)).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(domains: &[&str]) -> DomainIndex {
        let mut index = DomainIndex::default();
        for (vhost, domain) in domains.iter().enumerate() {
            index.insert(domain, vhost, "rc").expect("unique domains");
        }
        index
    }

    fn find(index: &DomainIndex, host: &str) -> Option<usize> {
        index.find(Some(host.as_bytes()))
    }

    #[test]
    fn exact_domain_beats_suffix_prefix_and_default() {
        let i = index(&["*", "foo.*", "*.example.com", "foo.example.com"]);
        assert_eq!(find(&i, "foo.example.com"), Some(3));
    }

    #[test]
    fn longest_suffix_wildcard_wins() {
        let i = index(&["*.example.com", "*-bar.example.com"]);
        assert_eq!(find(&i, "foo-bar.example.com"), Some(1));
        assert_eq!(find(&i, "foo.example.com"), Some(0));
    }

    #[test]
    fn suffix_wildcard_requires_a_longer_host() {
        let i = index(&["*.example.com"]);
        assert_eq!(find(&i, ".example.com"), None);
        assert_eq!(find(&i, "a.example.com"), Some(0));
    }

    #[test]
    fn suffix_beats_prefix_wildcard() {
        let i = index(&["foo.*", "*.com"]);
        assert_eq!(find(&i, "foo.com"), Some(1));
    }

    #[test]
    fn longest_prefix_wildcard_wins() {
        let i = index(&["foo.*", "foo.bar.*"]);
        assert_eq!(find(&i, "foo.bar.com"), Some(1));
        assert_eq!(find(&i, "foo.baz.com"), Some(0));
    }

    #[test]
    fn host_is_lower_cased_and_domains_too() {
        let i = index(&["Example.COM"]);
        assert_eq!(find(&i, "EXAMPLE.com"), Some(0));
    }

    #[test]
    fn port_is_part_of_the_authority() {
        let i = index(&["example.com", "example.com:8080"]);
        assert_eq!(find(&i, "example.com:8080"), Some(1));
        assert_eq!(find(&i, "example.com:9090"), None);
    }

    #[test]
    fn ignore_port_in_host_matching_strips_the_port_of_the_authority_only() {
        let mut i = DomainIndex::new(true);
        for (vhost, domain) in ["example.com", "*.example.org", "[::1]", "other.com:8080"]
            .iter()
            .enumerate()
        {
            i.insert(domain, vhost, "rc").expect("unique domains");
        }
        assert_eq!(find(&i, "example.com:8080"), Some(0));
        assert_eq!(find(&i, "example.com"), Some(0));
        assert_eq!(find(&i, "a.example.org:443"), Some(1));
        assert_eq!(find(&i, "[::1]:80"), Some(2));
        assert_eq!(
            find(&i, "other.com:8080"),
            None,
            "the domain's port is not stripped"
        );
        assert_eq!(
            without_port(b"::1"),
            b"::1",
            "a bare IPv6 literal has no port"
        );
        assert_eq!(without_port(b"host:http"), b"host:http");
    }

    #[test]
    fn default_only_matches_without_an_authority() {
        let i = index(&["*"]);
        assert_eq!(i.find(None), Some(0));
        let i = index(&["a.com", "*"]);
        assert_eq!(i.find(None), None);
    }

    #[test]
    fn duplicate_domains_are_rejected_with_their_name() {
        let mut i = DomainIndex::default();
        i.insert("a.com", 0, "rc").expect("first");
        let error = i.insert("A.com", 1, "rc").expect_err("duplicate");
        assert!(error.to_string().contains("a.com"), "{error}");
        i.insert("*", 0, "rc").expect("first default");
        assert!(i.insert("*", 1, "rc").is_err());
    }
}
