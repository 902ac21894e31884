//! The outbound area: the egress path of components. Workload policy (gRPC flag, egress
//! allow rules), then the egress listener's routes matched on the request's authority, then
//! either the upstream client or, when a local workload serves the route's cluster, that
//! workload's inbound pipeline in-process (no socket, no bytes on a wire; both sides' policy
//! applies). Anything not allowed and routed is refused with `HTTP-request-denied` before a
//! connection is made.
//!
//! A request that belongs to a traced request (the runtime hands over its [`RequestTrace`])
//! gets a client span, a child of the component's, and carries it as the parent in
//! `traceparent` (replacing the component's own copy) unless the connection manager or the
//! workload's policy (`tracing.inject_traceparent`) turns that off.
//!
//! A component's request options apply as far as a shared pool allows: its
//! `first-byte-timeout` (with the route's timeout, the shorter wins) and
//! `between-bytes-timeout`. Connection setup is bounded by the cluster's
//! `connect_timeout`, not the component's `connect-timeout`, because a pooled
//! connection serves every component and most requests open none.

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http_body_util::BodyExt;
use mesh_policies::egress::{EgressRequest, Scheme, parse_authority};
use mesh_policies::grpc::is_grpc_content_type;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::body::{BetweenBytes, HoldPermit};
use crate::inbound::{MeshInbound, router_reply};
use crate::metrics::Metrics;
use crate::routing::Decision;
use crate::runtime::OutgoingFuture;
use crate::shared::{OpenSpan, RequestTrace, SpanKind, UpstreamHost, WorkloadId};

/// Refuses an outbound request: logged with the reason, counted by `reason` (a short label:
/// `policy`, `no_route`, ...), and failed with `HTTP-request-denied` before any connection
/// is made.
pub fn deny(
    metrics: &Metrics,
    workload: &WorkloadId,
    uri: &http::Uri,
    reason: &str,
    why: &str,
) -> OutgoingFuture {
    tracing::info!(%workload, %uri, reason, "outbound request denied: {why}");
    metrics.egress_denied(workload, reason);
    Box::pin(async { Err(HttpError::HttpRequestDenied) })
}

