//! A cluster's upstream TLS context as rustls configuration: trusted roots
//! (the cluster's CA, else the Mozilla roots), the name check (the
//! cluster's SAN matchers, else the SNI or endpoint host), optional client
//! certificate for mTLS, ALPN by upstream protocol, SNI.

use std::sync::Arc;

use mesh_xds::config::{DataSource, UpstreamProtocol, UpstreamTls as TlsConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;
use tokio_rustls::TlsConnector;

use super::connector::UpstreamTls;
use super::san_verifier::SanVerifier;

/// Why a cluster's TLS context cannot be used.
#[derive(Debug, Error)]
pub enum UpstreamTlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// PEM data holds nothing usable.
    #[error("{0}: no PEM {1} found")]
    Empty(String, &'static str),
    /// rustls refused the material.
    #[error("invalid TLS material: {0}")]
    Invalid(#[from] rustls::Error),
    /// `sni` is not a DNS name or IP address.
    #[error("sni {0:?} is not a valid server name")]
    Sni(String),
}

/// ALPN offered for a connection pool: `h2` only for the HTTP/2 pool,
/// else what the cluster's protocol allows.
pub(super) fn build(
    config: &TlsConfig,
    protocol: UpstreamProtocol,
    h2_pool: bool,
) -> Result<UpstreamTls, UpstreamTlsError> {
    let mut roots = RootCertStore::empty();
    match &config.validation_ca {
        Some(ca) => {
            for cert in certs(ca)? {
                roots.add(cert)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let builder = if config.subject_alt_names.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let sans = config.subject_alt_names.clone();
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SanVerifier::new(roots, sans, algorithms)))
    };
    let mut client = match &config.client_certificate {
        Some(pair) => {
            builder.with_client_auth_cert(certs(&pair.cert_chain)?, key(&pair.private_key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    client.alpn_protocols = if h2_pool {
        vec![b"h2".to_vec()]
    } else if !config.alpn_protocols.is_empty() {
        config
            .alpn_protocols
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect()
    } else {
        match protocol {
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Auto | UpstreamProtocol::UseDownstream => {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            }
        }
    };
    let sni = config
        .sni
        .as_ref()
        .map(|name| {
            ServerName::try_from(name.clone()).map_err(|_| UpstreamTlsError::Sni(name.clone()))
        })
        .transpose()?;
    Ok(UpstreamTls {
        connector: TlsConnector::from(Arc::new(client)),
        sni,
    })
}

fn read(source: &DataSource) -> Result<(Vec<u8>, String), UpstreamTlsError> {
    match source {
        DataSource::Inline(bytes) => Ok((bytes.to_vec(), "inline data".into())),
        DataSource::Filename(path) => std::fs::read(path)
            .map(|bytes| (bytes, path.display().to_string()))
            .map_err(|cause| UpstreamTlsError::Read {
                path: path.display().to_string(),
                cause,
            }),
    }
}

fn certs(source: &DataSource) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let (pem, name) = read(source)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|cause| UpstreamTlsError::Read {
            path: name.clone(),
            cause,
        })?;
    if certs.is_empty() {
        return Err(UpstreamTlsError::Empty(name, "certificate"));
    }
    Ok(certs)
}

fn key(source: &DataSource) -> Result<PrivateKeyDer<'static>, UpstreamTlsError> {
    let (pem, name) = read(source)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|cause| UpstreamTlsError::Read {
            path: name.clone(),
            cause,
        })?
        .ok_or(UpstreamTlsError::Empty(name, "private key"))
}
