//! TLS settings for listeners (downstream) and clusters (upstream).

use std::path::PathBuf;
use std::sync::Arc;

use super::matcher::StringMatcher;

/// Envoy's `config.core.v3.DataSource`: certificate material, by file or inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// Read from this file by the consumer (so it can watch it for rotation).
    Filename(PathBuf),
    /// Inline bytes (PEM).
    Inline(Arc<[u8]>),
}

/// A certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateKeyPair {
    /// PEM certificate chain.
    pub cert_chain: DataSource,
    /// PEM private key.
    pub private_key: DataSource,
}

/// Envoy's `DownstreamTlsContext` (supported subset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownstreamTls {
    /// The server certificate.
    pub certificate: CertificateKeyPair,
    /// ALPN protocols offered, in preference order (empty: HTTP/1.1 only, as in Envoy).
    pub alpn_protocols: Vec<String>,
    /// Reject clients without a certificate.
    pub require_client_certificate: bool,
    /// CA bundle that client certificates must chain to.
    pub validation_ca: Option<DataSource>,
}

/// Envoy's `UpstreamTlsContext` (supported subset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI sent to the upstream.
    pub sni: Option<String>,
    /// CA bundle that the upstream certificate must chain to (`None`: not verified, as in Envoy).
    pub validation_ca: Option<DataSource>,
    /// Client certificate for mTLS.
    pub client_certificate: Option<CertificateKeyPair>,
    /// ALPN protocols offered.
    pub alpn_protocols: Vec<String>,
    /// Accepted subject alternative names (any of them); empty accepts any.
    pub subject_alt_names: Vec<StringMatcher>,
}
