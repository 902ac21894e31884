//! The egress path of components: workload policy (gRPC flag, egress allow
//! rules), then the egress listener's routes matched on the request's
//! authority, then the upstream client. Anything not allowed and routed is
//! refused with `HTTP-request-denied` before a connection is made.
//!
//! A component's request options apply as far as a shared pool allows: its
//! `first-byte-timeout` (with the route's timeout, the shorter wins) and
//! `between-bytes-timeout`. Connection setup is bounded by the cluster's
//! `connect_timeout`, not the component's `connect-timeout`, because a pooled
//! connection serves every component and most requests open none.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use mesh_policies::egress::{EgressRequest, Scheme, parse_authority};
use mesh_policies::grpc::is_grpc_content_type;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::Shared;
use crate::body::{BetweenBytes, empty, full};
use crate::egress::UpstreamRoute;
use crate::handler::{OutgoingFuture, WorkloadId, deny_outbound};
use crate::routing::Decision;

pub(super) fn send(
    shared: &Arc<Shared>,
    workload: &WorkloadId,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> OutgoingFuture {
    let (mut parts, body) = request.into_parts();
    let deny = |why: &str| deny_outbound(&shared.metrics, workload, &parts.uri, why);
    let Some(bound) = shared
        .by_cluster
        .load()
        .values()
        .find(|bound| &bound.id == workload)
        .cloned()
    else {
        return deny("the workload is not bound to this host");
    };
    let uri = &parts.uri;
    let Some(scheme) = uri.scheme_str().and_then(Scheme::parse) else {
        return deny("only http and https requests may leave");
    };
    let Some(authority) = uri.authority() else {
        return deny("the request names no authority");
    };
    let (host, port) = match parse_authority(authority.as_str(), scheme) {
        Ok(parsed) => parsed,
        Err(error) => return deny(&error.to_string()),
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
    if let Err(denied) = bound.policy.check_outbound(&checked, grpc) {
        return deny(&denied.to_string());
    }
    let snapshot = shared.snapshot.load_full();
    let Some((listener, table)) = &snapshot.egress else {
        return deny("no egress listener is configured, so nothing may leave");
    };
    let forward = match table.select(&parts, rand::random()) {
        Decision::Forward(forward) => forward,
        Decision::NoRoute | Decision::NoCluster { .. } => {
            return deny(&format!(
                "no route of egress listener {listener:?} matches {authority}"
            ));
        }
        Decision::DirectResponse {
            status,
            body,
            headers,
        } => {
            let mut response = http::Response::new(body.map_or_else(empty, |b| full(b.to_vec())));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            headers.apply_to_response(response.headers_mut());
            return Box::pin(async move { Ok(response) });
        }
        Decision::Redirect {
            location,
            status,
            headers,
        } => {
            let mut response = http::Response::new(empty());
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            headers.apply_to_response(response.headers_mut());
            return Box::pin(async move { Ok(response) });
        }
    };
    forward.apply_to_request(&mut parts);
    let route = UpstreamRoute {
        cluster: forward.cluster.clone(),
        timeout: shortest(
            forward.timeout,
            options.and_then(|options| options.first_byte_timeout),
        ),
        retry: forward.retry_policy.clone(),
        hash_policy: forward.hash_policy.clone(),
        source_ip: None,
    };
    let sent = shared
        .egress
        .send(http::Request::from_parts(parts, body), route);
    let between_bytes = options.and_then(|options| options.between_bytes_timeout);
    let workload = workload.clone();
    Box::pin(async move {
        match sent.await {
            Ok(mut response) => {
                forward.apply_to_response(response.headers_mut());
                Ok(match between_bytes {
                    Some(limit) => {
                        response.map(|body| BetweenBytes::new(body, limit).boxed_unsync())
                    }
                    None => response,
                })
            }
            Err(error) => {
                tracing::info!(%workload, cluster = %forward.cluster, "outbound request failed: {error}");
                Err::<_, HttpError>(error.to_wasi())
            }
        }
    })
}

fn shortest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
