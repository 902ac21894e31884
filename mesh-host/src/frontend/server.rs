//! Accepting connections and serving them: the TLS handshake and filter chain choice, hyper's
//! auto-negotiating HTTP/1.1 + HTTP/2 connection, and admission of each request (the checks,
//! header rewrites and stream timers every request passes before the inbound pipeline).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::header::{self, HeaderName};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use mesh_policies::grpc::is_grpc_content_type;
use rustls::ServerConfig;
use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use super::chains::{ChainSelection, Transport};
use super::http_settings::{HANDSHAKE_TIMEOUT, HttpSettings};
use super::linger::Lingering;
use super::stream_timeouts::StreamTimer;
use super::{
    Dispatch, Failure, FrontEndConfig, FrontEndError, ListenerConfig, RequestMeta, peer_identity,
};
use crate::body::{ResponseBody, limited_request_body};

const LISTEN_BACKLOG: u32 = 1024;
const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A filter chain ready to serve: certificate loaded, connection builder
/// set up for its codec and limits.
struct Chain {
    index: usize,
    tls: Option<Arc<ServerConfig>>,
    builder: auto::Builder<TokioExecutor>,
    http: HttpSettings,
}

/// A front end whose socket is bound but not yet serving.
pub struct BoundFrontEnd {
    listener: TcpListener,
    local: SocketAddr,
    chains: Vec<Chain>,
    selection: ChainSelection,
    inspects_tls: bool,
}

impl BoundFrontEnd {
    /// Binds `config.listen` with one filter chain and prepares TLS if
    /// configured.
    pub fn bind(config: &FrontEndConfig) -> Result<Self, FrontEndError> {
        Self::bind_listener(&ListenerConfig::from(config))
    }

    /// Binds `config.listen` and prepares every filter chain (reading the
    /// certificates, so a bad one fails here rather than per connection).
    pub fn bind_listener(config: &ListenerConfig) -> Result<Self, FrontEndError> {
        let chains = config
            .chains()
            .enumerate()
            .map(|(index, chain)| {
                Ok(Chain {
                    index,
                    tls: chain
                        .tls
                        .as_ref()
                        .map(|tls| tls.server_config())
                        .transpose()?,
                    builder: chain.http.connection_builder(),
                    http: chain.http.clone(),
                })
            })
            .collect::<Result<Vec<_>, FrontEndError>>()?;
        let bind_error = |cause| FrontEndError::Bind {
            addr: config.listen,
            cause,
        };
        let socket = match config.listen {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(config.listen).map_err(bind_error)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local,
            chains,
            selection: ChainSelection::new(config),
            inspects_tls: config.inspects_tls,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts accepting connections and handing requests to `dispatch`.
    pub fn serve(self, dispatch: Arc<dyn Dispatch>) -> RunningFrontEnd {
        let (stop, stopped) = oneshot::channel();
        let local = self.local;
        let task = tokio::spawn(accept_loop(self, dispatch, stopped));
        RunningFrontEnd {
            local,
            stop: Some(stop),
            task,
        }
    }
}

/// A serving front end.
pub struct RunningFrontEnd {
    local: SocketAddr,
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
}

impl RunningFrontEnd {
    /// The address being served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, sends HTTP/2 GOAWAY and closes idle HTTP/1
    /// connections, and waits up to `drain` for in-flight requests.
    pub async fn shutdown(mut self, drain: Duration) {
        if let Some(stop) = self.stop.take() {
            // The loop is gone only if it already ended; nothing to stop then.
            let _ = stop.send(drain);
        }
        if let Err(error) = (&mut self.task).await {
            tracing::error!(addr = %self.local, "front end task failed: {error}");
        }
    }
}

/// What every connection of a listener shares.
struct Listening {
    chains: Vec<Arc<ChainContext>>,
    selection: ChainSelection,
    inspects_tls: bool,
}

/// What every request of a chain's connections shares.
struct ChainContext {
    chain: Chain,
    dispatch: Arc<dyn Dispatch>,
    local: SocketAddr,
}

async fn accept_loop(
    bound: BoundFrontEnd,
    dispatch: Arc<dyn Dispatch>,
    mut stopped: oneshot::Receiver<Duration>,
) {
    let graceful = GracefulShutdown::new();
    let listening = Arc::new(Listening {
        chains: bound
            .chains
            .into_iter()
            .map(|chain| {
                Arc::new(ChainContext {
                    chain,
                    dispatch: dispatch.clone(),
                    local: bound.local,
                })
            })
            .collect(),
        selection: bound.selection,
        inspects_tls: bound.inspects_tls,
    });
    let drain = loop {
        tokio::select! {
            drain = &mut stopped => break drain.unwrap_or_default(),
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        listening.clone(),
                        graceful.watcher(),
                    ));
                }
                Err(error) => {
                    // Running out of descriptors is transient; back off
                    // instead of spinning on the error.
                    tracing::warn!(addr = %bound.local, "accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    };
    drop(bound.listener);
    tracing::info!(addr = %bound.local, ?drain, connections = graceful.count(), "front end draining");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(addr = %bound.local, "drain timeout reached; closing remaining connections");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening>,
    watcher: Watcher,
) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let tls = match listening.selection.transport() {
        Transport::Plaintext => false,
        Transport::Tls => true,
        Transport::Sniffed => match starts_with_tls(&stream).await {
            Some(tls) => tls,
            None => return,
        },
    };
    let stream = Lingering::new(stream);
    if !tls {
        let Some(chain) = listening.selection.select(false, None) else {
            tracing::debug!(%peer, "no plaintext filter chain; closing the connection");
            return;
        };
        let connection = Connection {
            peer,
            tls: false,
            server_name: None,
            peer_principal: None,
            peer_certificate: None,
        };
        return serve_http(stream, connection, listening.chains[chain].clone(), watcher).await;
    }
    let handshake = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        let server_name = start.client_hello().server_name().map(str::to_owned);
        let Some(chain) = listening.selection.select(true, server_name.as_deref()) else {
            tracing::debug!(%peer, ?server_name, "no filter chain matches the server name; closing the connection");
            return Ok(None);
        };
        let context = listening.chains[chain].clone();
        let Some(config) = context.chain.tls.clone() else {
            return Ok(None);
        };
        let stream = start.into_stream(config).await?;
        Ok::<_, std::io::Error>(Some((stream, context, server_name)))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(Some((stream, context, server_name)))) => {
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
            serve_http(stream, connection, context, watcher).await
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Whether a connection opens with a TLS handshake record, as Envoy's TLS
/// inspector tells; `None` when the client sent nothing in time.
async fn starts_with_tls(stream: &TcpStream) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0] == TLS_HANDSHAKE_RECORD),
        _ => None,
    }
}

