//! Calls a filter makes to a service (authorization server, JWKS endpoint, rate-limit
//! service) through the snapshot's upstream client, the same path every routed request
//! takes: the cluster's endpoints, balancing, breakers and TLS apply. gRPC services are
//! reached with tonic's generated clients over a [`ClusterChannel`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::egress::{Egress, EgressError, UpstreamRoute};

/// Largest response body a filter reads from a service (a JWKS document, a denial body).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a call to a service failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The upstream client could not deliver it.
    #[error(transparent)]
    Upstream(#[from] EgressError),
    /// No whole answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body could not be read.
    #[error("reading the answer: {0}")]
    Body(String),
}

/// A tower service that sends tonic's requests to one cluster through the upstream client,
/// with the `:authority` the service configuration names.
#[derive(Clone)]
pub(crate) struct ClusterChannel<'a> {
    upstream: &'a Egress,
    cluster: &'a str,
    authority: Authority,
    timeout: Option<Duration>,
}

impl<'a> ClusterChannel<'a> {
    /// A channel to `cluster`; `timeout` bounds each call until its response head.
    pub(crate) fn new(
        upstream: &'a Egress,
        cluster: &'a str,
        authority: Authority,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            upstream,
            cluster,
            authority,
            timeout,
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for ClusterChannel<'_> {
    type Response = http::Response<WasiBody>;
    type Error = EgressError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, EgressError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (mut head, body) = request.into_parts();
        let path = head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match http::Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => head.uri = uri,
            Err(error) => {
                let error = EgressError::InvalidRequest(error.to_string());
                return Box::pin(async move { Err(error) });
            }
        }
        let body: WasiBody = body
            .map_err(|status| HttpError::InternalError(Some(status.to_string())))
            .boxed_unsync();
        let route = UpstreamRoute::to_cluster(self.cluster, self.timeout);
        self.upstream
            .send(http::Request::from_parts(head, body), route)
    }
}

/// Sends `request` (its URI carries the authority) to `cluster` and reads the whole answer
/// within `timeout`.
pub(crate) async fn http_call(
    upstream: &Egress,
    cluster: &str,
    request: http::Request<Bytes>,
    timeout: Duration,
) -> Result<http::Response<Bytes>, CallError> {
    let (head, body) = request.into_parts();
    let body: WasiBody = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    let route = UpstreamRoute::to_cluster(cluster, Some(timeout));
    let exchange = async {
        let response = upstream
            .send(http::Request::from_parts(head, body), route)
            .await?;
        let (head, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|error| CallError::Body(error.to_string()))?
            .to_bytes();
        Ok(http::Response::from_parts(head, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}
