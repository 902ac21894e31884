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
    /// Client certificate verification; `None` asks clients for none.
    pub client_certificates: Option<ClientCertificates>,
}

/// How a listener verifies client certificates (mTLS): the CA bundle from
/// `validation_context.trusted_ca`, and `require_client_certificate`. A
/// requirement without a CA cannot be expressed, so it is never mistaken for
/// mTLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificates {
    /// CA bundle that client certificates must chain to.
    pub trusted_ca: DataSource,
    /// Reject clients without a certificate; without it a client may go
    /// without one, but one it presents must verify.
    pub required: bool,
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
