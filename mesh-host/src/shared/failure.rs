//! The failures the host answers for itself, and the one table that turns each into an HTTP
//! status, a gRPC status and Envoy's local-reply body.

use http::{HeaderValue, StatusCode, header};

use crate::body::{ResponseBody, empty, full};

/// Response header naming why the host, not a component, answered.
pub const REASON_HEADER: &str = "x-mesh-host-reason";

/// A failure the host answers for itself. Each maps to an HTTP status and,
/// for gRPC requests, to a gRPC status in a trailers-only response: a gRPC
/// client never sees an HTML or plain-text error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No route matches the request.
    NoRoute,
    /// The route's workload is not bound.
    NoWorkload,
    /// The component trapped or exceeded its memory.
    Trapped,
    /// The component did not answer in time.
    DeadlineExceeded,
    /// The workload is at its concurrency limit.
    Overloaded,
    /// The host's memory budget for component instances (or the workload's
    /// share of it) has no room for the instance the request needs.
    MemoryBudgetExhausted,
    /// The host is shutting down.
    Draining,
    /// A policy refused the request.
    Denied,
    /// An RBAC filter refused the request (Envoy: 403 `RBAC: access denied`).
    Unauthorized,
    /// A local rate limit is used up (Envoy: `local_rate_limited`).
    RateLimited {
        /// The filter's `status` (429 unless configured).
        status: StatusCode,
        /// gRPC requests get `RESOURCE_EXHAUSTED` instead of the status's
        /// mapping (`rate_limited_as_resource_exhausted`).
        resource_exhausted: bool,
    },
    /// The fault filter injected an abort (Envoy: `fault filter abort`).
    FaultAbort {
        /// The HTTP status to answer with.
        status: StatusCode,
        /// The gRPC status, when the fault names one; else the status's mapping.
        grpc: Option<u8>,
    },
    /// An authorization service denied the request (`ext_authz`): its status and body.
    AuthzDenied {
        /// The service's status (403 unless it names one).
        status: StatusCode,
        /// The service's body.
        body: String,
    },
    /// The authorization service failed and the filter fails closed (`status_on_error`).
    AuthzError {
        /// The configured status (403 by default).
        status: StatusCode,
    },
    /// The request's JSON Web Token is missing or not valid (`jwt_authn`): 401, or 403 for
    /// an audience that is not allowed, with the verification status as the body.
    JwtRejected {
        /// 401 or 403.
        status: StatusCode,
        /// jwt_verify_lib's wording of why (`Jwt is expired`, ...).
        reason: &'static str,
    },
    /// The global rate-limit service answered OVER_LIMIT (`envoy.filters.http.ratelimit`).
    RateLimitedByService {
        /// The filter's `rate_limited_status` (429 unless configured).
        status: StatusCode,
        /// gRPC requests get `RESOURCE_EXHAUSTED` instead of the status's mapping.
        resource_exhausted: bool,
        /// The service's `raw_body`.
        body: String,
    },
    /// The rate-limit service failed and `failure_mode_deny` refuses the request.
    RateLimitServiceError {
        /// The filter's `status_on_error` (500 unless configured).
        status: StatusCode,
    },
    /// Basic or API key credentials are missing or not accepted.
    CredentialsRejected {
        /// 401, or 403 for a known client that is not allowed here.
        status: StatusCode,
        /// Envoy's wording of why.
        reason: &'static str,
    },
    /// The request body is larger than a filter may buffer (ext_authz's `with_request_body`
    /// without `allow_partial_message`): Envoy's 413 `Payload Too Large`.
    BufferLimitExceeded,
    /// The request is malformed.
    BadRequest(String),
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// The request headers are larger than the workload allows.
    HeadersTooLarge,
    /// A gRPC request arrived over HTTP/1.x.
    GrpcNeedsHttp2,
    /// The upstream cluster could not be reached (no healthy endpoint,
    /// connect failure, reset before the response head).
    UpstreamUnavailable,
    /// A circuit breaker of the upstream cluster is full.
    UpstreamOverflow,
    /// The stream saw no activity for the listener's `stream_idle_timeout`:
    /// 408 while the request was still arriving, 504 once it had arrived
    /// (Envoy's `maybeRequestTimeoutCode`).
    StreamIdleTimeout {
        /// The whole request had arrived.
        request_complete: bool,
    },
    /// The request did not arrive whole within the listener's
    /// `request_timeout`.
    RequestTimeout,
    /// A request head did not arrive whole within the listener's
    /// `request_headers_timeout` (from its first byte); the connection closes.
    RequestHeaderTimeout,
    /// The HTTP/1 codec refused the request, as Envoy's codec does: malformed head or
    /// framing (400), too many or too large headers (431), a protocol version the listener
    /// does not serve (426), a transfer coding other than `chunked` (501). The connection
    /// closes after the answer.
    Codec {
        /// The status Envoy answers with.
        status: StatusCode,
        /// What was wrong, for the log.
        details: &'static str,
    },
}

