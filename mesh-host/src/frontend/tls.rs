use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
}

impl TlsTermination {
    /// `files` offering `h2` and `http/1.1`: what `mesh-host run --tls-cert`
    /// serves.
    pub fn with_default_alpn(files: TlsFiles) -> Self {
        Self {
            files,
            alpn_protocols: DEFAULT_ALPN.iter().map(|p| p.to_vec()).collect(),
        }
    }

    /// Reads the files and builds the rustls configuration.
    pub(super) fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let files = &self.files;
        let certs = read_certs(&files.cert)?;
        let key = read_key(&files.key)?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
                .map_err(|cause| TlsError::Invalid {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    cause,
                })?;
        config.alpn_protocols = self.alpn_protocols.clone();
        Ok(Arc::new(config))
    }
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
