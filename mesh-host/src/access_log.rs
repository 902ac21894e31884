//! Access logs (`access_log` of a connection manager or TCP proxy): one line per finished
//! request or connection, in Envoy's format language, written by a thread per destination
//! behind a bounded queue so a request never waits for a log write.
//!
//! Whoever produces a response marks it with what served it (`shared::ResponseFlag`,
//! `UpstreamHost`, `ServedBy`, `ResponseDetails`); the line is written when the response's
//! last byte has been sent, or when the response is dropped unfinished.

mod counted;
mod render;
mod sink;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Version};
use mesh_xds::config::{AccessLog, LogFormat};
use wasmtime_wasi_http::WasiBody;

use crate::body::{HoldPermit, ResponseBody};
use crate::metrics::Metrics;
use crate::shared::{
    RequestMeta, ResponseDetails, ResponseFlag, ServedBy, UpstreamHost, WorkloadId,
};

pub use counted::CountedBody;
pub use sink::{LineSink, SinkError};

/// The access logs of one connection manager or TCP proxy, opened.
#[derive(Debug, Default)]
pub struct AccessLogs {
    logs: Vec<(LogFormat, LineSink)>,
}

impl AccessLogs {
    /// Opens every configured log. A destination that cannot be opened is reported and left
    /// out: the listener keeps serving without it.
    pub fn open(configs: &[AccessLog]) -> AccessLogs {
        let logs = configs
            .iter()
            .filter_map(|config| match LineSink::open(&config.sink) {
                Ok(sink) => Some((config.format.clone(), sink)),
                Err(error) => {
                    tracing::error!("{error}");
                    None
                }
            })
            .collect();
        AccessLogs { logs }
    }

    /// Whether there is nothing to write to.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Writes `record` to every log; a line whose queue is full is dropped and counted.
    pub fn write(&self, record: &LogRecord, metrics: &Metrics) {
        for (format, sink) in &self.logs {
            if !sink.offer(render::render(format, record)) {
                metrics.access_log_dropped();
            }
        }
    }
}

/// The connection a request or TCP stream came in on.
#[derive(Clone, Debug)]
pub struct Downstream {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The client as the connection manager decided it (port 0 when it came from
    /// `x-forwarded-for`, as in Envoy).
    pub remote: SocketAddr,
    /// The local address the connection arrived on.
    pub local: SocketAddr,
    /// The TLS client's server name.
    pub server_name: Option<Arc<str>>,
}

/// What one line is made from.
#[derive(Debug)]
pub struct LogRecord {
    /// When the request or connection began.
    pub start: SystemTime,
    /// `:method` (HTTP only).
    pub method: Option<String>,
    /// `:path` with its query (HTTP only).
    pub path: Option<String>,
    /// `:authority` (HTTP only).
    pub authority: Option<String>,
    /// `:scheme` (HTTP only).
    pub scheme: Option<&'static str>,
    /// The request headers as they arrived.
    pub request_headers: HeaderMap,
    /// The response headers as sent.
    pub response_headers: HeaderMap,
    /// The status sent (0: none, as for TCP).
    pub response_code: u16,
    /// Envoy's response code details.
    pub details: Option<&'static str>,
    /// Envoy's response flag.
    pub flags: Option<&'static str>,
    /// From the start to the last byte sent.
    pub duration: Duration,
    /// Body (or stream) bytes received from downstream.
    pub bytes_received: u64,
    /// Body (or stream) bytes sent downstream.
    pub bytes_sent: u64,
    /// The upstream endpoint that answered.
    pub upstream_host: Option<Arc<str>>,
    /// The cluster the request or connection was sent to.
    pub upstream_cluster: Option<Arc<str>>,
    /// The route that matched, when it has a name.
    pub route_name: Option<Arc<str>>,
    /// `HTTP/1.1`, `HTTP/2`... (`None` for TCP).
    pub protocol: Option<&'static str>,
    /// The downstream connection.
    pub downstream: Downstream,
    /// The local workload that served the request.
    pub workload: Option<WorkloadId>,
}

impl LogRecord {
    /// A record of a connection that starts now, with nothing known yet beyond it.
    pub fn connection(downstream: Downstream) -> LogRecord {
        LogRecord {
            start: SystemTime::now(),
            method: None,
            path: None,
            authority: None,
            scheme: None,
            request_headers: HeaderMap::new(),
            response_headers: HeaderMap::new(),
            response_code: 0,
            details: None,
            flags: None,
            duration: Duration::ZERO,
            bytes_received: 0,
            bytes_sent: 0,
            upstream_host: None,
            upstream_cluster: None,
            route_name: None,
            protocol: None,
            downstream,
            workload: None,
        }
    }

