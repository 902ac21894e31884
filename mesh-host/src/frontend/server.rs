use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use mesh_policies::grpc::is_grpc_content_type;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::{Dispatch, Failure, FrontEndConfig, FrontEndError, RequestLimits, RequestMeta};
use crate::body::{ResponseBody, limited_request_body};

/// hyper's HTTP/1 read buffer cannot be smaller than this.
const MIN_HTTP1_BUFFER: usize = 8192;
/// How long a client may take to send its request head or TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
const LISTEN_BACKLOG: u32 = 1024;

/// A front end whose socket is bound but not yet serving.
pub struct BoundFrontEnd {
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: RequestLimits,
}

impl BoundFrontEnd {
    /// Binds `config.listen` and prepares TLS if configured.
    pub fn bind(config: &FrontEndConfig) -> Result<Self, FrontEndError> {
        let tls = config
            .tls
            .as_ref()
            .map(|files| files.acceptor())
            .transpose()?;
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
            tls,
            limits: config.limits,
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

fn connection_builder(limits: &RequestLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(limits.max_request_header_bytes.max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn accept_loop(
    bound: BoundFrontEnd,
    dispatch: Arc<dyn Dispatch>,
    mut stopped: oneshot::Receiver<Duration>,
) {
    let builder = Arc::new(connection_builder(&bound.limits));
    let graceful = GracefulShutdown::new();
    let context = Arc::new(ConnectionContext {
        dispatch,
        limits: bound.limits,
        local: bound.local,
    });
    let drain = loop {
        tokio::select! {
            drain = &mut stopped => break drain.unwrap_or_default(),
            accepted = bound.listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        bound.tls.clone(),
                        builder.clone(),
                        context.clone(),
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

struct ConnectionContext {
    dispatch: Arc<dyn Dispatch>,
    limits: RequestLimits,
    local: SocketAddr,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    context: Arc<ConnectionContext>,
    watcher: Watcher,
) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let service = request_service(context, peer, false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, "connection ended: {error}");
            }
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {error}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = request_service(context, peer, true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, "connection ended: {error}");
            }
        }
    }
}

fn request_service(
    context: Arc<ConnectionContext>,
    peer: SocketAddr,
    tls: bool,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<ResponseBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request| {
        let context = context.clone();
        async move { Ok(admit(context, request, peer, tls).await) }
    })
}

/// The checks every request passes before any workload sees it.
async fn admit(
    context: Arc<ConnectionContext>,
    request: http::Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> http::Response<ResponseBody> {
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
    let limit = context.limits.max_request_body_bytes;
    if declared_length(&request).is_some_and(|length| length > limit as u64) {
        return Failure::PayloadTooLarge.response(grpc);
    }
    let meta = RequestMeta {
        peer,
        local: context.local,
        tls,
        grpc,
    };
    let request = request.map(|body| limited_request_body(body, limit));
    context.dispatch.clone().dispatch(request, meta).await
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
