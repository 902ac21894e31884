//! The one place a failure becomes an answer: the host's HTTP or gRPC reply for it, counted
//! per workload and reason.

use http::{HeaderValue, StatusCode, header};

use crate::body::{ResponseBody, empty, full};
use crate::filters::Halt;
use crate::metrics::Metrics;
use crate::routing::Decision;
use crate::shared::Failure;

/// The answer for `failure`, counted against `workload` (empty: none).
pub(super) fn fail(
    metrics: &Metrics,
    failure: &Failure,
    workload: &str,
    grpc: bool,
) -> http::Response<ResponseBody> {
    metrics.failure(workload, failure.reason());
    failure.response(grpc)
}

/// The answer of a filter that stopped the request.
pub(super) fn halted(
    metrics: &Metrics,
    halt: Halt,
    workload: &str,
    grpc: bool,
) -> http::Response<ResponseBody> {
    match halt {
        Halt::Fail(failure) => fail(metrics, &failure, workload, grpc),
        Halt::Answer(response) => response,
    }
}

/// The router's own answer for a decision that sends the request nowhere (an inbound
/// route's, or an egress route's for a component): a direct response,
/// a redirect, no route (404) or a route without a cluster (503). Envoy applies the route's
/// response header mutations to these local replies too.
pub fn router_reply(
    metrics: &Metrics,
    decision: Decision,
    grpc: bool,
) -> http::Response<ResponseBody> {
    match decision {
        Decision::Forward(forward) => {
            // A forward that reaches here names a cluster that is neither local nor known.
            let mut response = fail(metrics, &Failure::NoWorkload, &forward.cluster, grpc);
            forward.apply_to_response(response.headers_mut());
            response
        }
        Decision::NoRoute => fail(metrics, &Failure::NoRoute, "", grpc),
        Decision::NoCluster { headers } => {
            let mut response = fail(metrics, &Failure::NoWorkload, "", grpc);
            headers.apply_to_response(response.headers_mut());
            response
        }
        Decision::DirectResponse {
            status,
            body,
            headers,
        } => {
            let mut response =
                http::Response::new(body.map_or_else(empty, |bytes| full(bytes.to_vec())));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            headers.apply_to_response(response.headers_mut());
            response
        }
        Decision::Redirect {
            location,
            status,
            headers,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            let mut response = redirect(metrics, status, &location, grpc);
            headers.apply_to_response(response.headers_mut());
            response
        }
    }
}

/// A redirect to `location`.
pub(super) fn redirect(
    metrics: &Metrics,
    status: StatusCode,
    location: &str,
    grpc: bool,
) -> http::Response<ResponseBody> {
    let Ok(location) = HeaderValue::from_str(location) else {
        let failure =
            Failure::BadRequest("the redirect location is not a valid header value".into());
        return fail(metrics, &failure, "", grpc);
    };
    let mut response = http::Response::new(empty());
    *response.status_mut() = status;
    response.headers_mut().insert(header::LOCATION, location);
    response
}
