//! The mesh's upstream client: sends a routed request to a cluster's
//! endpoints, whether it came from a downstream client (a route to a remote
//! cluster) or from a component (the egress path). Pooled connections per
//! endpoint (hyper-util's client), HTTP/1.1 or HTTP/2 per request, upstream
//! TLS, load balancing (round robin, least request, random, ring hash,
//! maglev, locality weights), active health checks, outlier detection,
//! circuit breakers, timeouts and retries with Envoy's meaning.

mod balancer;
mod breakers;
mod cluster;
mod connector;
mod consistent_hash;
mod error;
mod health_check;
mod outlier;
mod replay;
mod request_hash;
mod retry;
mod san_verifier;
mod status;
mod upstream_tls;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{self, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use mesh_policies::grpc::is_grpc_content_type;
use mesh_xds::config::{
    AttemptCount, HashPolicy, HostPort, MeshConfig, RetryPolicy, UpstreamProtocol,
};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::shared::UpstreamHost;

pub use breakers::Overflow;
pub use error::{ConnectError, EgressError};
pub use status::{ClusterStatus, HostStatus};
pub use upstream_tls::UpstreamTlsError;

use breakers::Counted;
use cluster::{ClusterSet, ClusterState};
use outlier::Outcome;
use replay::{DEFAULT_REPLAY_LIMIT, ReplayBody};

/// Hop-by-hop headers: they describe one connection and are not forwarded.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Where and how a routed request goes upstream.
#[derive(Debug, Clone)]
pub struct UpstreamRoute {
    /// The cluster.
    pub cluster: String,
    /// Time allowed until the response head, all tries included.
    pub timeout: Option<Duration>,
    /// The route's retry policy.
    pub retry: Option<Arc<RetryPolicy>>,
    /// The route's hash policy, for ring hash and maglev clusters.
    pub hash_policy: Arc<[HashPolicy]>,
    /// The downstream client's address (hash policies on the source IP), if any.
    pub source_ip: Option<IpAddr>,
    /// Whether each try carries `x-envoy-attempt-count`, and the response the number of tries.
    pub attempt_count: AttemptCount,
}

impl UpstreamRoute {
    /// A route to `cluster` with neither retries nor hashing: the calls the host makes on its
    /// own behalf (authorization, rate-limit and key-fetch services).
    pub fn to_cluster(cluster: impl Into<String>, timeout: Option<Duration>) -> Self {
        Self {
            cluster: cluster.into(),
            timeout,
            retry: None,
            hash_policy: Arc::from([]),
            source_ip: None,
            attempt_count: AttemptCount::default(),
        }
    }
}

/// How many tries a request took, on each try sent upstream and on the response, when the
/// virtual host asks for it (Envoy's router header).
pub const ATTEMPT_COUNT: http::HeaderName = http::HeaderName::from_static("x-envoy-attempt-count");

/// The upstream client of one configuration snapshot: its clusters and endpoints, with the
/// connection pools, outlier state and breakers of clusters that did not change carried over
/// from the previous snapshot. A request sends through the snapshot it started on.
#[derive(Default)]
pub struct Egress {
    clusters: ClusterSet,
}

impl Egress {
    /// A client with no clusters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The clusters and endpoints of `config`, reusing what `previous` already has.
    pub fn build(config: &MeshConfig, previous: &Egress) -> Self {
        Self {
            clusters: ClusterSet::build(config, &previous.clusters),
        }
    }

    /// Sends `request` (absolute URI, or a `Host` header) to `route.cluster`.
    pub fn send(
        &self,
        mut request: http::Request<WasiBody>,
        route: UpstreamRoute,
    ) -> BoxFuture<'static, Result<http::Response<WasiBody>, EgressError>> {
        let cluster = self.clusters.get(&route.cluster).cloned();
        Box::pin(async move {
            let cluster =
                cluster.ok_or_else(|| EgressError::UnknownCluster(route.cluster.clone()))?;
            let hash = if route.hash_policy.is_empty() {
                None
            } else {
                let (parts, body) = request.into_parts();
                let hash = request_hash::request_hash(&route.hash_policy, &parts, route.source_ip);
                request = http::Request::from_parts(parts, body);
                hash
            };
            let work = send_to_cluster(cluster, request, route.retry, hash, route.attempt_count);
            match route.timeout {
                Some(limit) => tokio::time::timeout(limit, work)
                    .await
                    .map_err(|_| EgressError::Timeout(limit))?,
                None => work.await,
            }
        })
    }
}

