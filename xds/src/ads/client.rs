//! The I/O side of the ADS client: one tokio task that owns the channel and the stream,
//! feeds [`AdsState`] and reconnects with exponential backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::state::{AdsState, Incoming, Outgoing};
use crate::bootstrap::{AdsApi, AdsSource, NodeIdentity};
use crate::config::{DataSource, UpstreamTls};
use crate::store::ConfigStore;

/// Requests waiting to be sent; a response produces at most a few, so this never fills
/// unless the server stops reading, and then the stream is stuck anyway.
const OUTBOUND_QUEUE: usize = 64;

/// Largest accepted response. tonic's 4 MiB default is too small for a mesh-wide RDS or CDS
/// response (Envoy accepts much larger ones); this still bounds memory per message.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Reconnection delays: exponential from `initial` to `max`, each with up to 100 % jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    fn start(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// The delays between connection attempts of one client.
struct Reconnect {
    config: Backoff,
    delays: ExponentialBackoff,
}

impl Reconnect {
    fn new(config: Backoff) -> Self {
        Self {
            delays: config.start(),
            config,
        }
    }

    /// The delay before the next attempt; it grows until a response resets it.
    fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.config.max)
    }

    /// A response arrived: the control plane is healthy, so the next failure retries quickly.
    fn on_response(&mut self) {
        self.delays = self.config.start();
    }
}

/// How to reach and speak to the control plane.
#[derive(Clone, Debug)]
pub struct AdsClientConfig {
    /// gRPC endpoint URI, such as `http://127.0.0.1:15010`.
    pub endpoint: String,
    /// ADS variant.
    pub api: AdsApi,
    /// Node identity sent on each stream.
    pub node: NodeIdentity,
    /// How long a listener or cluster waits for its RDS or EDS resources (Envoy: 15 s).
    pub warming_timeout: Duration,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// TLS towards the control plane (`None`: plaintext HTTP/2).
    pub tls: Option<UpstreamTls>,
}

impl AdsClientConfig {
    /// A configuration with Envoy's defaults.
    pub fn new(endpoint: impl Into<String>, api: AdsApi, node: NodeIdentity) -> Self {
        Self {
            endpoint: endpoint.into(),
            api,
            node,
            warming_timeout: Duration::from_secs(15),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    /// The configuration for a bootstrap's `ads_config`, with the ADS cluster's TLS settings.
    pub fn from_source(source: &AdsSource, node: NodeIdentity) -> Self {
        let scheme = if source.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Self {
            tls: source.tls.clone(),
            ..Self::new(format!("{scheme}://{}", source.endpoint), source.api, node)
        }
    }
}

/// Spawns ADS clients.
#[derive(Debug)]
pub struct AdsClient;

impl AdsClient {
    /// Starts the client task on the current tokio runtime; it publishes into `store` until
    /// the handle is shut down or dropped.
    pub fn spawn(config: AdsClientConfig, store: Arc<ConfigStore>) -> AdsHandle {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(run(config, store, shutdown_rx));
        AdsHandle {
            shutdown,
            task: Some(task),
        }
    }
}

/// A running ADS client. Dropping it stops the client.
#[derive(Debug)]
pub struct AdsHandle {
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl AdsHandle {
    /// Stops the client and waits for its task to end.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "ADS client task failed");
        }
    }
}

impl Drop for AdsHandle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("invalid endpoint: {0}")]
    Endpoint(#[source] tonic::transport::Error),
    #[error("cannot connect: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error("stream failed: {0}")]
    Status(Box<tonic::Status>),
    #[error("the control plane closed the stream")]
    Closed,
    #[error("the request queue is closed")]
    QueueClosed,
    #[error("TLS settings: {0}")]
    Tls(String),
}

impl From<tonic::Status> for StreamError {
    fn from(status: tonic::Status) -> Self {
        // Boxed: a `Status` is large and travels through every stream item.
        Self::Status(Box::new(status))
    }
}

