//! The listening socket: binding it, accepting connections under the connection caps,
//! and draining it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::admission::ChainContext;
use super::chains::ChainSelection;
use super::connection::{self, Chain, Listening};
use super::connection_limits::ListenerConnections;
use super::drain::{DrainPlan, DrainWatch, Phase};
use super::{Dispatch, FrontEndConfig, FrontEndError, ListenerConfig};

const LISTEN_BACKLOG: u32 = 1024;
/// How often a failing `accept` is logged at most.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// A chain's TLS configuration, replaced in place when its certificates change.
type SwappableTls = Arc<ArcSwap<rustls::ServerConfig>>;

/// A filter chain whose certificate is loaded, waiting for its dispatcher.
struct PreparedChain {
    tls: Option<SwappableTls>,
    http: super::HttpSettings,
}

/// A front end whose socket is bound but not yet serving.
pub struct BoundFrontEnd {
    listener: TcpListener,
    local: SocketAddr,
    chains: Vec<PreparedChain>,
    selection: ChainSelection,
    config: ListenerConfig,
    connections: Arc<ListenerConnections>,
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
            .map(|chain| {
                Ok(PreparedChain {
                    tls: chain
                        .tls
                        .as_ref()
                        .map(|tls| tls.server_config().map(|c| Arc::new(ArcSwap::new(c))))
                        .transpose()?,
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
            connections: ListenerConnections::new(
                config.connections.max_connections,
                config.connections.global.clone(),
            ),
            config: config.clone(),
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
        let certificates = self.chains.iter().map(|chain| chain.tls.clone()).collect();
        let task = tokio::spawn(accept_loop(self, dispatch, stopped));
        RunningFrontEnd {
            local,
            certificates,
            stop: Some(stop),
            task,
        }
    }
}

/// A serving front end.
pub struct RunningFrontEnd {
    local: SocketAddr,
    /// Each chain's TLS configuration (`None`: plaintext), in chain order.
    certificates: Vec<Option<SwappableTls>>,
    stop: Option<oneshot::Sender<DrainPlan>>,
    task: JoinHandle<()>,
}

impl RunningFrontEnd {
    /// The address being served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Takes the certificates of `config`, whose chains must be the running ones (same
    /// order, same TLS or plaintext): connections accepted from now on handshake with them,
    /// open connections keep theirs. Every certificate is loaded before any is replaced, so
    /// an unusable one changes nothing.
    pub fn update_certificates(&self, config: &ListenerConfig) -> Result<(), FrontEndError> {
        let loaded = config
            .chains()
            .map(|chain| {
                chain
                    .tls
                    .as_ref()
                    .map(|tls| tls.server_config())
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let same_shape = loaded.len() == self.certificates.len()
            && loaded
                .iter()
                .zip(&self.certificates)
                .all(|(new, old)| new.is_some() == old.is_some());
        if !same_shape {
            return Err(FrontEndError::Invalid(format!(
                "listener on {}: certificates can only be replaced on the same filter chains",
                self.local
            )));
        }
        for (new, slot) in loaded.into_iter().zip(&self.certificates) {
            if let (Some(new), Some(slot)) = (new, slot) {
                slot.store(new);
            }
        }
        Ok(())
    }

    /// Drains the listener as `plan` says and returns when every connection is closed.
    pub async fn shutdown(mut self, plan: DrainPlan) {
        if let Some(stop) = self.stop.take() {
            // The loop is gone only if it already ended; nothing to stop then.
            let _ = stop.send(plan);
        }
        if let Err(error) = (&mut self.task).await {
            tracing::error!(addr = %self.local, "front end task failed: {error}");
        }
    }
}

async fn accept_loop(
    bound: BoundFrontEnd,
    dispatch: Arc<dyn Dispatch>,
    mut stopped: oneshot::Receiver<DrainPlan>,
) {
    let (phase, drain) = DrainWatch::new();
    let listening = Arc::new(Listening {
        chains: bound
            .chains
            .into_iter()
            .enumerate()
            .map(|(index, chain)| {
                Arc::new(Chain {
                    http1: chain.http.http1_builder(),
                    http2: chain.http.http2_builder(),
                    tls: chain.tls,
                    context: Arc::new(ChainContext {
                        index,
                        http: chain.http,
                        dispatch: dispatch.clone(),
                        local: bound.local,
                    }),
                })
            })
            .collect(),
        selection: bound.selection,
        inspects_tls: bound.config.inspects_tls,
        detection: bound.config.connections.detection,
        drain,
    });
    let mut acceptor = Acceptor {
        listener: Some(bound.listener),
        local: bound.local,
        listening,
        connections: bound.connections,
        errors: AcceptErrors::default(),
    };
    let plan = loop {
        tokio::select! {
            plan = &mut stopped => break plan.unwrap_or(DrainPlan {
                keep_accepting: false,
                discourage_for: Duration::ZERO,
                finish_within: Duration::ZERO,
            }),
            () = acceptor.accept_one() => {}
        }
    };
    acceptor.drain(plan, &phase).await;
}

struct Acceptor {
    listener: Option<TcpListener>,
    local: SocketAddr,
    listening: Arc<Listening>,
    connections: Arc<ListenerConnections>,
    errors: AcceptErrors,
}

impl Acceptor {
    /// Accepts one connection and starts serving it, or closes it at once when a cap is
    /// reached.
    async fn accept_one(&mut self) {
        let Some(listener) = &self.listener else {
            return std::future::pending().await;
        };
        match listener.accept().await {
            Ok((stream, peer)) => match self.connections.admit() {
                Ok(admission) => {
                    tokio::spawn(connection::serve(
                        stream,
                        peer,
                        self.listening.clone(),
                        admission,
                    ));
                }
                Err(refused) => {
                    tracing::debug!(addr = %self.local, %peer, "{refused}; closing the new connection");
                    drop(stream);
                }
            },
            Err(error) => {
                self.errors.record(self.local, &error);
                // Running out of descriptors is transient; back off
                // instead of spinning on the error.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn drain(mut self, plan: DrainPlan, phase: &watch::Sender<Phase>) {
        tracing::info!(
            addr = %self.local,
            ?plan,
            connections = self.connections.active(),
            "front end draining"
        );
        if !plan.keep_accepting {
            self.listener = None;
        }
        phase.send_replace(Phase::Discouraging);
        let discouraged_until = Instant::now() + plan.discourage_for;
        let connections = self.connections.clone();
        loop {
            let accepting = self.listener.is_some();
            tokio::select! {
                () = tokio::time::sleep_until(discouraged_until) => break,
                () = self.accept_one() => {}
                // With the socket closed, nothing is left to discourage once the last
                // connection is gone.
                () = connections.emptied(), if !accepting => break,
            }
        }
        self.listener = None;
        phase.send_replace(Phase::Closing);
        let finished = tokio::time::timeout(plan.finish_within, self.connections.emptied()).await;
        if finished.is_err() {
            tracing::warn!(
                addr = %self.local,
                connections = self.connections.active(),
                "drain timeout reached; closing remaining connections"
            );
            phase.send_replace(Phase::Closed);
            self.connections.emptied().await;
        }
    }
}

/// `accept` failures, logged at most once per interval with how many there were.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    since: u64,
}

impl AcceptErrors {
    fn record(&mut self, local: SocketAddr, error: &std::io::Error) {
        self.since += 1;
        let due = self
            .last_logged
            .is_none_or(|last| last.elapsed() >= ACCEPT_ERROR_LOG_INTERVAL);
        if due {
            tracing::warn!(addr = %local, failures = self.since, "accept failed: {error}");
            self.last_logged = Some(Instant::now());
            self.since = 0;
        }
    }
}
