//! Upstream certificate verification by a cluster's SAN matchers
//! (`match_typed_subject_alt_names`), as Envoy's default validator does it:
//! the chain must lead to the cluster's CA, then one subject alternative name
//! of the leaf, of a matcher's type, must match that matcher. The name the
//! connection was opened for (SNI or endpoint host) is not compared then:
//! Istio's SNI (`outbound_.8080_._.reviews.default.svc.cluster.local`) names
//! no certificate, the SPIFFE id in the matcher does.

use std::sync::Arc;

use mesh_xds::config::SanMatcher;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use crate::shared::any_san_matches;

/// Verifies the upstream's chain against `roots` and its SANs against `sans`.
#[derive(Debug)]
pub(super) struct SanVerifier {
    roots: Arc<RootCertStore>,
    sans: Vec<SanMatcher>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SanVerifier {
    /// A verifier accepting certificates that chain to `roots` and carry a SAN one of `sans`
    /// matches, with the signature algorithms of the crypto provider in use.
    pub(super) fn new(
        roots: RootCertStore,
        sans: Vec<SanMatcher>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            roots: Arc::new(roots),
            sans,
            algorithms,
        }
    }
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if any_san_matches(end_entity, &self.sans) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
