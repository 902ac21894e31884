//! One client connection from accept to close: its first bytes (TLS or not, then HTTP/2
//! or HTTP/1) within the detection timeout (Envoy's `listener_filters_timeout`), the TLS
//! handshake and filter chain choice, the codec behind its guard, and the connection's
//! timers: idle timeout, maximum duration, and the listener's drain.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

use super::admission::{ActiveStreams, ChainContext, Connection, request_service};
use super::chains::{ChainSelection, Transport};
use super::connection_limits::Admission;
use super::detect::{Prefixed, Protocol, sniff};
use super::drain::{DrainWatch, Phase};
use super::http_settings::HANDSHAKE_TIMEOUT;
use super::http1_framing::RequestStream;
use super::http1_guard::Http1Guard;
use super::http2_guard::Http2Guard;
use super::linger::Lingering;
use super::peer_identity;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How a listener tells what a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// How long a new connection may take to send enough to tell its protocol (and, on
    /// TLS, its whole client hello): Envoy's `listener_filters_timeout`, 15 s by default.
    /// `None` waits for ever.
    pub timeout: Option<Duration>,
    /// When the timeout passes, serve the connection as plaintext HTTP/1 instead of
    /// closing it (`continue_on_listener_filters_timeout`).
    pub continue_on_timeout: bool,
}

impl Default for Detection {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(15)),
            continue_on_timeout: false,
        }
    }
}

/// A filter chain ready to serve: its context, certificate and codec builders.
pub(super) struct Chain {
    pub(super) context: Arc<ChainContext>,
    /// Swapped in place when the chain's certificates change (SDS rotation): a
    /// handshake takes the one in force when it starts.
    pub(super) tls: Option<Arc<ArcSwap<ServerConfig>>>,
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
}

/// What every connection of a listener shares.
pub(super) struct Listening {
    pub(super) chains: Vec<Arc<Chain>>,
    pub(super) selection: ChainSelection,
    pub(super) inspects_tls: bool,
    pub(super) detection: Detection,
    pub(super) drain: DrainWatch,
}

/// Serves one accepted connection until it closes.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening>,
    admission: Admission,
) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let deadline = listening
        .detection
        .timeout
        .map(|timeout| Instant::now() + timeout);
    let tls = match listening.selection.transport() {
        Transport::Plaintext => false,
        Transport::Tls => true,
        Transport::Sniffed => {
            let mut first = [0u8; 1];
            tokio::select! {
                peeked = within(deadline, stream.peek(&mut first)) => match peeked {
                    Some(Ok(1)) => first[0] == TLS_HANDSHAKE_RECORD,
                    Some(_) => return,
                    None if listening.detection.continue_on_timeout => false,
                    None => return timed_out(peer),
                },
                () = admission.evicted() => return evicted(peer),
            }
        }
    };
    let stream = Lingering::new(stream);
    let detected = tokio::select! {
        detected = async {
            if tls {
                handshake(stream, peer, &listening, deadline).await
            } else {
                let chain = listening.selection.select(false, None).or_else(|| {
                    tracing::debug!(%peer, "no plaintext filter chain; closing the connection");
                    None
                })?;
                let connection = Connection {
                    peer,
                    tls: false,
                    server_name: None,
                    peer_principal: None,
                    peer_certificate: None,
                };
                detect(stream, connection, listening.chains[chain].clone(), &listening, deadline).await
            }
        } => detected,
        () = admission.evicted() => return evicted(peer),
        () = closed(listening.drain.clone()) => return,
    };
    let Some(Detected {
        io,
        protocol,
        connection,
        chain,
    }) = detected
    else {
        return;
    };
    admission.detected();
    let drain = listening.drain.clone();
    match io {
        Transported::Plain(io) => drive(io, protocol, connection, &chain, drain).await,
        Transported::Tls(io) => drive(*io, protocol, connection, &chain, drain).await,
    }
}

/// Resolves when the listener drops its connections.
async fn closed(mut drain: DrainWatch) {
    let mut phase = drain.phase();
    while phase != Phase::Closed {
        phase = drain.changed().await;
    }
}

fn timed_out(peer: SocketAddr) {
    tracing::debug!(%peer, "nothing usable arrived within the detection timeout; closing");
}

fn evicted(peer: SocketAddr) {
    tracing::debug!(%peer, "closing a connection that sent nothing, to make room for a new one");
}

/// `future` before `deadline`; `None` when the deadline passed first.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

type TlsIo = tokio_rustls::server::TlsStream<Lingering>;

enum Transported {
    Plain(Prefixed<Lingering>),
    Tls(Box<Prefixed<TlsIo>>),
}

/// A connection whose protocol is known.
struct Detected {
    io: Transported,
    protocol: Protocol,
    connection: Connection,
    chain: Arc<Chain>,
}

