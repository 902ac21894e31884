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

impl CertificateKeyPair {
    /// The stand-in of a certificate that an SDS secret brings: empty until the secret
    /// replaces it, which happens before a snapshot is published.
    pub(crate) fn from_sds() -> Self {
        let empty: Arc<[u8]> = Arc::from(Vec::new());
        Self {
            cert_chain: DataSource::Inline(empty.clone()),
            private_key: DataSource::Inline(empty),
        }
    }
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
    /// SDS references not yet replaced by their secrets.
    pub(crate) secrets: SdsRefs,
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
    /// A certificate a client presents must carry a SAN one of these matches (any of them);
    /// empty: any certificate that chains to the CA.
    pub subject_alt_names: Vec<SanMatcher>,
}

/// Envoy's `UpstreamTlsContext` (supported subset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// SNI sent to the upstream.
    pub sni: Option<String>,
    /// CA bundle that the upstream certificate must chain to (`None`: the Mozilla roots, where
    /// Envoy verifies nothing).
    pub validation_ca: Option<DataSource>,
    /// Client certificate for mTLS.
    pub client_certificate: Option<CertificateKeyPair>,
    /// ALPN protocols offered.
    pub alpn_protocols: Vec<String>,
    /// Accepted subject alternative names (any of them); empty: the certificate must be valid
    /// for the SNI (or endpoint host) instead.
    pub subject_alt_names: Vec<SanMatcher>,
    /// SDS references not yet replaced by their secrets.
    pub(crate) secrets: SdsRefs,
}

/// A certificate validation context: Envoy's `CertificateValidationContext`
/// (supported subset), as an SDS secret delivers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// CA bundle that peer certificates must chain to.
    pub trusted_ca: Option<DataSource>,
    /// Accepted subject alternative names (any of them); empty accepts any.
    pub subject_alt_names: Vec<SanMatcher>,
}

/// The kind of subject alternative name a [`SanMatcher`] compares (Envoy's
/// `SubjectAltNameMatcher.SanType`, less `OTHER_NAME`, which is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SanType {
    /// `rfc822Name`.
    Email,
    /// `dNSName`; an exact matcher follows DNS wildcard rules (RFC 6125 6.4.3).
    Dns,
    /// `uniformResourceIdentifier` (a SPIFFE id in a mesh).
    Uri,
    /// `iPAddress`, compared in its text form.
    IpAddress,
}

/// Envoy's `SubjectAltNameMatcher`: a certificate passes when one of its
/// subject alternative names of `san_type` matches `matcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SanMatcher {
    /// Which names are compared.
    pub san_type: SanType,
    /// The pattern they are compared with.
    pub matcher: StringMatcher,
}

/// Envoy's `extensions.transport_sockets.tls.v3.Secret`: key material a TLS
/// context names instead of carrying it (SDS), over ADS or in the bootstrap's
/// `static_resources.secrets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// Resource name, which TLS contexts reference.
    pub name: String,
    /// What the secret holds.
    pub material: SecretMaterial,
}

/// The kinds of secret mesh-host takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretMaterial {
    /// A certificate chain and its private key (`tls_certificate`).
    TlsCertificate(CertificateKeyPair),
    /// A validation context (`validation_context`).
    ValidationContext(ValidationContext),
}

impl SecretMaterial {
    /// The `Secret` field that holds this material, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            Self::TlsCertificate(_) => "tls_certificate",
            Self::ValidationContext(_) => "validation_context",
        }
    }
}

/// Where an SDS reference is served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SecretSource {
    /// The ADS stream (`sds_config: { ads: {} }`).
    Ads,
    /// The bootstrap's `static_resources.secrets` (no `sds_config`).
    Static,
}

/// One `SdsSecretConfig` of a TLS context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretRef {
    pub(crate) name: String,
    pub(crate) source: SecretSource,
    /// The `Secret` field it needs (`tls_certificate` or `validation_context`).
    pub(crate) wanted: &'static str,
    /// Where the reference is written, for messages.
    pub(crate) field: String,
}

/// The SDS references of a TLS context, replaced by the secrets' material where a
/// snapshot is assembled; a published snapshot's contexts never have any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SdsRefs {
    /// `tls_certificate_sds_secret_configs[0]`.
    pub(crate) certificate: Option<SecretRef>,
    /// `validation_context_sds_secret_config`, or that of `combined_validation_context`
    /// (whose default context is already in the context's own fields).
    pub(crate) validation: Option<SecretRef>,
    /// A downstream context's `require_client_certificate`, which needs the CA the
    /// validation secret brings.
    pub(crate) require_client_certificate: bool,
    /// A downstream context's SAN matchers while its CA is still to come with the validation
    /// secret; the secret's matchers join them.
    pub(crate) client_subject_alt_names: Vec<SanMatcher>,
}

impl SdsRefs {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &SecretRef> {
        self.certificate.iter().chain(self.validation.iter())
    }
}
