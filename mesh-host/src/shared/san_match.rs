//! Whether a certificate's subject alternative names satisfy Envoy SAN matchers
//! (`match_typed_subject_alt_names`), read as Envoy's default validator reads
//! them; the upstream client checks servers with it, the front end clients.

use std::net::{Ipv4Addr, Ipv6Addr};

use mesh_xds::config::{SanMatcher, SanType, StringPattern};
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Whether a SAN of `leaf` matches one of `sans`; a leaf without SANs, or that does not
/// parse, matches none.
pub(crate) fn any_san_matches(leaf: &CertificateDer<'_>, sans: &[SanMatcher]) -> bool {
    let Ok((_, leaf)) = X509Certificate::from_der(leaf.as_ref()) else {
        return false;
    };
    let Ok(Some(names)) = leaf.subject_alternative_name() else {
        return false;
    };
    let names = &names.value.general_names;
    sans.iter()
        .any(|san| names.iter().any(|name| san_matches(san, name)))
}

fn san_matches(san: &SanMatcher, name: &GeneralName<'_>) -> bool {
    match (san.san_type, name) {
        (SanType::Dns, GeneralName::DNSName(dns)) => match &san.matcher.pattern {
            // Only an exact matcher follows DNS rules: the certificate's name may be a wildcard.
            StringPattern::Exact(expected) => dns_name_matches(expected, dns),
            _ => san.matcher.matches(dns),
        },
        (SanType::Uri, GeneralName::URI(uri)) => san.matcher.matches(uri),
        (SanType::Email, GeneralName::RFC822Name(email)) => san.matcher.matches(email),
        (SanType::IpAddress, GeneralName::IPAddress(bytes)) => {
            ip_text(bytes).is_some_and(|ip| san.matcher.matches(&ip))
        }
        _ => false,
    }
}

/// An `iPAddress` SAN in the text form Envoy compares (dotted quad, RFC 5952 for IPv6).
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|octets| Ipv4Addr::from(octets).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|octets| Ipv6Addr::from(octets).to_string()),
        _ => None,
    }
}

/// Envoy's `dnsNameMatch` (RFC 6125 6.4.3): `name` equals `pattern` ignoring ASCII case, or
/// `pattern`'s first label holds one `*` (not in an A-label) standing for part or all of
/// `name`'s first label, and the rest of both is the same.
fn dns_name_matches(name: &str, pattern: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    if name == pattern {
        return true;
    }
    let (Some((label, rest)), Some((pattern_label, pattern_rest))) =
        (name.split_once('.'), pattern.split_once('.'))
    else {
        return false;
    };
    pattern_label.contains('*')
        && !pattern_rest.contains('*')
        && !pattern_label.starts_with("xn--")
        && rest == pattern_rest
        && label_wildcard_matches(label, pattern_label)
}

