//! Self-signed certificates for TLS tests, written to a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate and its key, as PEM files.
pub struct TestCert {
    _dir: TempDir,
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCert {
    /// Generates a fresh self-signed certificate for `localhost` and
    /// 127.0.0.1.
    pub fn generate() -> Self {
        Self::for_names(&["localhost", "127.0.0.1"])
    }

    /// Generates a fresh self-signed certificate for `names` (DNS names,
    /// `*.` wildcards or IP addresses).
    pub fn for_names(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).expect("certificate names");
        Self::self_signed(params)
    }

    /// Generates a fresh self-signed client certificate whose identity is
    /// the URI SAN `uri` (a SPIFFE id, say).
    pub fn for_uri(uri: &str) -> Self {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().expect("an ASCII URI"))];
        // Verifiers look issuers up by subject: several self-signed test identities in one
        // CA bundle must not share rcgen's default subject.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, uri);
        Self::self_signed(params)
    }

    /// Generates a fresh self-signed server certificate whose SANs are the URI `uri`, the DNS
    /// names `names` and 127.0.0.1, as a mesh workload's certificate with a DNS name too.
    pub fn for_identity(uri: &str, names: &[&str]) -> Self {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names =
            std::iter::once(rcgen::SanType::URI(uri.try_into().expect("an ASCII URI")))
                .chain(
                    names.iter().map(|name| {
                        rcgen::SanType::DnsName((*name).try_into().expect("a DNS name"))
                    }),
                )
                .chain(std::iter::once(rcgen::SanType::IpAddress(
                    std::net::Ipv4Addr::LOCALHOST.into(),
                )))
                .collect();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, uri);
        Self::self_signed(params)
    }

    fn self_signed(params: rcgen::CertificateParams) -> Self {
        let key_pair = rcgen::KeyPair::generate().expect("generate key");
        let certificate = params.self_signed(&key_pair).expect("generate certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certificate.pem()).expect("write cert");
        std::fs::write(&key, key_pair.serialize_pem()).expect("write key");
        Self {
            _dir: dir,
            cert,
            key,
            der: certificate.der().clone(),
            key_der: key_pair.serialize_der(),
        }
    }

    /// This certificate as PEM, for a CA bundle trusting several.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("read cert")
    }

    /// Connects to `addr` with TLS, trusting only this certificate and
    /// offering `alpn`; returns the stream and the protocol the server chose.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        alpn: &[&[u8]],
    ) -> (TlsStream<TcpStream>, Option<Vec<u8>>) {
        self.try_connect(addr, "localhost", alpn)
            .await
            .expect("TLS handshake")
    }

    /// Connects to `addr` with TLS sending `server_name` as SNI, trusting
    /// only this certificate and offering `alpn`. Fails when the server
    /// presents another certificate, or closes the connection.
    pub async fn try_connect(
        &self,
        addr: std::net::SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<Vec<u8>>)> {
        self.try_connect_as(addr, server_name, alpn, None).await
    }

    /// [`TestCert::try_connect`], presenting `client`'s certificate when the
    /// server asks for one.
    pub async fn try_connect_as(
        &self,
        addr: std::net::SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
        client: Option<&TestCert>,
    ) -> std::io::Result<(TlsStream<TcpStream>, Option<Vec<u8>>)> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust test cert");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
        let mut config = match client {
            None => config.with_no_client_auth(),
            Some(client) => config
                .with_client_auth_cert(
                    vec![client.der.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_der.clone())),
                )
                .map_err(std::io::Error::other)?,
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let stream = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await?;
        let chosen = stream.get_ref().1.alpn_protocol().map(|p| p.to_vec());
        Ok((stream, chosen))
    }
}
