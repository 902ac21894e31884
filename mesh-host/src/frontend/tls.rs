//! TLS termination of a filter chain: certificates, ALPN and client certificate verification,
//! loaded once into a rustls server configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// ALPN protocols `mesh-host run --tls-cert` offers, in preference order.
const DEFAULT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate chain and private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0} contains no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key file holds no private key.
    #[error("{0} contains no PEM private key")]
    NoKey(PathBuf),
    /// rustls rejected the pair (for example, key and certificate differ).
    #[error("invalid certificate/key pair ({cert}, {key}): {cause}")]
    Invalid {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
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
#[derive(Debug, Clone)]
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
}

/// Client certificate verification of a filter chain (Envoy's
/// `validation_context.trusted_ca` with `require_client_certificate`).
#[derive(Debug, Clone)]
pub struct ClientVerification {
    /// The CA bundle client certificates must chain to.
    pub trusted_ca: PemSource,
    /// Refuse clients that present no certificate. Without it a client may
    /// go without one, but a certificate it presents must verify.
    pub required: bool,
}

/// TLS termination of a filter chain: its certificate and the ALPN
/// protocols it offers.
#[derive(Debug, Clone)]
pub struct TlsTermination {
    /// The certificate chain and key.
    pub files: TlsFiles,
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
            files,
            alpn_protocols: DEFAULT_ALPN.iter().map(|p| p.to_vec()).collect(),
            client_verification: None,
        }
    }

    /// Reads the files and builds the rustls configuration.
    pub(super) fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let files = &self.files;
        let certs = read_certs(&files.cert)?;
        let key = read_key(&files.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let invalid = |cause| TlsError::Invalid {
            cert: files.cert.clone(),
            key: files.key.clone(),
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
    let pem = match source {
        PemSource::File(path) => read(path)?,
        PemSource::Inline(bytes) => bytes.to_vec(),
    };
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
    builder.build().map_err(|error| failed(error.to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        path: path.to_owned(),
        cause,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|cause| TlsError::Read {
            path: path.to_owned(),
            cause,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|cause| TlsError::Read {
            path: path.to_owned(),
            cause,
        })?
        .ok_or_else(|| TlsError::NoKey(path.to_owned()))
}
