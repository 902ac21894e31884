//! Request hosts: telling names from IP literals, and recognising the
//! link-local and cloud metadata addresses that are always refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// What a request's host turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
    /// An IP literal (IPv6 given with or without brackets).
    Ip(IpAddr),
    /// A host whose last label is numeric but which is not a dotted-quad
    /// IPv4 address (`127.1`, `0x7f.1`, `2130706433`): resolvers may read it
    /// as an address, so it is treated as an ambiguous IP literal.
    NumericLookalike,
    /// Not a valid host name.
    Invalid,
}

/// Classifies and normalises a host: brackets and one trailing dot are
/// removed and names are lower-cased.
pub(crate) fn classify_host(host: &str) -> Host {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner
            .strip_suffix(']')
            .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
        {
            Some(ip) => Host::Ip(IpAddr::V6(ip)),
            None => Host::Invalid,
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Host::Ip(ip);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Host::Ip(IpAddr::V4(ip));
    }
    if !is_valid_dns_name(name) {
        return Host::Invalid;
    }
    if last_label_is_numeric(name) {
        return Host::NumericLookalike;
    }
    Host::Name(name.to_ascii_lowercase())
}

/// True for a syntactically valid DNS name: 1-253 characters, labels of
/// 1-63 letters, digits, `-` or `_`, not starting or ending with `-`.
pub(crate) fn is_valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The WHATWG URL "ends in a number" rule: a last label of digits, or of
/// `0x` followed by hex digits, makes a host an IPv4 address to a parser.
fn last_label_is_numeric(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Host names of cloud instance-metadata services, refused whatever the rules say.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// True for a (normalised) host name of a cloud metadata service.
pub(crate) fn is_metadata_host(name: &str) -> bool {
    METADATA_HOSTS.contains(&name)
}

/// IPv4 link-local, which holds 169.254.169.254 (AWS, GCP, Azure, ...).
const LINK_LOCAL_V4: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("169.254.0.0/16 is a valid network"),
};

/// IPv6 link-local.
const LINK_LOCAL_V6: Ipv6Net = match Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
    Ok(net) => net,
    Err(_) => panic!("fe80::/10 is a valid network"),
};

/// The AWS instance-metadata service over IPv6.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// True for a link-local or cloud metadata address, including the
/// IPv4-mapped IPv6 form of a link-local IPv4 address.
///
/// Hosts call this on every address a name resolves to, so that a DNS name
/// pointing at a metadata service is refused too.
pub fn is_metadata_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => LINK_LOCAL_V4.contains(&v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return LINK_LOCAL_V4.contains(&v4);
            }
            v6 == AWS_METADATA_V6 || LINK_LOCAL_V6.contains(&v6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_lowercased_without_trailing_dot() {
        assert_eq!(
            classify_host("API.Example.COM."),
            Host::Name("api.example.com".into())
        );
    }

    #[test]
    fn ip_literals_are_recognised_in_every_form() {
        assert_eq!(
            classify_host("10.0.0.1"),
            Host::Ip("10.0.0.1".parse().expect("ip"))
        );
        assert_eq!(
            classify_host("10.0.0.1."),
            Host::Ip("10.0.0.1".parse().expect("ip"))
        );
        assert_eq!(classify_host("::1"), Host::Ip("::1".parse().expect("ip")));
        assert_eq!(classify_host("[::1]"), Host::Ip("::1".parse().expect("ip")));
        assert_eq!(classify_host("[example.com]"), Host::Invalid);
    }

    #[test]
    fn numeric_lookalike_hosts_are_ip_literals() {
        for h in ["127.1", "2130706433", "0x7f.0.0.1", "foo.0x7f", "10.0.0.01"] {
            assert_eq!(classify_host(h), Host::NumericLookalike, "{h}");
        }
        assert_eq!(
            classify_host("1password.com"),
            Host::Name("1password.com".into())
        );
    }

    #[test]
    fn invalid_host_names_are_rejected() {
        for h in [
            "",
            ".",
            "a..b",
            "-a.com",
            "a-.com",
            "a b",
            "a%2e.com",
            "fe80::1%eth0",
        ] {
            assert_eq!(classify_host(h), Host::Invalid, "{h:?}");
        }
    }

    #[test]
    fn metadata_addresses_cover_link_local_and_aws_v6() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_metadata_address(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "127.0.0.1",
            "::1",
            "fd00:ec2::253",
            "169.253.0.1",
        ] {
            assert!(!is_metadata_address(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn metadata_host_names_are_known() {
        assert!(is_metadata_host("metadata.google.internal"));
        assert!(is_metadata_host("metadata"));
        assert!(!is_metadata_host("metadata.example.com"));
    }
}