impl Egress {
    /// An endpoint of `cluster` and the cluster's connect timeout, for a connection the TCP
    /// proxy forwards: chosen by the cluster's load balancer among its healthy endpoints.
    pub fn pick_endpoint(&self, cluster: &str) -> Result<(HostPort, Duration), EgressError> {
        let state = self
            .clusters
            .get(cluster)
            .ok_or_else(|| EgressError::UnknownCluster(cluster.to_owned()))?;
        let index = state
            .pick(&[], None)
            .ok_or_else(|| EgressError::NoHealthyEndpoint(cluster.to_owned()))?;
        Ok((
            state.hosts[index].address.clone(),
            state.config.connect_timeout,
        ))
    }
}

/// The request head, kept to build every try.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    fn new(parts: http::request::Parts, http2: bool, tls: bool) -> Result<Self, EgressError> {
        let mut headers = parts.headers;
        let authority = match parts.uri.authority() {
            Some(authority) => authority.clone(),
            None => headers
                .get(header::HOST)
                .and_then(|host| Authority::try_from(host.as_bytes()).ok())
                .ok_or_else(|| {
                    EgressError::InvalidRequest("the request names no authority".into())
                })?,
        };
        if parts.uri.scheme() == Some(&Scheme::HTTPS) && !tls {
            return Err(EgressError::InvalidRequest(
                "an https request would leave in plaintext: the cluster has no TLS transport \
                 socket"
                    .into(),
            ));
        }
        let uri = Uri::builder()
            .scheme(if tls { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(authority.clone())
            .path_and_query(
                parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
            .build()
            .map_err(|error| EgressError::InvalidRequest(error.to_string()))?;
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        if http2 {
            // `:authority` carries it.
            headers.remove(header::HOST);
        } else {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|error| EgressError::InvalidRequest(error.to_string()))?;
            headers.insert(header::HOST, host);
        }
        Ok(Self {
            method: parts.method,
            uri,
            version: if http2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            },
            headers,
        })
    }

    fn request(&self, body: WasiBody) -> http::Request<WasiBody> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// gRPC always, and whatever the cluster says otherwise.
fn wants_http2(protocol: UpstreamProtocol, parts: &http::request::Parts) -> bool {
    let grpc = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(is_grpc_content_type);
    grpc || match protocol {
        UpstreamProtocol::Http2 => true,
        UpstreamProtocol::UseDownstream => parts.version == Version::HTTP_2,
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => false,
    }
}

