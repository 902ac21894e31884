//! Active health checking, as Envoy runs it: one task per endpoint checks it
//! over HTTP, gRPC (`grpc.health.v1.Health/Check`) or TCP, every `interval`
//! (the no-traffic, unhealthy and edge intervals where configured, plus
//! jitter). An endpoint starts unhealthy and one success makes it healthy;
//! after that `unhealthy_threshold` failures in a row (a timeout, a refused
//! connection, a retriable status) make it unhealthy and `healthy_threshold`
//! successes healthy again. An HTTP status that is neither expected nor
//! retriable makes it unhealthy at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mesh_xds::config::{HeaderAppendAction, HealthCheck, HealthCheckKind};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connector::EndpointConnector;

/// What Envoy sends as the user agent of HTTP health checks.
const USER_AGENT: &str = "Envoy/HC";

/// An endpoint's active health, shared by its checker and the balancer.
#[derive(Debug, Default)]
pub(super) struct ActiveHealth {
    healthy: AtomicBool,
}

impl ActiveHealth {
    /// Whether the last checks passed.
    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Counts towards `unhealthy_threshold`.
    Fail,
    /// An unexpected HTTP status: unhealthy now.
    FailNow,
}

/// The consecutive results of one endpoint and the state they lead to.
#[derive(Debug, Default)]
struct Tracker {
    checked: bool,
    healthy: bool,
    passes: u32,
    failures: u32,
}

/// Whether the last result changed the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    None,
    BecameHealthy,
    BecameUnhealthy,
}

impl Tracker {
    fn record(&mut self, verdict: Verdict, config: &HealthCheck) -> Edge {
        let first = !self.checked;
        self.checked = true;
        match verdict {
            Verdict::Pass => {
                self.failures = 0;
                self.passes = self.passes.saturating_add(1);
                if !self.healthy && (first || self.passes >= config.healthy_threshold) {
                    self.healthy = true;
                    return Edge::BecameHealthy;
                }
            }
            Verdict::Fail => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.healthy && self.failures >= config.unhealthy_threshold {
                    self.healthy = false;
                    return Edge::BecameUnhealthy;
                }
            }
            Verdict::FailNow => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.healthy {
                    self.healthy = false;
                    return Edge::BecameUnhealthy;
                }
            }
        }
        Edge::None
    }

    /// Envoy's choice of the next interval, before jitter.
    fn interval(&self, config: &HealthCheck, edge: Edge, traffic: bool) -> Duration {
        if !traffic {
            return match (self.healthy, config.no_traffic_healthy_interval) {
                (true, Some(interval)) => interval,
                _ => config.no_traffic_interval,
            };
        }
        let unhealthy = config.unhealthy_interval.unwrap_or(config.interval);
        match (self.healthy, edge) {
            (true, Edge::BecameHealthy) => config.healthy_edge_interval.unwrap_or(config.interval),
            (true, _) => config.interval,
            (false, Edge::BecameUnhealthy) => config.unhealthy_edge_interval.unwrap_or(unhealthy),
            (false, _) => unhealthy,
        }
    }
}

