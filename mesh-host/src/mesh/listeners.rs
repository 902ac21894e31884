use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mesh_xds::config::{DataSource, Listener};

use super::Shared;
use super::dispatch::ListenerDispatch;
use super::snapshot::{MeshSnapshot, is_egress};
use crate::frontend::{
    BoundFrontEnd, FrontEndConfig, FrontEndError, RequestLimits, RunningFrontEnd, TlsFiles,
};

/// Envoy's default `max_request_headers_kb`.
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// How long to retry binding an address a replaced listener is releasing.
const REBIND_PATIENCE: Duration = Duration::from_secs(2);

struct Serving {
    /// The listener resource it was started from; a different one means
    /// rebind.
    listener: Arc<Listener>,
    running: RunningFrontEnd,
}

/// Binds, rebinds and closes sockets as listeners appear, change and go.
/// Listeners that stay untouched keep their sockets and connections; route
/// changes need no rebind because dispatchers read the current snapshot.
pub(super) struct ListenerManager {
    shared: Arc<Shared>,
    serving: tokio::sync::Mutex<HashMap<String, Serving>>,
    addrs: Mutex<HashMap<String, SocketAddr>>,
}

impl ListenerManager {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            serving: tokio::sync::Mutex::new(HashMap::new()),
            addrs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .copied()
            .collect()
    }

    /// Makes the bound listeners those of `snapshot`; the first bind error
    /// is returned after every other listener was handled.
    pub(super) async fn reconcile(&self, snapshot: &MeshSnapshot) -> Result<(), FrontEndError> {
        let mut serving = self.serving.lock().await;
        let wanted: HashMap<&String, &Arc<Listener>> = snapshot
            .config
            .listeners
            .iter()
            .filter(|(_, listener)| {
                // The egress listener is virtual unless it asks for a socket.
                let egress = is_egress(listener, self.shared.config.egress_listener.as_deref());
                listener.bind_to_port.unwrap_or(!egress)
            })
            .collect();

        let stale: Vec<String> = serving
            .iter()
            .filter(|(name, current)| {
                wanted
                    .get(name)
                    .is_none_or(|listener| **listener != current.listener)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(old) = serving.remove(&name) {
                tracing::info!(listener = %name, addr = %old.running.local_addr(), "closing listener");
                self.addrs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&name);
                let drain = self.shared.config.listener_drain;
                tokio::spawn(old.running.shutdown(drain));
            }
        }

        let mut first_error = None;
        for (name, listener) in wanted {
            if serving.contains_key(name) {
                continue;
            }
            match self.bind(listener).await {
                Ok(bound) => {
                    let addr = bound.local_addr();
                    let dispatch =
                        Arc::new(ListenerDispatch::new(name.clone(), self.shared.clone()));
                    tracing::info!(listener = %name, %addr, "listener serving");
                    self.addrs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.clone(), addr);
                    serving.insert(
                        name.clone(),
                        Serving {
                            listener: listener.clone(),
                            running: bound.serve(dispatch),
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(listener = %name, "cannot bind listener: {error}");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn bind(&self, listener: &Listener) -> Result<BoundFrontEnd, FrontEndError> {
        let config = frontend_config(listener)?;
        let started = tokio::time::Instant::now();
        loop {
            match BoundFrontEnd::bind(&config) {
                Err(FrontEndError::Bind { cause, .. })
                    if cause.kind() == std::io::ErrorKind::AddrInUse
                        && started.elapsed() < REBIND_PATIENCE =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                result => return result,
            }
        }
    }

    pub(super) async fn stop_all(&self, drain: Duration) {
        let serving: Vec<Serving> = self
            .serving
            .lock()
            .await
            .drain()
            .map(|(_, serving)| serving)
            .collect();
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        futures::future::join_all(
            serving
                .into_iter()
                .map(|serving| serving.running.shutdown(drain)),
        )
        .await;
    }
}

fn frontend_config(listener: &Listener) -> Result<FrontEndConfig, FrontEndError> {
    let chain = listener.all_filter_chains().next();
    let header_kb = chain
        .map(|chain| chain.http.max_request_headers_kb)
        .filter(|kb| *kb > 0)
        .unwrap_or(DEFAULT_MAX_REQUEST_HEADERS_KB);
    let tls = match chain.and_then(|chain| chain.tls.as_ref()) {
        None => None,
        Some(tls) => match (&tls.certificate.cert_chain, &tls.certificate.private_key) {
            (DataSource::Filename(cert), DataSource::Filename(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            // Never fall back to plaintext on a listener configured for TLS.
            _ => {
                return Err(FrontEndError::Unsupported(format!(
                    "listener {}: inline TLS certificates are not supported; use filename",
                    listener.name
                )));
            }
        },
    };
    Ok(FrontEndConfig {
        listen: listener.address,
        tls,
        limits: RequestLimits {
            max_request_header_bytes: header_kb as usize * 1024,
            ..RequestLimits::default()
        },
    })
}
