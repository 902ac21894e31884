//! TLS termination of a filter chain: certificates, ALPN and client certificate verification
//! (CA, and SAN matchers in `client_sans.rs`),
//! loaded into a rustls server configuration when the listener binds, and again when its
//! certificates change (new connections take the new one).

use std::path::PathBuf;
use std::sync::Arc;

use mesh_xds::config::SanMatcher;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

use super::client_sans::SanClientVerifier;

/// ALPN protocols `mesh-host run --tls-cert` offers, in preference order.
const DEFAULT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl From<TlsFiles> for TlsCertificate {
    fn from(files: TlsFiles) -> Self {
        Self {
            cert: PemSource::File(files.cert),
            key: PemSource::File(files.key),
        }
    }
}

/// A certificate chain and private key, each from a file or inline (an SDS
/// secret brings them inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: PemSource,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PemSource,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read, or its PEM could not be parsed.
    #[error("cannot read {source_name}: {cause}")]
    Read {
        /// The file, or `inline` for inline PEM.
        source_name: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The certificate holds no certificate.
    #[error("{0} contains no PEM certificate")]
    NoCertificate(String),
    /// The key holds no private key.
    #[error("{0} contains no PEM private key")]
    NoKey(String),
    /// rustls rejected the pair (for example, key and certificate differ).
    #[error("invalid certificate/key pair ({cert}, {key}): {cause}")]
    Invalid {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
        /// What rustls reported.
        cause: rustls::Error,
    },
    /// The CA bundle for client certificates is unusable.
    #[error("client certificate CA {source_name}: {cause}")]
    ClientCa {
        /// The file, or `inline` for inline PEM.
        source_name: String,
        /// What was wrong with it.
        cause: String,
    },
}

/// Where a PEM bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file, read when the listener is (re)built.
    File(PathBuf),
    /// Inline PEM bytes.
    Inline(Arc<[u8]>),
}

impl PemSource {
    fn name(&self) -> String {
        match self {
            PemSource::File(path) => path.display().to_string(),
            PemSource::Inline(_) => "inline".to_owned(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            PemSource::File(path) => std::fs::read(path).map_err(|cause| TlsError::Read {
                source_name: self.name(),
                cause,
            }),
            PemSource::Inline(bytes) => Ok(bytes.to_vec()),
        }
    }
}

/// Client certificate verification of a filter chain (Envoy's
/// `validation_context.trusted_ca` with `require_client_certificate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientVerification {
    /// The CA bundle client certificates must chain to.
    pub trusted_ca: PemSource,
    /// Refuse clients that present no certificate. Without it a client may
    /// go without one, but a certificate it presents must verify.
    pub required: bool,
    /// A presented certificate must carry a SAN one of these matches; empty: any that
    /// chains to the CA.
    pub subject_alt_names: Vec<SanMatcher>,
}

/// TLS termination of a filter chain: its certificate and the ALPN
/// protocols it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTermination {
    /// The certificate chain and key.
    pub certificate: TlsCertificate,
    /// ALPN protocols offered, in preference order. Empty offers none, as
    /// Envoy does: clients then speak HTTP/1.1 (or h2 with prior knowledge).
    pub alpn_protocols: Vec<Vec<u8>>,
    /// Client certificate verification; `None` asks for no certificate.
    pub client_verification: Option<ClientVerification>,
}

impl TlsTermination {
    /// `files` offering `h2` and `http/1.1`: what `mesh-host run --tls-cert`
    /// serves.
    pub fn with_default_alpn(files: TlsFiles) -> Self {
        Self {
            certificate: files.into(),
            alpn_protocols: DEFAULT_ALPN.iter().map(|p| p.to_vec()).collect(),
            client_verification: None,
        }
    }

    /// Reads the certificate (files or inline PEM) and builds the rustls configuration.
    pub(super) fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certificate = &self.certificate;
        let certs = read_certs(&certificate.cert)?;
        let key = read_key(&certificate.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let invalid = |cause| TlsError::Invalid {
            cert: certificate.cert.name(),
            key: certificate.key.name(),
            cause,
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(invalid)?;
        let builder = match &self.client_verification {
            None => builder.with_no_client_auth(),
            Some(verification) => {
                builder.with_client_cert_verifier(client_verifier(verification, provider)?)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(invalid)?;
        config.alpn_protocols = self.alpn_protocols.clone();
        Ok(Arc::new(config))
    }
}

fn client_verifier(
    verification: &ClientVerification,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let source = &verification.trusted_ca;
    let failed = |cause: String| TlsError::ClientCa {
        source_name: source.name(),
        cause,
    };
    let pem = source.read()?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|error| failed(error.to_string()))?;
        roots
            .add(cert)
            .map_err(|error| failed(format!("not a usable CA certificate: {error}")))?;
    }
    if roots.is_empty() {
        return Err(failed("contains no PEM certificate".to_owned()));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if verification.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder.build().map_err(|error| failed(error.to_string()))?;
    if verification.subject_alt_names.is_empty() {
        return Ok(verifier);
    }
    let sans = verification.subject_alt_names.clone();
    Ok(Arc::new(SanClientVerifier::new(verifier, sans)))
}

fn read_certs(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = source.read()?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|cause| TlsError::Read {
            source_name: source.name(),
            cause,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(source.name()));
    }
    Ok(certs)
}

fn read_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = source.read()?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|cause| TlsError::Read {
            source_name: source.name(),
            cause,
        })?
        .ok_or_else(|| TlsError::NoKey(source.name()))
}
