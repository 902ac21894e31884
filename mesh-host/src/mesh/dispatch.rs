use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode, header};
use wasmtime_wasi_http::WasiBody;

use mesh_policies::limits::Limits;

use super::Shared;
use crate::body::{ResponseBody, empty, full};
use crate::egress::UpstreamRoute;
use crate::frontend::{Dispatch, Failure, RequestMeta};
use crate::handler::{check_inbound, requested_grpc_timeout};
use crate::routing::{Decision, ForwardDecision};

/// Routes the requests of one listener with the route table of the snapshot
/// in force when each request arrives.
pub(super) struct ListenerDispatch {
    listener: String,
    shared: Arc<Shared>,
}

impl ListenerDispatch {
    pub(super) fn new(listener: String, shared: Arc<Shared>) -> Self {
        Self { listener, shared }
    }

    async fn serve(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> http::Response<ResponseBody> {
        let snapshot = self.shared.snapshot.load_full();
        let Some(table) = snapshot.table(&self.listener, meta.filter_chain) else {
            return self.fail(Failure::NoRoute, "", meta.grpc);
        };
        let (mut parts, body) = request.into_parts();
        let forward = match table.select(&parts, rand::random()) {
            Decision::Forward(forward) => forward,
            Decision::NoRoute => return self.fail(Failure::NoRoute, "", meta.grpc),
            // Envoy applies the route's response header mutations to these
            // local replies too.
            Decision::NoCluster { headers } => {
                let mut response = self.fail(Failure::NoWorkload, "", meta.grpc);
                headers.apply_to_response(response.headers_mut());
                return response;
            }
            Decision::DirectResponse {
                status,
                body,
                headers,
            } => {
                let mut response = direct_response(status, body.as_deref());
                headers.apply_to_response(response.headers_mut());
                return response;
            }
            Decision::Redirect {
                location,
                status,
                headers,
            } => {
                let mut response = redirect(status, &location);
                headers.apply_to_response(response.headers_mut());
                return response;
            }
        };
        let cluster = forward.cluster.clone();
        let Some(bound) = self.shared.by_cluster.load().get(&cluster).cloned() else {
            if !snapshot.config.clusters.contains_key(&cluster) {
                tracing::warn!(listener = %self.listener, %cluster, "the route's cluster is neither a local workload nor configured");
                let mut response = self.fail(Failure::NoWorkload, &cluster, meta.grpc);
                forward.apply_to_response(response.headers_mut());
                return response;
            }
            return self.forward_upstream(parts, body, &forward, meta).await;
        };
        if let Err(denied) = check_inbound(&bound.policy, &parts, &meta) {
            tracing::info!(workload = %bound.id, uri = %parts.uri, "inbound request denied: {denied}");
            return self.fail(Failure::from(&denied), bound.id.as_str(), meta.grpc);
        }
        forward.apply_to_request(&mut parts);
        let timeout = deadline(&forward, &bound.policy.limits, &parts, meta.grpc);
        match bound
            .workload
            .serve(http::Request::from_parts(parts, body), timeout)
            .await
        {
            Ok(mut response) => {
                forward.apply_to_response(response.headers_mut());
                response
            }
            Err(error) => {
                let failure = Failure::from(&error);
                tracing::warn!(workload = %bound.id, "{error}");
                self.fail(failure, bound.id.as_str(), meta.grpc)
            }
        }
    }

    /// Proxies to a remote cluster's endpoints through the upstream client.
    async fn forward_upstream(
        &self,
        mut parts: http::request::Parts,
        body: WasiBody,
        forward: &ForwardDecision,
        meta: RequestMeta,
    ) -> http::Response<ResponseBody> {
        let timeout = upstream_timeout(forward, &parts, meta.grpc);
        forward.apply_to_request(&mut parts);
        let route = UpstreamRoute {
            cluster: forward.cluster.clone(),
            timeout,
            retry: forward.retry_policy.clone(),
            hash_policy: forward.hash_policy.clone(),
            source_ip: Some(meta.peer.ip()),
        };
        match self
            .shared
            .egress
            .send(http::Request::from_parts(parts, body), route)
            .await
        {
            Ok(mut response) => {
                forward.apply_to_response(response.headers_mut());
                response
            }
            Err(error) => {
                tracing::warn!(listener = %self.listener, cluster = %forward.cluster, "upstream request failed: {error}");
                self.fail(error.to_failure(), &forward.cluster, meta.grpc)
            }
        }
    }

    fn fail(&self, failure: Failure, workload: &str, grpc: bool) -> http::Response<ResponseBody> {
        self.shared.metrics.failure(workload, failure.reason());
        failure.response(grpc)
    }
}

/// The route's timeout (Envoy: 15 s when unset, 0 = none), capped by the
/// workload's maximum. A gRPC client's `grpc-timeout` is honoured for local
/// components (Envoy only does so with `grpc_timeout_header_max`), capped by
/// the route's `grpc_timeout_header_max` when set, else the workload's maximum.
fn deadline(
    forward: &ForwardDecision,
    limits: &Limits,
    parts: &http::request::Parts,
    grpc: bool,
) -> Duration {
    let cap = limits.max_request_timeout;
    match grpc.then(|| requested_grpc_timeout(parts)).flatten() {
        Some(asked) => asked.min(
            forward
                .grpc_timeout_header_max
                .filter(|max| !max.is_zero())
                .unwrap_or(cap),
        ),
        None => match forward.timeout {
            Some(timeout) if !timeout.is_zero() => timeout.min(cap),
            _ => cap,
        },
    }
}

/// Envoy's upstream timeout: the route's, or with `grpc_timeout_header_max`
/// set, the client's `grpc-timeout` capped by it (0: not capped).
fn upstream_timeout(
    forward: &ForwardDecision,
    parts: &http::request::Parts,
    grpc: bool,
) -> Option<Duration> {
    let asked = grpc
        .then(|| {
            forward
                .grpc_timeout_header_max
                .zip(requested_grpc_timeout(parts))
        })
        .flatten();
    match asked {
        Some((max, asked)) if max.is_zero() => Some(asked),
        Some((max, asked)) => Some(asked.min(max)),
        None => forward.timeout,
    }
}

impl Dispatch for ListenerDispatch {
    fn dispatch(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> BoxFuture<'static, http::Response<ResponseBody>> {
        Box::pin(self.serve(request, meta))
    }
}

fn direct_response(status: u16, body: Option<&[u8]>) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(body.map_or_else(empty, |bytes| full(bytes.to_vec())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

fn redirect(status: u16, location: &str) -> http::Response<ResponseBody> {
    let mut response = direct_response(status, None);
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => Failure::BadRequest("the redirect location is not a valid header value".into())
            .response(false),
    }
}
