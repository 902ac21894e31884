//! Envoy's retry conditions (`retry_on`) and its default back-off: fully
//! jittered, 25 ms base doubling per retry, at most 250 ms.

use std::time::Duration;

use mesh_xds::config::{RetryOn, RetryPolicy};
use rand::Rng;

use super::error::{ConnectError, EgressError};

const BASE_INTERVAL: Duration = Duration::from_millis(25);
const MAX_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a response head calls for another try.
pub(super) fn response_is_retriable<B>(policy: &RetryPolicy, response: &http::Response<B>) -> bool {
    let status = response.status().as_u16();
    let on = |condition| policy.retry_on.contains(&condition);
    if on(RetryOn::FiveXx) && status >= 500
        || on(RetryOn::GatewayError) && (502..=504).contains(&status)
        || on(RetryOn::Retriable4xx) && status == 409
        || on(RetryOn::RetriableStatusCodes) && policy.retriable_status_codes.contains(&status)
    {
        return true;
    }
    // gRPC conditions look at a trailers-only answer's status.
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u8>().ok());
    match grpc_status {
        Some(1) => on(RetryOn::GrpcCancelled),
        Some(4) => on(RetryOn::GrpcDeadlineExceeded),
        Some(8) => on(RetryOn::GrpcResourceExhausted),
        Some(13) => on(RetryOn::GrpcInternal),
        Some(14) => on(RetryOn::GrpcUnavailable),
        _ => false,
    }
}

/// Whether a failed try calls for another one. `5xx` and `gateway-error`
/// cover every failure without a response, as in Envoy; overflow is never
/// retried.
pub(super) fn error_is_retriable(policy: &RetryPolicy, error: &EgressError) -> bool {
    let on = |condition| policy.retry_on.contains(&condition);
    let any_failure = on(RetryOn::FiveXx) || on(RetryOn::GatewayError);
    match error {
        EgressError::Connect {
            source: ConnectError::Overflow(_),
            ..
        } => false,
        EgressError::Connect { .. } => any_failure || on(RetryOn::ConnectFailure),
        EgressError::Reset { .. } | EgressError::Timeout(_) => any_failure || on(RetryOn::Reset),
        _ => false,
    }
}

/// Waits before retry number `attempt + 1`.
pub(super) async fn backoff(attempt: u32) {
    let ceiling = BASE_INTERVAL
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(MAX_INTERVAL);
    let wait = rand::thread_rng().gen_range(Duration::ZERO..=ceiling);
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;

    fn policy(on: &[RetryOn], codes: &[u16]) -> RetryPolicy {
        RetryPolicy {
            retry_on: on.iter().copied().collect::<BTreeSet<_>>(),
            num_retries: 1,
            per_try_timeout: None,
            retriable_status_codes: codes.to_vec(),
            avoid_previous_hosts: false,
        }
    }

    fn response(status: u16, grpc: Option<&'static str>) -> http::Response<()> {
        let mut builder = http::Response::builder().status(status);
        if let Some(code) = grpc {
            builder = builder.header("grpc-status", code);
        }
        builder.body(()).expect("response")
    }

    fn refused() -> EgressError {
        EgressError::Connect {
            cluster: "c".into(),
            endpoint: "e".into(),
            source: ConnectError::Io(Arc::new(std::io::ErrorKind::ConnectionRefused.into())),
        }
    }

    #[test]
    fn status_conditions() {
        let five = policy(&[RetryOn::FiveXx], &[]);
        assert!(response_is_retriable(&five, &response(500, None)));
        assert!(!response_is_retriable(&five, &response(404, None)));
        let gateway = policy(&[RetryOn::GatewayError], &[]);
        assert!(response_is_retriable(&gateway, &response(503, None)));
        assert!(!response_is_retriable(&gateway, &response(500, None)));
        let codes = policy(&[RetryOn::RetriableStatusCodes], &[418]);
        assert!(response_is_retriable(&codes, &response(418, None)));
        assert!(!response_is_retriable(&codes, &response(503, None)));
        let grpc = policy(&[RetryOn::GrpcUnavailable], &[]);
        assert!(response_is_retriable(&grpc, &response(200, Some("14"))));
        assert!(!response_is_retriable(&grpc, &response(200, Some("13"))));
    }

    #[test]
    fn failure_conditions() {
        assert!(error_is_retriable(
            &policy(&[RetryOn::ConnectFailure], &[]),
            &refused()
        ));
        assert!(error_is_retriable(
            &policy(&[RetryOn::FiveXx], &[]),
            &refused()
        ));
        assert!(!error_is_retriable(
            &policy(&[RetryOn::Reset], &[]),
            &refused()
        ));
        let timeout = EgressError::Timeout(Duration::from_millis(1));
        assert!(error_is_retriable(
            &policy(&[RetryOn::Reset], &[]),
            &timeout
        ));
        let overflow = EgressError::Connect {
            cluster: "c".into(),
            endpoint: "e".into(),
            source: ConnectError::Overflow(super::super::Overflow::Pending),
        };
        assert!(!error_is_retriable(
            &policy(&[RetryOn::FiveXx], &[]),
            &overflow
        ));
    }
}
