//! `envoy.filters.network.tcp_proxy`: a listener that forwards every connection, bytes both
//! ways, to an endpoint of its cluster, closes it after `idle_timeout` without traffic, and
//! logs one line per connection. `connection_limit` closes connections past its maximum at
//! once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mesh_xds::config::TcpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::access_log::{AccessLogs, Downstream, LogRecord};
use crate::egress::EgressError;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// Bytes read from one side before they are written to the other.
const BUFFER: usize = 16 * 1024;

/// The snapshot in force, read once per connection: the cluster's endpoints come from it.
pub type CurrentSnapshot = Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>;

/// A bound TCP proxy listener, accepting until it is dropped or shut down.
pub struct RunningTcpProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl RunningTcpProxy {
    /// Starts accepting on `listener` for `config`.
    pub fn serve(
        listener: TcpListener,
        config: TcpProxy,
        snapshot: CurrentSnapshot,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<RunningTcpProxy> {
        let addr = listener.local_addr()?;
        let proxy = Arc::new(Proxy {
            logs: AccessLogs::open(&config.access_logs),
            config,
            snapshot,
            metrics,
            active: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, proxy));
        Ok(RunningTcpProxy { addr, accept })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections already forwarded run to their end.
    pub fn shutdown(self) {
        self.accept.abort();
    }
}

impl Drop for RunningTcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Proxy {
    config: TcpProxy,
    logs: AccessLogs,
    snapshot: CurrentSnapshot,
    metrics: Arc<Metrics>,
    active: AtomicU64,
}

/// Counts a connection as active while it lives.
struct Active<'a>(&'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let proxy = proxy.clone();
                tokio::spawn(async move { proxy.forward(stream, peer).await });
            }
            Err(error) => {
                // Out of descriptors or similar: wait rather than spin.
                tracing::warn!("TCP proxy accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Proxy {
    async fn forward(&self, downstream: TcpStream, peer: SocketAddr) {
        let active = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        let _active = Active(&self.active);
        if self.config.max_connections.is_some_and(|max| active > max) {
            tracing::debug!(%peer, "connection_limit reached; closing");
            return;
        }
        let local = downstream.local_addr().unwrap_or(peer);
        let mut record = LogRecord::connection(Downstream {
            peer,
            remote: peer,
            local,
            server_name: None,
        });
        let started = Instant::now();
        let cluster = self.config.cluster.pick(rand::random());
        record.upstream_cluster = Some(cluster.into());
        match self.connect(cluster).await {
            Ok(upstream) => {
                record.upstream_host = upstream
                    .peer_addr()
                    .ok()
                    .map(|addr| addr.to_string().into());
                let (received, sent) = relay(downstream, upstream, self.config.idle_timeout).await;
                record.bytes_received = received;
                record.bytes_sent = sent;
            }
            Err(failure) => {
                tracing::debug!(%peer, cluster, "TCP proxy cannot reach its cluster: {failure}");
                record.flags = Some(failure.flag());
            }
        }
        record.duration = started.elapsed();
        self.logs.write(&record, &self.metrics);
    }

    async fn connect(&self, cluster: &str) -> Result<TcpStream, ConnectFailure> {
        let snapshot = (self.snapshot)();
        let (endpoint, timeout) = snapshot
            .upstream
            .pick_endpoint(cluster)
            .map_err(ConnectFailure::NoEndpoint)?;
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(ConnectFailure::Connect(error.to_string())),
            Err(_) => Err(ConnectFailure::Connect(format!(
                "no connection within {timeout:?}"
            ))),
        }
    }
}

/// Why a connection could not be forwarded.
#[derive(Debug, thiserror::Error)]
enum ConnectFailure {
    /// The cluster is unknown or has no healthy endpoint.
    #[error(transparent)]
    NoEndpoint(EgressError),
    /// The endpoint refused or did not answer.
    #[error("upstream connection failed: {0}")]
    Connect(String),
}

impl ConnectFailure {
    /// Envoy's response flag for it.
    fn flag(&self) -> &'static str {
        match self {
            ConnectFailure::NoEndpoint(EgressError::UnknownCluster(_)) => "NC",
            ConnectFailure::NoEndpoint(_) => "UH",
            ConnectFailure::Connect(_) => "UF",
        }
    }
}

/// Copies bytes both ways until both sides have finished (each end-of-stream is passed on as
/// a write shutdown) or nothing moved for `idle`; returns the bytes received from downstream
/// and sent to it.
async fn relay(
    mut downstream: TcpStream,
    mut upstream: TcpStream,
    idle: Option<Duration>,
) -> (u64, u64) {
    let (mut down_read, mut down_write) = downstream.split();
    let (mut up_read, mut up_write) = upstream.split();
    let mut from_down = vec![0u8; BUFFER];
    let mut from_up = vec![0u8; BUFFER];
    let (mut received, mut sent) = (0u64, 0u64);
    let (mut down_open, mut up_open) = (true, true);
    while down_open || up_open {
        let quiet = async {
            match idle {
                Some(idle) => tokio::time::sleep(idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = down_read.read(&mut from_down), if down_open => match read {
                Ok(0) | Err(_) => {
                    down_open = false;
                    let _ = up_write.shutdown().await;
                }
                Ok(n) => {
                    if up_write.write_all(&from_down[..n]).await.is_err() {
                        break;
                    }
                    received += n as u64;
                }
            },
            read = up_read.read(&mut from_up), if up_open => match read {
                Ok(0) | Err(_) => {
                    up_open = false;
                    let _ = down_write.shutdown().await;
                }
                Ok(n) => {
                    if down_write.write_all(&from_up[..n]).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                }
            },
            () = quiet => {
                tracing::debug!("TCP proxy connection idle; closing");
                break;
            }
        }
    }
    (received, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test fixture");
        let addr = listener.local_addr().expect("test fixture");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn relayed(idle: Option<Duration>) -> (SocketAddr, JoinHandle<(u64, u64)>) {
        let upstream_addr = echo_server().await;
        let front = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test fixture");
        let addr = front.local_addr().expect("test fixture");
        let task = tokio::spawn(async move {
            let (downstream, _) = front.accept().await.expect("test fixture");
            let upstream = TcpStream::connect(upstream_addr)
                .await
                .expect("test fixture");
            relay(downstream, upstream, idle).await
        });
        (addr, task)
    }

    #[tokio::test]
    async fn bytes_round_trip_and_both_directions_are_counted() {
        let (addr, task) = relayed(None).await;
        let mut client = TcpStream::connect(addr).await.expect("test fixture");
        client.write_all(b"ping pong").await.expect("test fixture");
        client.shutdown().await.expect("test fixture");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("test fixture");
        assert_eq!(back, b"ping pong");
        assert_eq!(task.await.expect("test fixture"), (9, 9));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let (addr, task) = relayed(Some(Duration::from_millis(100))).await;
        let mut client = TcpStream::connect(addr).await.expect("test fixture");
        client.write_all(b"x").await.expect("test fixture");
        let mut back = Vec::new();
        // The relay closes both sides once nothing moves: the read ends instead of hanging.
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut back))
            .await
            .expect("closed by the idle timeout")
            .expect("test fixture");
        assert_eq!(back, b"x");
        assert_eq!(task.await.expect("test fixture"), (1, 1));
    }
}
