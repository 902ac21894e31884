//! The identity a verified client certificate stands for, read the way
//! Envoy's RBAC `authenticated.principal_name` reads it: the first URI SAN
//! (a SPIFFE id in a mesh), else the first DNS SAN, else the subject.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The principal of the leaf of `chain`, or `None` when there is no leaf or
/// it does not parse (rustls has verified it; a principal is only read).
pub(super) fn principal(chain: &[CertificateDer<'_>]) -> Option<Arc<str>> {
    let (_, leaf) = X509Certificate::from_der(chain.first()?.as_ref()).ok()?;
    let names = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.as_slice())
        .unwrap_or_default();
    let uri = names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let dns = names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => Some(*dns),
        _ => None,
    });
    match uri.or(dns) {
        Some(name) => Some(Arc::from(name)),
        None => Some(Arc::from(leaf.subject().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    use super::*;

    fn certificate(sans: Vec<SanType>, common_name: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    fn uri(text: &str) -> SanType {
        SanType::URI(text.try_into().expect("ia5 string"))
    }

    fn dns(text: &str) -> SanType {
        SanType::DnsName(text.try_into().expect("ia5 string"))
    }

    #[test]
    fn the_uri_san_comes_first_then_the_dns_san_then_the_subject() {
        let both = certificate(vec![dns("reader.test"), uri("spiffe://mesh/sa/a")], "x");
        assert_eq!(principal(&[both]).as_deref(), Some("spiffe://mesh/sa/a"));
        let dns_only = certificate(vec![dns("reader.test"), dns("other.test")], "x");
        assert_eq!(principal(&[dns_only]).as_deref(), Some("reader.test"));
        let subject_only = certificate(Vec::new(), "legacy client");
        assert_eq!(
            principal(&[subject_only]).as_deref(),
            Some("CN=legacy client")
        );
    }

    #[test]
    fn no_certificate_or_garbage_has_no_principal() {
        assert_eq!(principal(&[]), None);
        assert_eq!(principal(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }
}