fn jittered(base: Duration, config: &HealthCheck, rng: &mut impl Rng) -> Duration {
    let mut extra = Duration::ZERO;
    if !config.interval_jitter.is_zero() {
        extra += config.interval_jitter.mul_f64(rng.r#gen::<f64>());
    }
    if config.interval_jitter_percent > 0 {
        extra +=
            base.mul_f64(f64::from(config.interval_jitter_percent) / 100.0 * rng.r#gen::<f64>());
    }
    base + extra
}

/// Where and how one endpoint is checked.
pub(super) struct Target {
    /// Connects to the endpoint (at the health-check port), with the
    /// cluster's TLS, outside the cluster's circuit breakers.
    pub(super) connector: EndpointConnector,
    /// The cluster's name: the default `:authority` of HTTP and gRPC checks.
    pub(super) cluster: String,
    /// Requests go over TLS.
    pub(super) tls: bool,
}

/// Starts checking one endpoint; the task ends when `health` is dropped
/// (the endpoint left the configuration).
pub(super) fn spawn(
    health: &Arc<ActiveHealth>,
    config: Arc<HealthCheck>,
    target: Target,
    traffic: Arc<AtomicBool>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(cluster = %target.cluster, "no runtime to run health checks on");
        return;
    };
    runtime.spawn(run(Arc::downgrade(health), config, target, traffic));
}

async fn run(
    health: Weak<ActiveHealth>,
    config: Arc<HealthCheck>,
    target: Target,
    traffic: Arc<AtomicBool>,
) {
    let initial = config.initial_jitter.mul_f64(rand::random::<f64>());
    tokio::time::sleep(initial).await;
    let http2 = match &config.kind {
        HealthCheckKind::Http { http2, .. } => *http2,
        HealthCheckKind::Grpc { .. } => true,
        HealthCheckKind::Tcp { .. } => false,
    };
    let client: Client<EndpointConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(http2)
        .set_host(false)
        .build(target.connector.clone());
    let endpoint = target.connector.address.to_string();
    let mut tracker = Tracker::default();
    loop {
        let verdict = tokio::time::timeout(config.timeout, check(&config, &target, &client))
            .await
            .unwrap_or(Verdict::Fail);
        let edge = tracker.record(verdict, &config);
        let Some(shared) = health.upgrade() else {
            return;
        };
        shared.healthy.store(tracker.healthy, Ordering::Release);
        drop(shared);
        match edge {
            Edge::BecameHealthy => {
                tracing::info!(cluster = %target.cluster, %endpoint, "endpoint passes its health checks");
            }
            Edge::BecameUnhealthy => {
                tracing::warn!(cluster = %target.cluster, %endpoint, "endpoint fails its health checks");
            }
            Edge::None => {}
        }
        let base = tracker.interval(&config, edge, traffic.load(Ordering::Acquire));
        let wait = jittered(base, &config, &mut rand::thread_rng());
        tokio::time::sleep(wait).await;
        if health.strong_count() == 0 {
            return;
        }
    }
}

async fn check(
    config: &HealthCheck,
    target: &Target,
    client: &Client<EndpointConnector, Full<Bytes>>,
) -> Verdict {
    match &config.kind {
        HealthCheckKind::Http {
            host,
            path,
            method,
            expected_statuses,
            retriable_statuses,
            http2: _,
            request_headers_to_add,
            request_headers_to_remove,
        } => {
            let authority = host.as_deref().unwrap_or(&target.cluster);
            let Some(mut request) = request(target.tls, authority, path, method, Bytes::new())
            else {
                return Verdict::Fail;
            };
            let headers = request.headers_mut();
            for name in request_headers_to_remove {
                headers.remove(name.as_str());
            }
            for add in request_headers_to_add {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(add.name.as_bytes()),
                    HeaderValue::from_str(&add.value),
                ) else {
                    continue;
                };
                match add.append {
                    HeaderAppendAction::AppendIfExistsOrAdd => {
                        headers.append(name, value);
                    }
                    HeaderAppendAction::AddIfAbsent => {
                        headers.entry(name).or_insert(value);
                    }
                    HeaderAppendAction::OverwriteIfExistsOrAdd => {
                        headers.insert(name, value);
                    }
                    HeaderAppendAction::OverwriteIfExists => {
                        if headers.contains_key(&name) {
                            headers.insert(name, value);
                        }
                    }
                }
            }
            let Ok(response) = client.request(request).await else {
                return Verdict::Fail;
            };
            let status = response.status().as_u16();
            let within = |ranges: &[(u16, u16)]| {
                ranges
                    .iter()
                    .any(|(start, end)| (*start..*end).contains(&status))
            };
            if within(expected_statuses) {
                Verdict::Pass
            } else if within(retriable_statuses) {
                Verdict::Fail
            } else {
                Verdict::FailNow
            }
        }
        HealthCheckKind::Grpc {
            service_name,
            authority,
        } => {
            let authority = authority.as_deref().unwrap_or(&target.cluster);
            let body = grpc_health_request(service_name);
            let Some(mut request) = request(
                target.tls,
                authority,
                "/grpc.health.v1.Health/Check",
                "POST",
                body,
            ) else {
                return Verdict::Fail;
            };
            let headers = request.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
            let Ok(response) = client.request(request).await else {
                return Verdict::Fail;
            };
            let head_status = response.headers().get("grpc-status").cloned();
            let Ok(collected) = response.into_body().collect().await else {
                return Verdict::Fail;
            };
            let grpc_status = collected
                .trailers()
                .and_then(|t| t.get("grpc-status").cloned())
                .or(head_status);
            if grpc_status.as_ref().map(HeaderValue::as_bytes) != Some(b"0") {
                return Verdict::Fail;
            }
            if grpc_serving(collected.to_bytes()) {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        }
        HealthCheckKind::Tcp { send, receive } => {
            let Ok(mut stream) = target.connector.clone().connect().await else {
                return Verdict::Fail;
            };
            if !send.is_empty() && stream.write_all(send).await.is_err() {
                return Verdict::Fail;
            }
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            while !contains_in_order(&received, receive) {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return Verdict::Fail,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                }
            }
            Verdict::Pass
        }
    }
}

fn request(
    tls: bool,
    authority: &str,
    path: &str,
    method: &str,
    body: Bytes,
) -> Option<http::Request<Full<Bytes>>> {
    let scheme = if tls { "https" } else { "http" };
    http::Request::builder()
        .method(method)
        .uri(format!("{scheme}://{authority}{path}"))
        .header(header::HOST, authority)
        .header(header::USER_AGENT, USER_AGENT)
        .body(Full::new(body))
        .ok()
}

/// A length-prefixed `HealthCheckRequest { service }`.
fn grpc_health_request(service: &str) -> Bytes {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        let mut len = service.len();
        while len >= 0x80 {
            message.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        message.push(len as u8);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    Bytes::from(framed)
}

/// Whether a framed `HealthCheckResponse` says SERVING (status 1).
fn grpc_serving(mut body: Bytes) -> bool {
    if body.len() < 5 || body[0] != 0 {
        return false;
    }
    body.advance(5);
    // Field 1 (status), varint: tag 0x08.
    let mut at = 0;
    while at < body.len() {
        let tag = body[at];
        at += 1;
        let mut value = 0u64;
        let mut shift = 0;
        while at < body.len() {
            let byte = body[at];
            at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if tag == 0x08 {
            return value == 1;
        }
        if tag & 0x07 != 0 {
            return false;
        }
    }
    false
}

/// Whether `received` holds each of `expected`, in order (Envoy's TCP check).
fn contains_in_order(received: &[u8], expected: &[Vec<u8>]) -> bool {
    let mut rest = received;
    for part in expected {
        if part.is_empty() {
            continue;
        }
        match rest.windows(part.len()).position(|w| w == part.as_slice()) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}
