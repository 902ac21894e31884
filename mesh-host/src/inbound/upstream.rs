//! Forwarding a routed request to a remote cluster through the upstream client, with Envoy's
//! upstream timeout and its local replies for upstream failures.

use std::time::Duration;

use wasmtime_wasi_http::WasiBody;

use super::answer;
use crate::body::ResponseBody;
use crate::egress::Egress;
use crate::metrics::Metrics;
use crate::routing::ForwardDecision;
use crate::shared::{RequestMeta, RequestTrace, ResponseDetails};

/// Sends the request to `forward.cluster` with the route's rewrites, timeout and retries. A
/// traced request carries its server span's context upstream in `traceparent`, as Envoy's
/// router injects it (unless the connection manager turns propagation off).
pub(super) async fn forward_upstream(
    metrics: &Metrics,
    upstream: &Egress,
    mut head: http::request::Parts,
    body: WasiBody,
    forward: &ForwardDecision,
    meta: &RequestMeta,
    trace: Option<&RequestTrace>,
) -> http::Response<ResponseBody> {
    let timeout = upstream_timeout(forward, &head, meta.grpc);
    forward.apply_to_request(&mut head);
    if let Some(trace) = trace
        && trace.propagate
    {
        trace.context.inject(&mut head.headers);
    }
    let route = forward.upstream_route(timeout, Some(meta.remote_ip));
    match upstream
        .send(http::Request::from_parts(head, body), route)
        .await
    {
        Ok(mut response) => {
            metrics.upstream_response(&forward.cluster, response.status().as_u16());
            forward.apply_to_response(response.headers_mut());
            response
                .extensions_mut()
                .insert(ResponseDetails("via_upstream"));
            response
        }
        Err(error) => {
            tracing::warn!(cluster = %forward.cluster, "upstream request failed: {error}");
            answer::fail(metrics, &error.to_failure(), &forward.cluster, meta.grpc)
        }
    }
}

/// Envoy's upstream timeout: the route's, or with `grpc_timeout_header_max` set, the client's
/// `grpc-timeout` capped by it (0: not capped).
fn upstream_timeout(
    forward: &ForwardDecision,
    head: &http::request::Parts,
    grpc: bool,
) -> Option<Duration> {
    let asked = super::requested_grpc_timeout(head, grpc);
    match forward.grpc_timeout_header_max.zip(asked) {
        Some((max, asked)) if max.is_zero() => Some(asked),
        Some((max, asked)) => Some(asked.min(max)),
        None => forward.timeout,
    }
}