/// Sends a component's request through the mesh: the single exit.
pub fn send(
    mesh: &Arc<MeshInbound>,
    workload: &WorkloadId,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> OutgoingFuture {
    let (mut parts, body) = request.into_parts();
    let trace = parts.extensions.remove::<RequestTrace>();
    let deny = |reason: &str, why: &str| deny(&mesh.metrics, workload, &parts.uri, reason, why);
    let Some(caller) = mesh.workloads.by_id(workload) else {
        return deny("not_bound", "the workload is not bound to this host");
    };
    let uri = &parts.uri;
    let Some(scheme) = uri.scheme_str().and_then(Scheme::parse) else {
        return deny("scheme", "only http and https requests may leave");
    };
    let Some(authority) = uri.authority() else {
        return deny("authority", "the request names no authority");
    };
    let (host, port) = match parse_authority(authority.as_str(), scheme) {
        Ok(parsed) => parsed,
        Err(error) => return deny("authority", &error.to_string()),
    };
    let grpc = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(is_grpc_content_type);
    let checked = EgressRequest {
        scheme,
        host,
        port,
        method: &parts.method,
    };
    if let Err(denied) = caller.policy().check_outbound(&checked, grpc) {
        return deny("policy", &denied.to_string());
    }
    let snapshot = mesh.snapshot.load_full();
    let Some((listener, chain)) = snapshot.egress_chain() else {
        return deny(
            "no_egress_listener",
            "no egress listener is configured, so nothing may leave",
        );
    };
    let mut forward = match chain.routes.select(&parts, rand::random()) {
        Decision::Forward(forward) => forward,
        Decision::NoRoute | Decision::NoCluster { .. } => {
            return deny(
                "no_route",
                &format!("no route of egress listener {listener:?} matches {authority}"),
            );
        }
        // The egress route answers itself, as the inbound router does.
        answered @ (Decision::DirectResponse { .. } | Decision::Redirect { .. }) => {
            let response = router_reply(&mesh.metrics, answered, grpc);
            return Box::pin(async move { Ok(response) });
        }
    };
    forward.suppress_envoy_headers = chain.suppress_envoy_headers;
    // Envoy's name for an egress span: `egress` and the authority the request named (before
    // the route rewrites it).
    let client =
        trace.map(|trace| trace.child_span(|| format!("egress {authority}"), SpanKind::Client));
    forward.apply_to_request(&mut parts);
    // A local callee's component span joins the trace under `child`.
    let (client_span, child) = match client {
        Some((mut span, child)) => {
            if let Some(span) = &mut span {
                span.set_text("upstream_cluster", forward.cluster.clone());
                span.set_text("mesh.workload", workload.to_string());
                span.set_text("http.method", parts.method.to_string());
                span.set_text("http.url", parts.uri.to_string());
            }
            if child.propagate && caller.policy().tracing.inject_traceparent {
                child.context.inject(&mut parts.headers);
            }
            (span, Some(child))
        }
        None => (None, None),
    };
    let timeout = shortest(
        forward.timeout,
        options.and_then(|options| options.first_byte_timeout),
    );
    let between_bytes = options.and_then(|options| options.between_bytes_timeout);
    let request = http::Request::from_parts(parts, body);
    if let Some(target) = mesh.workloads.by_cluster(&forward.cluster) {
        let mesh = mesh.clone();
        return Box::pin(async move {
            let served =
                mesh.serve_in_process(&snapshot, target, &forward.cluster, &caller, request, child);
            let mut response = match timeout {
                Some(limit) => match tokio::time::timeout(limit, served).await {
                    Ok(response) => response,
                    Err(_) => {
                        if let Some(mut span) = client_span {
                            span.fail();
                        }
                        return Err(HttpError::HttpResponseTimeout);
                    }
                },
                None => served.await,
            };
            forward.apply_to_response(response.headers_mut());
            let response = with_client_span(response, client_span);
            Ok(with_between_bytes(response, between_bytes))
        });
    }
    let route = forward.upstream_route(timeout, None);
    let sent = snapshot.upstream.send(request, route);
    let workload = workload.clone();
    let metrics = mesh.metrics.clone();
    Box::pin(async move {
        match sent.await {
            Ok(mut response) => {
                metrics.upstream_response(&forward.cluster, response.status().as_u16());
                forward.apply_to_response(response.headers_mut());
                let response = with_client_span(response, client_span);
                Ok(with_between_bytes(response, between_bytes))
            }
            Err(error) => {
                tracing::info!(%workload, cluster = %forward.cluster, "outbound request failed: {error}");
                if let Some(mut span) = client_span {
                    span.fail();
                }
                Err::<_, HttpError>(error.to_wasi())
            }
        }
    })
}

/// Records the response on the request's client span, which then ends with the body.
fn with_client_span(
    response: http::Response<WasiBody>,
    span: Option<OpenSpan>,
) -> http::Response<WasiBody> {
    let Some(mut span) = span else {
        return response;
    };
    span.set_status(response.status().as_u16());
    if let Some(UpstreamHost(host)) = response.extensions().get::<UpstreamHost>() {
        span.set_text("upstream_address", host.to_string());
    }
    response.map(|body| HoldPermit::new(body, span).boxed_unsync())
}

/// A component's `between-bytes-timeout` on the response body.
fn with_between_bytes(
    response: http::Response<WasiBody>,
    limit: Option<Duration>,
) -> http::Response<WasiBody> {
    match limit {
        Some(limit) => response.map(|body| BetweenBytes::new(body, limit).boxed_unsync()),
        None => response,
    }
}

fn shortest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
