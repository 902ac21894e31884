//! Opening connections to one upstream endpoint: DNS, TCP with the cluster's
//! connect timeout, upstream TLS with ALPN, and the cluster's connection
//! circuit breaker. hyper-util's pooled client calls the connector when it
//! has no idle connection to reuse.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mesh_xds::config::HostPort;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::breakers::{ConnectionPermit, Limits};
use super::error::ConnectError;

/// How connections to a cluster's endpoints are made.
#[derive(Clone)]
pub(super) struct Transport {
    pub(super) connect_timeout: Duration,
    pub(super) tls: Option<UpstreamTls>,
    pub(super) limits: Arc<Limits>,
}

/// A cluster's upstream TLS: the client configuration (roots, client
/// certificate, ALPN) and the name to send as SNI and verify.
#[derive(Clone)]
pub(super) struct UpstreamTls {
    pub(super) connector: TlsConnector,
    /// The cluster's `sni`; the endpoint's host when unset.
    pub(super) sni: Option<ServerName<'static>>,
}

/// Connects to exactly one endpoint, whatever URI the pooled client passes:
/// the URI's authority is the request's (what the upstream routes on), not
/// where the connection goes.
#[derive(Clone)]
pub(super) struct EndpointConnector {
    pub(super) address: HostPort,
    pub(super) transport: Transport,
    /// The endpoint's own connection limit (`per_host_thresholds`).
    pub(super) per_host: Option<Arc<Semaphore>>,
}

impl tower::Service<http::Uri> for EndpointConnector {
    type Response = TokioIo<UpstreamStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect().await.map(TokioIo::new) })
    }
}

impl EndpointConnector {
    /// A connection to the endpoint, counted by the breakers.
    pub(super) async fn connect(self) -> Result<UpstreamStream, ConnectError> {
        // Waiting here is Envoy's "pending request": every connection is in
        // use and the cluster (or the endpoint) may open no more.
        let permit = self
            .transport
            .limits
            .connection(self.per_host.as_ref())
            .await?;
        let timeout = self.transport.connect_timeout;
        let tcp = tokio::time::timeout(timeout, self.tcp())
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        // Request/response latency matters more than segment count here.
        tcp.set_nodelay(true)
            .map_err(|error| ConnectError::Io(Arc::new(error)))?;
        let Some(tls) = &self.transport.tls else {
            return Ok(UpstreamStream {
                inner: Inner::Tcp(tcp),
                h2: false,
                _permit: permit,
            });
        };
        let name = match &tls.sni {
            Some(name) => name.clone(),
            None => ServerName::try_from(self.address.host.clone())
                .map_err(|_| ConnectError::InvalidServerName(self.address.host.clone()))?,
        };
        let stream = tokio::time::timeout(timeout, tls.connector.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
            .map_err(|error| ConnectError::Tls(Arc::new(error)))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(UpstreamStream {
            inner: Inner::Tls(Box::new(stream)),
            h2,
            _permit: permit,
        })
    }

    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let HostPort { host, port } = &self.address;
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return TcpStream::connect((ip, *port))
                .await
                .map_err(|error| ConnectError::Io(Arc::new(error)));
        }
        // DNS endpoints are resolved per connection (LOGICAL_DNS style), so a
        // changed record is picked up by the next connection.
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|error| ConnectError::Dns(host.clone(), Arc::new(error)))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(match last {
            Some(error) => ConnectError::Io(Arc::new(error)),
            None => ConnectError::Dns(
                host.clone(),
                Arc::new(io::Error::new(io::ErrorKind::NotFound, "no addresses")),
            ),
        })
    }
}

/// An upstream connection, plain or TLS. It holds the cluster's connection
/// permit, so the breaker counts it until the pool drops it.
pub(super) struct UpstreamStream {
    inner: Inner,
    h2: bool,
    _permit: ConnectionPermit,
}

enum Inner {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tcp(stream) => stream.is_write_vectored(),
            Inner::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Inner::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