fn label_wildcard_matches(label: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('*') {
        Some((prefix, suffix)) if !suffix.contains('*') => {
            pattern.len() <= label.len() + 1 && label.starts_with(prefix) && label.ends_with(suffix)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use mesh_xds::config::StringMatcher;
    use rcgen::{CertificateParams, KeyPair, SanType as Name};

    use super::*;

    fn leaf(names: Vec<Name>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = names;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    fn uri(value: &str) -> Name {
        Name::URI(value.try_into().expect("ASCII"))
    }

    fn dns(value: &str) -> Name {
        Name::DnsName(value.try_into().expect("ASCII"))
    }

    fn matcher(san_type: SanType, pattern: StringPattern) -> SanMatcher {
        SanMatcher {
            san_type,
            matcher: StringMatcher {
                pattern,
                ignore_case: false,
            },
        }
    }

    fn exact(san_type: SanType, value: &str) -> SanMatcher {
        matcher(san_type, StringPattern::Exact(value.to_owned()))
    }

    const BACKEND: &str = "spiffe://cluster.local/ns/default/sa/backend";

    #[test]
    fn a_san_matches_only_a_matcher_of_its_own_type() {
        let cert = leaf(vec![uri(BACKEND), dns("backend.test")]);
        assert!(any_san_matches(&cert, &[exact(SanType::Uri, BACKEND)]));
        assert!(any_san_matches(
            &cert,
            &[exact(SanType::Dns, "backend.test")]
        ));
        assert!(!any_san_matches(&cert, &[exact(SanType::Dns, BACKEND)]));
        assert!(!any_san_matches(
            &cert,
            &[exact(SanType::Uri, "backend.test")]
        ));
        assert!(!any_san_matches(
            &cert,
            &[exact(
                SanType::Uri,
                "spiffe://cluster.local/ns/default/sa/other"
            )]
        ));
        // Any one matcher of the list is enough.
        assert!(any_san_matches(
            &cert,
            &[
                exact(SanType::Email, "a@b.test"),
                exact(SanType::Uri, BACKEND)
            ]
        ));
        assert!(any_san_matches(
            &cert,
            &[matcher(
                SanType::Uri,
                StringPattern::Prefix("spiffe://cluster.local/".to_owned())
            )]
        ));
        assert!(!any_san_matches(&cert, &[]));
    }

    #[test]
    fn email_and_ip_address_sans_compare_in_their_text_form() {
        let cert = leaf(vec![
            Name::Rfc822Name("ops@backend.test".try_into().expect("ASCII")),
            Name::IpAddress("10.0.0.7".parse().expect("IPv4")),
            Name::IpAddress("fd00::7".parse().expect("IPv6")),
        ]);
        assert!(any_san_matches(
            &cert,
            &[exact(SanType::Email, "ops@backend.test")]
        ));
        assert!(any_san_matches(
            &cert,
            &[exact(SanType::IpAddress, "10.0.0.7")]
        ));
        assert!(any_san_matches(
            &cert,
            &[exact(SanType::IpAddress, "fd00::7")]
        ));
        assert!(!any_san_matches(
            &cert,
            &[exact(SanType::IpAddress, "10.0.0.8")]
        ));
        assert!(!any_san_matches(&cert, &[exact(SanType::Dns, "10.0.0.7")]));
    }

    #[test]
    fn a_certificate_without_sans_matches_nothing() {
        let cert = leaf(Vec::new());
        assert!(!any_san_matches(
            &cert,
            &[exact(SanType::Dns, "backend.test")]
        ));
        assert!(!any_san_matches(
            &CertificateDer::from(vec![0x30, 0x00]),
            &[]
        ));
    }

    #[test]
    fn an_exact_dns_matcher_follows_wildcard_rules_other_matchers_compare_text() {
        let wildcard = leaf(vec![dns("*.backend.test")]);
        assert!(any_san_matches(
            &wildcard,
            &[exact(SanType::Dns, "api.backend.test")]
        ));
        assert!(!any_san_matches(
            &wildcard,
            &[exact(SanType::Dns, "backend.test")]
        ));
        assert!(!any_san_matches(
            &wildcard,
            &[exact(SanType::Dns, "a.b.backend.test")]
        ));
        let prefix = StringPattern::Prefix("api.".to_owned());
        assert!(!any_san_matches(
            &wildcard,
            &[matcher(SanType::Dns, prefix)]
        ));
        let suffix = StringPattern::Suffix(".backend.test".to_owned());
        assert!(any_san_matches(&wildcard, &[matcher(SanType::Dns, suffix)]));
    }

    #[test]
    fn dns_names_match_as_envoy_matches_them() {
        let cases = [
            ("api.example.com", "api.example.com", true),
            ("API.Example.com", "api.EXAMPLE.com", true),
            ("api.example.com", "*.example.com", true),
            ("example.com", "*.example.com", false),
            ("a.api.example.com", "*.example.com", false),
            ("api.example.com", "a*.example.com", true),
            ("api.example.com", "*i.example.com", true),
            ("api.example.com", "b*.example.com", false),
            ("ap.example.com", "ap*p.example.com", false),
            ("api.example.com", "*.*.com", false),
            ("xn--api.example.com", "xn--*.example.com", false),
            ("api.example.com", "a**.example.com", false),
            ("com", "*", false),
        ];
        for (name, pattern, expected) in cases {
            assert_eq!(
                dns_name_matches(name, pattern),
                expected,
                "{name} against {pattern}"
            );
        }
    }
}