/// What a request inherits from its connection.
#[derive(Debug, Clone)]
struct Connection {
    peer: SocketAddr,
    tls: bool,
    /// The server name the TLS client asked for.
    server_name: Option<Arc<str>>,
    /// The verified client certificate's principal.
    peer_principal: Option<Arc<str>>,
    /// The verified client certificate (DER).
    peer_certificate: Option<Arc<[u8]>>,
}

async fn serve_http<I>(io: I, connection: Connection, context: Arc<ChainContext>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let service = request_service(context.clone(), connection);
    let connection = context
        .chain
        .builder
        .serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, "connection ended: {error}");
    }
}

fn request_service(
    context: Arc<ChainContext>,
    connection: Connection,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<ResponseBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request| {
        let context = context.clone();
        let connection = connection.clone();
        async move {
            let mut response = admit(&context, request, connection).await;
            // Envoy writes `server` on every response, its own answers too.
            context
                .chain
                .http
                .server_header
                .apply(response.headers_mut());
            Ok(response)
        }
    })
}

/// The checks and header rewrites every request passes before any workload
/// sees it, and the stream timers that run while it is served.
async fn admit(
    context: &Arc<ChainContext>,
    request: http::Request<Incoming>,
    connection: Connection,
) -> http::Response<ResponseBody> {
    let Connection {
        peer,
        tls,
        server_name,
        peer_principal,
        peer_certificate,
    } = connection;
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(is_grpc_content_type);
    if grpc && request.version() < http::Version::HTTP_2 {
        return Failure::GrpcNeedsHttp2.response(true);
    }
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        return Failure::BadRequest("the request has no Host header or :authority".into())
            .response(grpc);
    }
    let settings = &context.chain.http;
    let limit = settings.limits.max_request_body_bytes;
    if declared_length(&request).is_some_and(|length| length > limit as u64) {
        return Failure::PayloadTooLarge.response(grpc);
    }
    let (mut parts, body) = request.into_parts();
    // Envoy's default `forward_client_cert_details: SANITIZE`: a client must
    // not hand a workload a certificate identity it does not hold.
    parts.headers.remove(X_FORWARDED_CLIENT_CERT);
    let remote_ip = match &settings.forwarding {
        Some(forwarding) => forwarding.apply(&mut parts.headers, peer.ip(), tls),
        None => peer.ip(),
    };
    let meta = RequestMeta {
        peer,
        remote_ip,
        local: context.local,
        tls,
        server_name,
        peer_principal,
        peer_certificate,
        grpc,
        filter_chain: context.chain.index,
    };
    let http1 = parts.version < http::Version::HTTP_2;
    let timer = StreamTimer::start(settings.timeouts);
    let body = limited_request_body(timer.watch_request(body), limit);
    let request = http::Request::from_parts(parts, body);
    match timer
        .guard(context.dispatch.clone().dispatch(request, meta))
        .await
    {
        Ok(response) => response,
        Err(timeout) => {
            let failure = Failure::from(timeout);
            tracing::info!(%peer, status = %failure.status(), "{timeout}");
            let mut response = failure.response(grpc);
            if http1 && failure.status() == http::StatusCode::REQUEST_TIMEOUT {
                // The rest of the request may still be on its way, so the
                // connection cannot carry another one (Envoy closes it too).
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

fn declared_length(request: &http::Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