/// gRPC status codes used by the host (from `grpc/status.h`).
mod grpc_code {
    pub const INTERNAL: u8 = 13;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const UNAVAILABLE: u8 = 14;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    pub const UNKNOWN: u8 = 2;
    pub const UNAUTHENTICATED: u8 = 16;
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`: the gRPC status a local reply
/// with this HTTP status carries.
fn grpc_code_of(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => grpc_code::INTERNAL,
        401 => grpc_code::UNAUTHENTICATED,
        403 => grpc_code::PERMISSION_DENIED,
        404 => grpc_code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => grpc_code::UNAVAILABLE,
        _ => grpc_code::UNKNOWN,
    }
}

impl Failure {
    /// The HTTP status for a plain HTTP request.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoWorkload
            | Failure::Overloaded
            | Failure::MemoryBudgetExhausted
            | Failure::Draining
            | Failure::UpstreamUnavailable
            | Failure::UpstreamOverflow => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Trapped => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Failure::Denied | Failure::Unauthorized => StatusCode::FORBIDDEN,
            Failure::RateLimited { status, .. }
            | Failure::FaultAbort { status, .. }
            | Failure::AuthzDenied { status, .. }
            | Failure::AuthzError { status }
            | Failure::JwtRejected { status, .. }
            | Failure::RateLimitedByService { status, .. }
            | Failure::RateLimitServiceError { status }
            | Failure::CredentialsRejected { status, .. } => *status,
            Failure::BadRequest(_) | Failure::GrpcNeedsHttp2 => StatusCode::BAD_REQUEST,
            Failure::PayloadTooLarge | Failure::BufferLimitExceeded => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Failure::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::StreamIdleTimeout {
                request_complete: true,
            } => StatusCode::GATEWAY_TIMEOUT,
            Failure::StreamIdleTimeout {
                request_complete: false,
            }
            | Failure::RequestTimeout
            | Failure::RequestHeaderTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::Codec { status, .. } => *status,
        }
    }

    /// The gRPC status for a gRPC request.
    pub fn grpc_code(&self) -> u8 {
        match self {
            Failure::NoRoute | Failure::NoWorkload | Failure::GrpcNeedsHttp2 => {
                grpc_code::UNIMPLEMENTED
            }
            Failure::Trapped | Failure::BadRequest(_) => grpc_code::INTERNAL,
            Failure::DeadlineExceeded => grpc_code::DEADLINE_EXCEEDED,
            Failure::Overloaded
            | Failure::MemoryBudgetExhausted
            | Failure::Draining
            | Failure::UpstreamUnavailable
            | Failure::UpstreamOverflow => grpc_code::UNAVAILABLE,
            Failure::RateLimited {
                resource_exhausted: true,
                ..
            } => grpc_code::RESOURCE_EXHAUSTED,
            Failure::RateLimited { status, .. } => grpc_code_of(*status),
            Failure::RateLimitedByService {
                resource_exhausted: true,
                ..
            } => grpc_code::RESOURCE_EXHAUSTED,
            Failure::AuthzDenied { status, .. }
            | Failure::AuthzError { status }
            | Failure::JwtRejected { status, .. }
            | Failure::RateLimitedByService { status, .. }
            | Failure::RateLimitServiceError { status }
            | Failure::CredentialsRejected { status, .. } => grpc_code_of(*status),
            Failure::BufferLimitExceeded => grpc_code_of(StatusCode::PAYLOAD_TOO_LARGE),
            Failure::FaultAbort {
                grpc: Some(code), ..
            } => *code,
            Failure::FaultAbort { status, .. } => grpc_code_of(*status),
            Failure::Denied | Failure::Unauthorized => grpc_code::PERMISSION_DENIED,
            Failure::PayloadTooLarge | Failure::HeadersTooLarge => grpc_code::RESOURCE_EXHAUSTED,
            // Envoy derives these from the HTTP status: 504 is UNAVAILABLE,
            // 408 has no entry and is UNKNOWN.
            Failure::StreamIdleTimeout {
                request_complete: true,
            } => grpc_code::UNAVAILABLE,
            Failure::StreamIdleTimeout {
                request_complete: false,
            }
            | Failure::RequestTimeout
            | Failure::RequestHeaderTimeout => grpc_code::UNKNOWN,
            Failure::Codec { status, .. } => grpc_code_of(*status),
        }
    }

    /// Envoy's response code details for this failure where Envoy has its own words for it,
    /// else the host's reason.
    pub fn details(&self) -> &'static str {
        match self {
            Failure::NoRoute => "route_not_found",
            Failure::NoWorkload => "cluster_not_found",
            other => other.reason(),
        }
    }

    /// Envoy's response flag for this failure, for the access log's `%RESPONSE_FLAGS%`
    /// (`None`: Envoy sets no flag for it).
    pub fn response_flag(&self) -> Option<&'static str> {
        match self {
            Failure::NoRoute => Some("NR"),
            Failure::NoWorkload => Some("NC"),
            Failure::DeadlineExceeded => Some("UT"),
            Failure::UpstreamUnavailable => Some("UF"),
            Failure::UpstreamOverflow => Some("UO"),
            Failure::RateLimited { .. } | Failure::RateLimitedByService { .. } => Some("RL"),
            Failure::RateLimitServiceError { .. } => Some("RLSE"),
            Failure::AuthzDenied { .. } | Failure::AuthzError { .. } => Some("UAEX"),
            Failure::FaultAbort { .. } => Some("FI"),
            Failure::StreamIdleTimeout { .. } => Some("SI"),
            _ => None,
        }
    }

    /// A short, stable token for logs and the reason header.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::NoRoute => "no_route",
            Failure::NoWorkload => "no_workload",
            Failure::Trapped => "component_failed",
            Failure::DeadlineExceeded => "deadline_exceeded",
            Failure::Overloaded => "overloaded",
            Failure::MemoryBudgetExhausted => "memory_budget_exhausted",
            Failure::Draining => "draining",
            Failure::Denied => "denied",
            Failure::Unauthorized => "rbac_access_denied",
            Failure::RateLimited { .. } => "local_rate_limited",
            Failure::FaultAbort { .. } => "fault_abort",
            Failure::AuthzDenied { .. } => "ext_authz_denied",
            Failure::AuthzError { .. } => "ext_authz_error",
            Failure::JwtRejected { .. } => "jwt_authn_access_denied",
            Failure::RateLimitedByService { .. } => "request_rate_limited",
            Failure::RateLimitServiceError { .. } => "rate_limit_error",
            Failure::CredentialsRejected { .. } => "credentials_rejected",
            Failure::BufferLimitExceeded => "request_payload_too_large",
            Failure::BadRequest(_) => "bad_request",
            Failure::PayloadTooLarge => "payload_too_large",
            Failure::HeadersTooLarge => "headers_too_large",
            Failure::GrpcNeedsHttp2 => "grpc_requires_http2",
            Failure::UpstreamUnavailable => "upstream_unavailable",
            Failure::UpstreamOverflow => "upstream_overflow",
            Failure::StreamIdleTimeout { .. } => "stream_idle_timeout",
            Failure::RequestTimeout => "request_timeout",
            Failure::RequestHeaderTimeout => "request_header_timeout",
            Failure::Codec { .. } => "codec_error",
        }
    }

    /// The body of the plain-text HTTP answer.
    pub fn text(&self) -> String {
        match self {
            Failure::NoRoute => "no route matches the request".into(),
            Failure::NoWorkload => "the route's workload is not available".into(),
            Failure::Trapped => "the component failed while handling the request".into(),
            Failure::DeadlineExceeded => "the component did not answer before the deadline".into(),
            Failure::Overloaded => "the workload is overloaded".into(),
            Failure::MemoryBudgetExhausted => {
                "the host has no memory left for the component; retry later".into()
            }
            Failure::Draining => "the host is shutting down".into(),
            Failure::Denied => "the request is not allowed by policy".into(),
            // Envoy's RBAC, local rate limit and fault filters' bodies.
            Failure::Unauthorized => "RBAC: access denied".into(),
            Failure::RateLimited { .. } => "local_rate_limited".into(),
            Failure::FaultAbort { .. } => "fault filter abort".into(),
            // The service's own body, or none, as Envoy sends them.
            Failure::AuthzDenied { body, .. } | Failure::RateLimitedByService { body, .. } => {
                body.clone()
            }
            Failure::AuthzError { .. } | Failure::RateLimitServiceError { .. } => String::new(),
            Failure::JwtRejected { reason, .. } | Failure::CredentialsRejected { reason, .. } => {
                (*reason).into()
            }
            Failure::BufferLimitExceeded => "Payload Too Large".into(),
            Failure::BadRequest(why) => format!("bad request: {why}"),
            Failure::PayloadTooLarge => "the request body is larger than allowed".into(),
            Failure::HeadersTooLarge => "the request headers are larger than allowed".into(),
            Failure::GrpcNeedsHttp2 => {
                "gRPC requires HTTP/2; this request arrived over HTTP/1.x".into()
            }
            Failure::UpstreamUnavailable => {
                "upstream connect error or disconnect/reset before headers".into()
            }
            Failure::UpstreamOverflow => "upstream circuit breaker overflow".into(),
            // Envoy's local-reply bodies, word for word.
            Failure::StreamIdleTimeout { .. } => "stream timeout".into(),
            Failure::RequestTimeout => "request timeout".into(),
            Failure::RequestHeaderTimeout => "request header timeout".into(),
            // Envoy answers codec errors with the status's reason phrase.
            Failure::Codec { status, .. } => status.canonical_reason().unwrap_or("").into(),
        }
    }

    /// The response the host sends: gRPC-shaped (HTTP 200, trailers-only,
    /// `grpc-status`/`grpc-message` in the headers) when `grpc`, a plain-text
    /// HTTP error otherwise.
    pub fn response(&self, grpc: bool) -> http::Response<ResponseBody> {
        let message = self.text();
        let mut response = if grpc {
            let mut response = http::Response::new(empty());
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert(
                "grpc-status",
                HeaderValue::from(u16::from(self.grpc_code())),
            );
            // Envoy leaves `grpc-message` out of a local reply without a body.
            if let Ok(value) = HeaderValue::from_str(&percent_encode_grpc_message(&message))
                && !message.is_empty()
            {
                headers.insert("grpc-message", value);
            }
            response
        } else {
            let mut response = http::Response::new(full(message));
            *response.status_mut() = self.status();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                // What Envoy writes on its local replies.
                HeaderValue::from_static("text/plain"),
            );
            response
        };
        response
            .headers_mut()
            .insert(REASON_HEADER, HeaderValue::from_static(self.reason()));
        response
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Codec { details, .. } => {
                write!(f, "{}: {details}", self.reason())
            }
            _ => f.write_str(self.reason()),
        }
    }
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII and `%`
/// itself (gRPC over HTTP/2 protocol spec).
fn percent_encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_failures_are_trailers_only_with_http_200() {
        let response = Failure::Trapped.response(true);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "13");
        assert!(response.headers().contains_key("grpc-message"));
    }

    #[test]
    fn grpc_status_mapping_follows_the_issue_table() {
        assert_eq!(Failure::NoRoute.grpc_code(), 12);
        assert_eq!(Failure::NoWorkload.grpc_code(), 12);
        assert_eq!(Failure::Trapped.grpc_code(), 13);
        assert_eq!(Failure::DeadlineExceeded.grpc_code(), 4);
        assert_eq!(Failure::Overloaded.grpc_code(), 14);
        assert_eq!(Failure::MemoryBudgetExhausted.grpc_code(), 14);
        assert_eq!(
            Failure::MemoryBudgetExhausted.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(Failure::Draining.grpc_code(), 14);
        assert_eq!(Failure::Denied.grpc_code(), 7);
    }

    #[test]
    fn http_failures_carry_their_status_and_reason() {
        let response = Failure::DeadlineExceeded.response(false);
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.headers()[REASON_HEADER], "deadline_exceeded");
        assert_eq!(
            Failure::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn every_failure_has_one_http_status_grpc_code_and_body() {
        let limited = |status, resource_exhausted| Failure::RateLimited {
            status,
            resource_exhausted,
        };
        for (failure, status, grpc, body) in [
            (Failure::Unauthorized, 403, 7, "RBAC: access denied"),
            (
                limited(StatusCode::TOO_MANY_REQUESTS, false),
                429,
                14,
                "local_rate_limited",
            ),
            (
                limited(StatusCode::TOO_MANY_REQUESTS, true),
                429,
                8,
                "local_rate_limited",
            ),
            (
                limited(StatusCode::SERVICE_UNAVAILABLE, false),
                503,
                14,
                "local_rate_limited",
            ),
            (
                Failure::FaultAbort {
                    status: StatusCode::IM_A_TEAPOT,
                    grpc: None,
                },
                418,
                2,
                "fault filter abort",
            ),
            (
                Failure::FaultAbort {
                    status: StatusCode::OK,
                    grpc: Some(4),
                },
                200,
                4,
                "fault filter abort",
            ),
            (
                Failure::PayloadTooLarge,
                413,
                8,
                "the request body is larger than allowed",
            ),
            (
                Failure::HeadersTooLarge,
                431,
                8,
                "the request headers are larger than allowed",
            ),
            (Failure::NoRoute, 404, 12, "no route matches the request"),
        ] {
            assert_eq!(failure.status().as_u16(), status, "{failure:?}");
            assert_eq!(failure.grpc_code(), grpc, "{failure:?}");
            assert_eq!(failure.text(), body, "{failure:?}");
            let grpc_answer = failure.response(true);
            assert_eq!(grpc_answer.status(), StatusCode::OK);
            assert_eq!(
                grpc_answer.headers()["grpc-status"],
                grpc.to_string().as_str()
            );
        }
    }

    #[test]
    fn envoys_http_to_grpc_status_mapping() {
        for (http, grpc) in [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (500, 2),
        ] {
            let status = StatusCode::from_u16(http).expect("status");
            assert_eq!(grpc_code_of(status), grpc, "{http}");
        }
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode_grpc_message("50% ok\n"), "50%25 ok%0A");
    }
}
