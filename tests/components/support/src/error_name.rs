//! Names of `wasi:http` error codes exactly as the WIT spells them, so tests
//! can assert on `x-outbound-error` with the names from the specification.

/// Defines `fn wit_name(code: &ErrorCode) -> &'static str`, the WIT case name
/// of a code (e.g. `HTTP-request-denied`), for the `error-code` type of
/// `wasi:http@0.2` or `@0.3`: both spell the same cases.
#[macro_export]
macro_rules! wit_error_names {
    ($error_code:ident) => {
        /// The WIT case name of `code`, e.g. `HTTP-request-denied`.
        fn wit_name(code: &$error_code) -> &'static str {
            match code {
                $error_code::DnsTimeout => "DNS-timeout",
                $error_code::DnsError(_) => "DNS-error",
                $error_code::DestinationNotFound => "destination-not-found",
                $error_code::DestinationUnavailable => "destination-unavailable",
                $error_code::DestinationIpProhibited => "destination-IP-prohibited",
                $error_code::DestinationIpUnroutable => "destination-IP-unroutable",
                $error_code::ConnectionRefused => "connection-refused",
                $error_code::ConnectionTerminated => "connection-terminated",
                $error_code::ConnectionTimeout => "connection-timeout",
                $error_code::ConnectionReadTimeout => "connection-read-timeout",
                $error_code::ConnectionWriteTimeout => "connection-write-timeout",
                $error_code::ConnectionLimitReached => "connection-limit-reached",
                $error_code::TlsProtocolError => "TLS-protocol-error",
                $error_code::TlsCertificateError => "TLS-certificate-error",
                $error_code::TlsAlertReceived(_) => "TLS-alert-received",
                $error_code::HttpRequestDenied => "HTTP-request-denied",
                $error_code::HttpRequestLengthRequired => "HTTP-request-length-required",
                $error_code::HttpRequestBodySize(_) => "HTTP-request-body-size",
                $error_code::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
                $error_code::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
                $error_code::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
                $error_code::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
                $error_code::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
                $error_code::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
                $error_code::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
                $error_code::HttpResponseIncomplete => "HTTP-response-incomplete",
                $error_code::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
                $error_code::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
                $error_code::HttpResponseBodySize(_) => "HTTP-response-body-size",
                $error_code::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
                $error_code::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
                $error_code::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
                $error_code::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
                $error_code::HttpResponseTimeout => "HTTP-response-timeout",
                $error_code::HttpUpgradeFailed => "HTTP-upgrade-failed",
                $error_code::HttpProtocolError => "HTTP-protocol-error",
                $error_code::LoopDetected => "loop-detected",
                $error_code::ConfigurationError => "configuration-error",
                $error_code::InternalError(_) => "internal-error",
            }
        }
    };
}
