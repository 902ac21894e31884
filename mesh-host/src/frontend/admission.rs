//! Admission of each request: the checks and header rewrites every request passes before
//! the inbound pipeline, the stream timers that run while it is served, and the count of
//! requests in flight on its connection (the connection idle timeout waits for zero).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::header::{self, HeaderName};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_policies::grpc::is_grpc_content_type;
use tokio::sync::watch;

use super::drain::{DrainWatch, Phase};
use super::http_settings::HttpSettings;
use super::stream_timeouts::StreamTimer;
use super::{Dispatch, Failure, RequestMeta};
use crate::body::{HoldPermit, ResponseBody, limited_request_body};

const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// What every request of a filter chain's connections shares.
pub(super) struct ChainContext {
    pub(super) index: usize,
    pub(super) http: HttpSettings,
    pub(super) dispatch: Arc<dyn Dispatch>,
    pub(super) local: SocketAddr,
}

/// What a request inherits from its connection.
#[derive(Debug, Clone)]
pub(super) struct Connection {
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    /// The server name the TLS client asked for.
    pub(super) server_name: Option<Arc<str>>,
    /// The verified client certificate's principal.
    pub(super) peer_principal: Option<Arc<str>>,
    /// The verified client certificate (DER).
    pub(super) peer_certificate: Option<Arc<[u8]>>,
}

/// The requests in flight on one connection, from their head to the end of their
/// response body.
#[derive(Debug, Clone)]
pub(super) struct ActiveStreams(Arc<watch::Sender<usize>>);

impl ActiveStreams {
    pub(super) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    fn start(&self) -> StreamGuard {
        self.0.send_modify(|active| *active += 1);
        StreamGuard(self.0.clone())
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub(super) async fn idle_for(&self, idle: Duration) {
        let mut active = self.0.subscribe();
        loop {
            // The sender lives as long as `self`: these cannot fail.
            let _ = active.wait_for(|active| *active == 0).await;
            tokio::select! {
                () = tokio::time::sleep(idle) => return,
                _ = active.changed() => {}
            }
        }
    }
}

struct StreamGuard(Arc<watch::Sender<usize>>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0
            .send_modify(|active| *active = active.saturating_sub(1));
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;

/// The hyper service of one connection.
pub(super) fn request_service(
    context: Arc<ChainContext>,
    connection: Connection,
    streams: ActiveStreams,
    drain: DrainWatch,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<ResponseBody>,
    Error = Infallible,
    Future = ResponseFuture,
> + Clone {
    hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let context = context.clone();
        let connection = connection.clone();
        let stream = streams.start();
        let drain = drain.clone();
        Box::pin(async move {
            let http1 = request.version() < http::Version::HTTP_2;
            let mut response = admit(&context, request, connection).await;
            // Envoy writes `server` on every response, its own answers too.
            context.http.server_header.apply(response.headers_mut());
            if http1 && drain.phase() >= Phase::Discouraging {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| HoldPermit::new(body, stream).boxed_unsync()))
        }) as ResponseFuture
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
    let settings = &context.http;
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
        filter_chain: context.index,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_for_the_last_stream_then_the_whole_timeout() {
        let streams = ActiveStreams::new();
        let stream = streams.start();
        let idle = tokio::spawn({
            let streams = streams.clone();
            async move { streams.idle_for(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished(), "a stream is in flight");
        drop(stream);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished());
        let again = streams.start();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(again);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(
            !idle.is_finished(),
            "the timer restarted when the stream ended"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(idle.is_finished());
    }
}
