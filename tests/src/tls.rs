//! Self-signed certificates for TLS tests, written to a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate for `localhost`/127.0.0.1 and its key, as PEM files.
pub struct TestCert {
    _dir: TempDir,
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    /// Generates a fresh self-signed certificate.
    pub fn generate() -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("generate certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
        Self {
            _dir: dir,
            cert,
            key,
            der: certified.cert.der().clone(),
        }
    }

    /// Connects to `addr` with TLS, trusting only this certificate and
    /// offering `alpn`; returns the stream and the protocol the server chose.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        alpn: &[&[u8]],
    ) -> (TlsStream<TcpStream>, Option<Vec<u8>>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust test cert");
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let stream = TcpStream::connect(addr).await.expect("connect");
        let stream = TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from("localhost").expect("server name"),
                stream,
            )
            .await
            .expect("TLS handshake");
        let chosen = stream.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        (stream, chosen)
    }
}
