//! The front end: one listening socket that serves HTTP/1.1 (keep-alive),
//! h2c with prior knowledge and, with a certificate, TLS with ALPN (`h2`,
//! `http/1.1`), all through hyper-util's auto-negotiating connection builder.
//! Requests and responses stream; trailers pass through on HTTP/2; the host
//! answers its own failures (408, 413, 431, gRPC-shaped errors) here.
//!
//! A listener may have several filter chains, chosen per connection by the
//! TLS server name ([`ListenerConfig`]); each chain carries the settings of
//! Envoy's HTTP connection manager ([`HttpSettings`]).
//!
//! Hostile clients meet Envoy's defences: a connection must tell its protocol
//! within the detection timeout, connections are capped per listener and for
//! the process, HTTP/1 requests pass Envoy's codec rules before hyper parses
//! them, HTTP/2 floods get a GOAWAY, idle and long-lived connections are
//! closed, and a drain answers every request already sent.

mod admission;
mod chains;
mod client_sans;
mod connection;
mod connection_limits;
mod detect;
mod drain;
mod forwarded;
mod http1_framing;
mod http1_guard;
mod http1_head;
mod http2_frames;
mod http2_guard;
mod http_settings;
mod linger;
mod peer_identity;
mod server;
mod stream_timeouts;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use thiserror::Error;
use wasmtime_wasi_http::WasiBody;

pub use crate::shared::{Failure, REASON_HEADER, RequestMeta};
pub use chains::{FilterChainConfig, ListenerConfig};
pub use connection::Detection;
pub use connection_limits::GlobalConnections;
pub use drain::DrainPlan;
pub use forwarded::Forwarding;
pub use http_settings::{
    Codec, DEFAULT_REQUEST_HEADERS_TIMEOUT, Http2Keepalive, HttpSettings, ServerHeader,
};
pub use http1_head::Http1Rules;
pub use http2_frames::Http2Limits;
pub use server::{BoundFrontEnd, RunningFrontEnd};
pub use stream_timeouts::StreamTimeouts;
pub use tls::{ClientVerification, PemSource, TlsCertificate, TlsError, TlsFiles, TlsTermination};

use crate::body::ResponseBody;

/// Limits the front end enforces before a request reaches any workload.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest request header section, in bytes (431 beyond it).
    pub max_request_header_bytes: usize,
    /// Largest request body, in bytes (413 when `content-length` says more;
    /// a streamed body is cut off with an error at the limit).
    pub max_request_body_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_request_header_bytes: 64 * 1024,
            max_request_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where and how a front end with a single filter chain listens (the
/// embedded default); see [`ListenerConfig`] for several chains.
#[derive(Debug, Clone)]
pub struct FrontEndConfig {
    /// The address to bind.
    pub listen: SocketAddr,
    /// Certificate and key for TLS; plaintext when `None`.
    pub tls: Option<TlsFiles>,
    /// Request limits.
    pub limits: RequestLimits,
    /// Protocol detection and connection caps.
    pub connections: ConnectionSettings,
    /// How long requests are discouraged on shutdown before the listener closes
    /// (Envoy's `--drain-time-s`).
    pub drain_time: Duration,
}

/// How a listener takes connections.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    /// How a new connection must tell its protocol, and how fast.
    pub detection: Detection,
    /// This listener's cap on connections (Envoy's runtime key
    /// `envoy.resource_limits.listener.<name>.connection_limit`).
    pub max_connections: Option<usize>,
    /// The process-wide cap the listener counts against; `None` when it has none or the
    /// listener ignores it (`ignore_global_conn_limit`).
    pub global: Option<Arc<GlobalConnections>>,
}

/// Why a front end could not start.
#[derive(Debug, Error)]
pub enum FrontEndError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        cause: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener asks for something the front end does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A listener setting has a value the front end cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// Where the front end hands a checked request: a handler's routing and
/// workloads. It always produces a response; failures are answered with
/// [`Failure::response`].
pub trait Dispatch: Send + Sync + 'static {
    /// Handles one request.
    fn dispatch(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> BoxFuture<'static, http::Response<ResponseBody>>;
}