async fn run(
    config: AdsClientConfig,
    store: Arc<ConfigStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = AdsState::new(config.api, &config.node, config.warming_timeout);
    state.add_static_references(store.base());
    state.set_static_secrets(store.static_secrets().keys().cloned().collect());
    let mut reconnect = Reconnect::new(config.backoff);
    loop {
        let ended = tokio::select! {
            ended = stream_once(&config, &mut state, &store, &mut reconnect) => ended,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let delay = reconnect.next_delay();
        tracing::warn!(
            endpoint = %config.endpoint,
            error = %ended,
            retry_in = ?delay,
            "ADS stream ended; the last good configuration stays in service"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Sends requests of either variant.
enum Sender {
    Sotw(mpsc::Sender<DiscoveryRequest>),
    Delta(mpsc::Sender<DeltaDiscoveryRequest>),
}

impl Sender {
    async fn send(&self, request: Outgoing) -> Result<(), StreamError> {
        let sent = match (self, request) {
            (Self::Sotw(tx), Outgoing::Sotw(r)) => tx.send(r).await.is_ok(),
            (Self::Delta(tx), Outgoing::Delta(r)) => tx.send(r).await.is_ok(),
            // The state machine is built for one variant and only emits that one.
            _ => true,
        };
        if sent {
            Ok(())
        } else {
            Err(StreamError::QueueClosed)
        }
    }
}

/// Runs one stream until it fails; the result is always the reason it ended.
async fn stream_once(
    config: &AdsClientConfig,
    state: &mut AdsState,
    store: &ConfigStore,
    reconnect: &mut Reconnect,
) -> StreamError {
    match drive_stream(config, state, store, reconnect).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn drive_stream(
    config: &AdsClientConfig,
    state: &mut AdsState,
    store: &ConfigStore,
    reconnect: &mut Reconnect,
) -> Result<std::convert::Infallible, StreamError> {
    let mut endpoint =
        Endpoint::from_shared(config.endpoint.clone()).map_err(StreamError::Endpoint)?;
    if let Some(tls) = &config.tls {
        // Built on every attempt so rotated certificate files are picked up.
        endpoint = endpoint
            .tls_config(client_tls(tls)?)
            .map_err(StreamError::Endpoint)?;
    }
    let channel = endpoint
        .connect_timeout(config.connect_timeout)
        // Detects a control plane that vanished without closing the connection.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(StreamError::Connect)?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    let initial = state.start_stream();
    let (sender, mut inbound): (Sender, BoxStream<'static, Result<Incoming, StreamError>>) =
        match config.api {
            AdsApi::StateOfTheWorld => {
                let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
                let sender = Sender::Sotw(tx);
                for request in initial {
                    sender.send(request).await?;
                }
                let stream = client
                    .stream_aggregated_resources(ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                (
                    sender,
                    stream
                        .map(|r| r.map(Incoming::Sotw).map_err(StreamError::from))
                        .boxed(),
                )
            }
            AdsApi::Delta => {
                let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
                let sender = Sender::Delta(tx);
                for request in initial {
                    sender.send(request).await?;
                }
                let stream = client
                    .delta_aggregated_resources(ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                (
                    sender,
                    stream
                        .map(|r| r.map(Incoming::Delta).map_err(StreamError::from))
                        .boxed(),
                )
            }
        };
    tracing::info!(endpoint = %config.endpoint, api = ?config.api, "ADS stream open");
    loop {
        let deadline = state.next_deadline().map(Instant::from_std);
        tokio::select! {
            message = inbound.next() => {
                let response = message.ok_or(StreamError::Closed)??;
                reconnect.on_response();
                let step = state.handle(response, std::time::Instant::now());
                for request in step.requests {
                    sender.send(request).await?;
                }
                if step.changed {
                    store.publish(state.resources());
                }
                store.set_accepted(state.accepted_resources());
                if let Some((kind, accepted)) = step.update {
                    store.record_update(kind, accepted);
                }
            }
            () = sleep_until(deadline) => {
                if state.on_timer(std::time::Instant::now()) {
                    store.publish(state.resources());
                    store.set_accepted(state.accepted_resources());
                }
            }
        }
    }
}

/// tonic's TLS settings for the control plane connection.
fn client_tls(tls: &UpstreamTls) -> Result<ClientTlsConfig, StreamError> {
    let ca = tls.validation_ca.as_ref().ok_or_else(|| {
        StreamError::Tls(
            "a validation CA (trusted_ca) is required for the control plane".to_owned(),
        )
    })?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some(pair) = &tls.client_certificate {
        config = config.identity(Identity::from_pem(
            read(&pair.cert_chain)?,
            read(&pair.private_key)?,
        ));
    }
    if let Some(sni) = &tls.sni {
        config = config.domain_name(sni.clone());
    }
    Ok(config)
}

fn read(source: &DataSource) -> Result<Vec<u8>, StreamError> {
    match source {
        DataSource::Inline(bytes) => Ok(bytes.to_vec()),
        DataSource::Filename(path) => std::fs::read(path)
            .map_err(|e| StreamError::Tls(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_up_to_the_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = backoff.start().take(10).collect();
        let mut base = Duration::from_millis(100);
        for delay in &delays {
            // Jitter adds up to the base delay again; never less than the base.
            assert!(
                *delay >= base && *delay <= base * 2,
                "{delay:?} outside [{base:?}, {:?}]",
                base * 2
            );
            base = (base * 2).min(backoff.max);
        }
        assert!(
            delays.iter().skip(5).all(|d| *d >= backoff.max),
            "capped at the max: {delays:?}"
        );
    }

    #[test]
    fn backoff_resets_after_a_successful_response() {
        let config = Backoff::default();
        let mut reconnect = Reconnect::new(config);
        let grown = (0..8)
            .map(|_| reconnect.next_delay())
            .last()
            .unwrap_or_default();
        assert!(grown >= Duration::from_secs(12), "grew to {grown:?}");
        reconnect.on_response();
        let first = reconnect.next_delay();
        assert!(
            first >= config.initial && first <= config.initial * 2,
            "{first:?}"
        );
    }
}