async fn handshake(
    stream: Lingering,
    peer: SocketAddr,
    listening: &Listening,
    deadline: Option<Instant>,
) -> Option<Detected> {
    let start = match within(
        deadline,
        LazyConfigAcceptor::new(Acceptor::default(), stream),
    )
    .await
    {
        Some(Ok(start)) => start,
        Some(Err(error)) => {
            tracing::debug!(%peer, "TLS client hello unusable: {error}");
            return None;
        }
        None => {
            timed_out(peer);
            return None;
        }
    };
    let server_name = start.client_hello().server_name().map(str::to_owned);
    let Some(index) = listening.selection.select(true, server_name.as_deref()) else {
        tracing::debug!(%peer, ?server_name, "no filter chain matches the server name; closing the connection");
        return None;
    };
    let chain = listening.chains[index].clone();
    let config = chain.tls.as_ref()?.load_full();
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%peer, "TLS handshake failed: {error}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let certificates = stream.get_ref().1.peer_certificates();
    let connection = Connection {
        peer,
        tls: true,
        server_name: server_name
            .filter(|_| listening.inspects_tls)
            .map(Arc::from),
        peer_principal: certificates.and_then(peer_identity::principal),
        peer_certificate: certificates
            .and_then(|chain| chain.first())
            .map(|leaf| Arc::from(leaf.as_ref())),
    };
    // ALPN is a client's wish; the preface tells what it speaks.
    let deadline = listening
        .detection
        .timeout
        .map(|timeout| Instant::now() + timeout);
    detect(stream, connection, chain, listening, deadline).await
}

trait IntoTransported {
    fn into_transported(self) -> Transported;
}

impl IntoTransported for Prefixed<Lingering> {
    fn into_transported(self) -> Transported {
        Transported::Plain(self)
    }
}

impl IntoTransported for Prefixed<TlsIo> {
    fn into_transported(self) -> Transported {
        Transported::Tls(Box::new(self))
    }
}

async fn detect<I>(
    mut io: I,
    connection: Connection,
    chain: Arc<Chain>,
    listening: &Listening,
    deadline: Option<Instant>,
) -> Option<Detected>
where
    I: AsyncRead + Unpin,
    Prefixed<I>: IntoTransported,
{
    let peer = connection.peer;
    let mut seen = Vec::new();
    let protocol = match within(deadline, sniff(&mut io, &mut seen)).await {
        Some(Ok(Some(protocol))) => protocol,
        Some(Ok(None) | Err(_)) => return None,
        None if listening.detection.continue_on_timeout => Protocol::Http1,
        None => {
            timed_out(peer);
            return None;
        }
    };
    if !chain.context.http.serves(protocol == Protocol::Http2) {
        tracing::debug!(%peer, ?protocol, "the filter chain's codec_type does not serve it; closing");
        return None;
    }
    Some(Detected {
        io: Prefixed::new(seen, io).into_transported(),
        protocol,
        connection,
        chain,
    })
}

async fn drive<I>(
    io: I,
    protocol: Protocol,
    connection: Connection,
    chain: &Chain,
    drain: DrainWatch,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let settings = &chain.context.http;
    let streams = ActiveStreams::new();
    let service = request_service(
        chain.context.clone(),
        connection,
        streams.clone(),
        drain.clone(),
    );
    match protocol {
        Protocol::Http1 => {
            let requests = RequestStream::new(
                settings.http1_rules,
                settings.limits.max_request_header_bytes,
            );
            let guard = Http1Guard::new(
                io,
                requests,
                settings.request_headers_timeout,
                settings.server_header.clone(),
                peer,
            );
            let served = chain.http1.serve_connection(TokioIo::new(guard), service);
            let finish = |served: Pin<&mut _>| {
                http1::Connection::graceful_shutdown(served);
            };
            run(served, finish, false, chain, &streams, drain, peer).await;
        }
        Protocol::Http2 => {
            let guard = Http2Guard::new(io, settings.http2_limits, peer);
            let served = chain.http2.serve_connection(TokioIo::new(guard), service);
            let finish = |served: Pin<&mut _>| http2::Connection::graceful_shutdown(served);
            run(served, finish, true, chain, &streams, drain, peer).await;
        }
    }
}

/// Serves until the connection ends, asking it to finish when it has been idle too long,
/// has lived too long, or its listener drains.
async fn run<C, F>(
    connection: C,
    graceful: F,
    http2: bool,
    chain: &Chain,
    streams: &ActiveStreams,
    mut drain: DrainWatch,
    peer: SocketAddr,
) where
    C: Future<Output = hyper::Result<()>>,
    F: Fn(Pin<&mut C>),
{
    let settings = &chain.context.http;
    let mut connection = pin!(connection);
    let end_of_life = settings
        .max_connection_duration
        .map(|duration| Instant::now() + duration);
    let mut finishing = false;
    let mut phase = drain.phase();
    loop {
        // HTTP/1 connections stay open while requests are discouraged: a request may
        // already be on its way, and its response will say `connection: close`.
        let finish = phase >= Phase::Closing || (http2 && phase >= Phase::Discouraging);
        if phase == Phase::Closed {
            tracing::debug!(%peer, "drain timeout passed; dropping the connection");
            return;
        }
        if finish && !finishing {
            graceful(connection.as_mut());
            finishing = true;
        }
        let idle = async {
            match settings.idle_timeout {
                Some(idle) if !finishing => streams.idle_for(idle).await,
                _ => std::future::pending().await,
            }
        };
        let old = async {
            match end_of_life {
                Some(end) if !finishing => tokio::time::sleep_until(end).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, "connection ended: {error}");
                }
                return;
            }
            next = drain.changed() => phase = next,
            () = idle => {
                tracing::debug!(%peer, "idle timeout; closing the connection");
                graceful(connection.as_mut());
                finishing = true;
            }
            () = old => {
                tracing::debug!(%peer, "max_connection_duration reached; closing the connection");
                graceful(connection.as_mut());
                finishing = true;
            }
        }
    }
}