async fn send_to_cluster(
    cluster: Arc<ClusterState>,
    request: http::Request<WasiBody>,
    retry: Option<Arc<RetryPolicy>>,
    hash: Option<u64>,
    attempt_count: AttemptCount,
) -> Result<http::Response<WasiBody>, EgressError> {
    let name = &cluster.config.name;
    cluster.note_traffic();
    let active = cluster
        .limits
        .request()
        .map_err(|overflow| EgressError::Overflow {
            cluster: name.clone(),
            overflow,
        })?;
    let (parts, body) = request.into_parts();
    let http2 = wants_http2(cluster.config.protocol, &parts);
    let head = Head::new(parts, http2, cluster.config.tls.is_some())?;
    let retries = retry.as_ref().map_or(0, |policy| policy.num_retries);
    let (mut once, replay) = if retries > 0 {
        (None, Some(ReplayBody::new(body, DEFAULT_REPLAY_LIMIT)))
    } else {
        (Some(body), None)
    };
    let mut tried: Vec<usize> = Vec::new();
    let mut retry_slot: Option<Counted> = None;
    for attempt in 0.. {
        let index = cluster
            .pick(&tried, hash)
            .ok_or_else(|| EgressError::NoHealthyEndpoint(name.clone()))?;
        let host = &cluster.hosts[index];
        let body = match (&replay, once.take()) {
            (_, Some(body)) => body,
            (Some(replay), None) => match replay.replay() {
                Some(body) => body.boxed_unsync(),
                None => unreachable_retry(name)?,
            },
            (None, None) => unreachable_retry(name)?,
        };
        tracing::trace!(cluster = %name, endpoint = %host.address, attempt, "upstream try");
        let in_flight = host.state.start_request();
        let try_timeout = retry.as_ref().and_then(|policy| policy.per_try_timeout);
        let mut request = head.request(body);
        if attempt_count.request {
            request
                .headers_mut()
                .insert(ATTEMPT_COUNT, http::HeaderValue::from(attempt + 1));
        }
        let sent = host.state.client(http2).request(request);
        let result = match try_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result.map_err(|e| upstream_error(e, name, &host.state.label)),
                Err(_) => Err(EgressError::Timeout(limit)),
            },
            None => sent
                .await
                .map_err(|e| upstream_error(e, name, &host.state.label)),
        };
        let can_retry = attempt < retries
            && replay.as_ref().is_some_and(|r| r.replay().is_some())
            && retry.is_some();
        match result {
            Ok(response) => {
                cluster.record(index, Outcome::Status(response.status().as_u16()));
                if can_retry
                    && let Some(policy) = &retry
                    && retry::response_is_retriable(policy, &response)
                    && let Some(slot) = cluster.limits.retry()
                {
                    retry_slot = Some(slot);
                    tried.push(index);
                    tracing::debug!(cluster = %name, endpoint = %host.address, status = %response.status(), "retrying");
                    drop(response);
                    retry::backoff(attempt).await;
                    continue;
                }
                let mut response = response;
                response
                    .extensions_mut()
                    .insert(UpstreamHost(host.state.label.as_str().into()));
                if attempt_count.response {
                    response
                        .headers_mut()
                        .insert(ATTEMPT_COUNT, http::HeaderValue::from(attempt + 1));
                }
                return Ok(response.map(|body| {
                    Guarded {
                        body,
                        _guards: (active, in_flight, retry_slot),
                    }
                    .boxed_unsync()
                }));
            }
            Err(error) => {
                if !matches!(
                    error,
                    EgressError::Connect {
                        source: ConnectError::Overflow(_),
                        ..
                    }
                ) {
                    cluster.record(index, Outcome::LocalFailure);
                }
                if can_retry
                    && let Some(policy) = &retry
                    && retry::error_is_retriable(policy, &error)
                    && let Some(slot) = cluster.limits.retry()
                {
                    retry_slot = Some(slot);
                    tried.push(index);
                    tracing::debug!(cluster = %name, endpoint = %host.address, "retrying after {error}");
                    retry::backoff(attempt).await;
                    continue;
                }
                return Err(error);
            }
        }
    }
    unreachable_retry(name)
}

/// The try loop only ends by returning; reaching past it is a bug reported
/// as an error rather than a panic.
fn unreachable_retry<T>(cluster: &str) -> Result<T, EgressError> {
    Err(EgressError::InvalidRequest(format!(
        "no request body left for another try to cluster {cluster:?}"
    )))
}

fn upstream_error(
    error: hyper_util::client::legacy::Error,
    cluster: &str,
    endpoint: &str,
) -> EgressError {
    let connect = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<ConnectError>())
        .cloned();
    match connect {
        Some(source) => EgressError::Connect {
            cluster: cluster.to_owned(),
            endpoint: endpoint.to_owned(),
            source,
        },
        None => {
            let mut reason = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(inner) = source {
                reason = format!("{reason}: {inner}");
                source = inner.source();
            }
            EgressError::Reset {
                cluster: cluster.to_owned(),
                endpoint: endpoint.to_owned(),
                reason,
            }
        }
    }
}

/// An upstream response body that keeps the request counted (breakers,
/// least-request) until it is read to the end or dropped.
struct Guarded<G> {
    body: hyper::body::Incoming,
    _guards: G,
}

impl<G: Unpin> Body for Guarded<G> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        Pin::new(&mut self.get_mut().body)
            .poll_frame(cx)
            .map_err(HttpError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