    /// A request header by lower-case name, pseudo-headers included.
    fn request_header(&self, name: &str) -> Option<&str> {
        match name {
            ":method" => self.method.as_deref(),
            ":path" => self.path.as_deref(),
            ":authority" => self.authority.as_deref(),
            ":scheme" => self.scheme,
            _ => self.request_headers.get(name)?.to_str().ok(),
        }
    }

    /// A response header by lower-case name (`:status` included).
    fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.get(name)?.to_str().ok()
    }
}

/// Envoy's `%PROTOCOL%` spelling of an HTTP version.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The downstream of a request as the access log presents it.
pub fn downstream(meta: &RequestMeta) -> Downstream {
    let remote = if meta.remote_ip == meta.peer.ip() {
        meta.peer
    } else {
        SocketAddr::new(meta.remote_ip, 0)
    };
    Downstream {
        peer: meta.peer,
        remote,
        local: meta.local,
        server_name: meta.server_name.clone(),
    }
}

/// One HTTP request on its way through the pipeline, to be logged once its response is sent.
pub struct RequestLog {
    logs: Arc<AccessLogs>,
    metrics: Arc<Metrics>,
    record: LogRecord,
    started: Instant,
    received: Arc<AtomicU64>,
}

impl RequestLog {
    /// Starts the record of the request whose head is `head`.
    pub fn start(
        logs: Arc<AccessLogs>,
        metrics: Arc<Metrics>,
        head: &http::request::Parts,
        meta: &RequestMeta,
    ) -> RequestLog {
        let authority = head
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                head.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let mut record = LogRecord::connection(downstream(meta));
        record.method = Some(head.method.as_str().to_owned());
        record.path = head.uri.path_and_query().map(|p| p.as_str().to_owned());
        record.authority = authority;
        record.scheme = Some(if meta.tls { "https" } else { "http" });
        record.request_headers = head.headers.clone();
        record.protocol = Some(protocol(head.version));
        RequestLog {
            logs,
            metrics,
            record,
            started: Instant::now(),
            received: Arc::default(),
        }
    }

    /// The request body, counted for `%BYTES_RECEIVED%`.
    pub fn count_request_body(&self, body: WasiBody) -> WasiBody {
        use http_body_util::BodyExt;
        CountedBody::new(body, self.received.clone()).boxed_unsync()
    }

    /// Records the route that matched and the cluster it sends to.
    pub fn routed(&mut self, route_name: &Arc<str>, cluster: &str) {
        self.record.route_name = Some(route_name.clone()).filter(|name| !name.is_empty());
        self.record.upstream_cluster = Some(cluster.into());
    }

    /// Takes what the response says about itself and returns it with a body that writes the
    /// line when its last byte is sent (or when it is dropped unfinished).
    pub fn finish(
        mut self,
        response: http::Response<ResponseBody>,
    ) -> http::Response<ResponseBody> {
        use http_body_util::BodyExt;
        let (parts, body) = response.into_parts();
        let record = &mut self.record;
        record.response_code = parts.status.as_u16();
        record.response_headers = parts.headers.clone();
        record.flags = parts.extensions.get::<ResponseFlag>().map(|f| f.0);
        record.details = parts.extensions.get::<ResponseDetails>().map(|d| d.0);
        record.upstream_host = parts.extensions.get::<UpstreamHost>().map(|h| h.0.clone());
        record.workload = parts.extensions.get::<ServedBy>().map(|w| w.0.clone());
        let sent = Arc::new(AtomicU64::new(0));
        let pending = PendingLine {
            request: self,
            sent: sent.clone(),
        };
        let body = HoldPermit::new(CountedBody::new(body, sent), pending).boxed_unsync();
        http::Response::from_parts(parts, body)
    }
}

/// A request whose line is written when this is dropped: at the response body's end.
struct PendingLine {
    request: RequestLog,
    sent: Arc<AtomicU64>,
}

impl Drop for PendingLine {
    fn drop(&mut self) {
        let request = &mut self.request;
        let record = &mut request.record;
        record.duration = request.started.elapsed();
        record.bytes_received = request.received.load(Ordering::Relaxed);
        record.bytes_sent = self.sent.load(Ordering::Relaxed);
        request.logs.write(record, &request.metrics);
    }
}
