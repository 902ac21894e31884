//! Why an upstream request failed, and what each failure becomes: a
//! `wasi:http` error code for a component, an HTTP or gRPC status for a
//! downstream client.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use wasmtime_wasi_http::Error as HttpError;

use super::breakers::Overflow;
use crate::shared::Failure;

/// Why a connection to an endpoint could not be opened.
#[derive(Debug, Clone, Error)]
pub enum ConnectError {
    /// A circuit breaker is full.
    #[error("circuit breaker overflow ({0:?})")]
    Overflow(Overflow),
    /// TCP connect or TLS handshake took longer than the connect timeout.
    #[error("connect timeout after {0:?}")]
    Timeout(Duration),
    /// The endpoint's DNS name did not resolve.
    #[error("DNS lookup of {0} failed: {1}")]
    Dns(String, Arc<io::Error>),
    /// TCP connect failed (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Io(Arc<io::Error>),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(Arc<io::Error>),
    /// Neither the cluster's `sni` nor the endpoint host is a valid TLS name.
    #[error("{0:?} is not a valid TLS server name")]
    InvalidServerName(String),
}

/// Why an upstream request failed.
#[derive(Debug, Error)]
pub enum EgressError {
    /// The route names a cluster the configuration does not have.
    #[error("cluster {0:?} is not configured")]
    UnknownCluster(String),
    /// The cluster has no endpoint that may take requests.
    #[error("cluster {0:?} has no healthy endpoint")]
    NoHealthyEndpoint(String),
    /// A circuit breaker of the cluster is full.
    #[error("cluster {cluster:?} circuit breaker overflow ({overflow:?})")]
    Overflow {
        /// The cluster.
        cluster: String,
        /// Which threshold.
        overflow: Overflow,
    },
    /// No connection could be made.
    #[error("cluster {cluster:?} endpoint {endpoint}: {source}")]
    Connect {
        /// The cluster.
        cluster: String,
        /// The endpoint tried.
        endpoint: String,
        /// What failed.
        source: ConnectError,
    },
    /// The connection failed after the request was sent (reset, protocol
    /// error, closed before the response head).
    #[error("cluster {cluster:?} endpoint {endpoint}: upstream reset: {reason}")]
    Reset {
        /// The cluster.
        cluster: String,
        /// The endpoint tried.
        endpoint: String,
        /// hyper's description.
        reason: String,
    },
    /// No response head before the route's timeout or the per-try timeout.
    #[error("upstream request timeout after {0:?}")]
    Timeout(Duration),
    /// The request cannot be sent as it is.
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl EgressError {
    /// The `wasi:http` error code the component sees.
    pub fn to_wasi(&self) -> HttpError {
        match self {
            EgressError::UnknownCluster(_) | EgressError::NoHealthyEndpoint(_) => {
                HttpError::DestinationUnavailable
            }
            EgressError::Overflow { .. } => HttpError::ConnectionLimitReached,
            EgressError::Connect { source, .. } => match source {
                ConnectError::Overflow(_) => HttpError::ConnectionLimitReached,
                ConnectError::Timeout(_) => HttpError::ConnectionTimeout,
                ConnectError::Dns(_, error) => HttpError::DnsError {
                    rcode: Some(error.to_string()),
                    info_code: None,
                },
                ConnectError::Io(error) => match error.kind() {
                    io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                    io::ErrorKind::TimedOut => HttpError::ConnectionTimeout,
                    io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                        HttpError::DestinationIpUnroutable
                    }
                    _ => HttpError::ConnectionTerminated,
                },
                ConnectError::Tls(error) => tls_error_code(error),
                ConnectError::InvalidServerName(_) => HttpError::TlsProtocolError,
            },
            EgressError::Reset { .. } => HttpError::ConnectionTerminated,
            EgressError::Timeout(_) => HttpError::HttpResponseTimeout,
            EgressError::InvalidRequest(_) => HttpError::HttpRequestUriInvalid,
        }
    }

    /// What a downstream client is answered: Envoy's 503 for upstream
    /// connection failures and overflow, 504 for timeouts.
    pub fn to_failure(&self) -> Failure {
        match self {
            EgressError::Timeout(_) => Failure::DeadlineExceeded,
            EgressError::InvalidRequest(why) => Failure::BadRequest(why.clone()),
            EgressError::Overflow { .. }
            | EgressError::Connect {
                source: ConnectError::Overflow(_),
                ..
            } => Failure::UpstreamOverflow,
            _ => Failure::UpstreamUnavailable,
        }
    }
}

/// rustls reports through `io::Error`; its inner error says which TLS
/// failure it was.
fn tls_error_code(error: &io::Error) -> HttpError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => HttpError::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => HttpError::TlsProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(source: ConnectError) -> EgressError {
        EgressError::Connect {
            cluster: "c".into(),
            endpoint: "127.0.0.1:1".into(),
            source,
        }
    }

    #[test]
    fn connection_failures_map_to_their_wasi_codes() {
        let refused = connect(ConnectError::Io(Arc::new(
            io::ErrorKind::ConnectionRefused.into(),
        )));
        assert!(matches!(refused.to_wasi(), HttpError::ConnectionRefused));
        let timeout = connect(ConnectError::Timeout(Duration::from_millis(5)));
        assert!(matches!(timeout.to_wasi(), HttpError::ConnectionTimeout));
        let bad_cert = connect(ConnectError::Tls(Arc::new(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ))));
        assert!(matches!(bad_cert.to_wasi(), HttpError::TlsCertificateError));
        assert!(matches!(
            EgressError::Timeout(Duration::from_secs(1)).to_wasi(),
            HttpError::HttpResponseTimeout
        ));
    }

    #[test]
    fn downstream_clients_get_envoy_statuses() {
        let refused = connect(ConnectError::Io(Arc::new(
            io::ErrorKind::ConnectionRefused.into(),
        )));
        assert_eq!(refused.to_failure().status(), 503);
        assert_eq!(
            EgressError::Timeout(Duration::from_secs(1))
                .to_failure()
                .status(),
            504
        );
        let overflow = connect(ConnectError::Overflow(Overflow::Pending));
        assert_eq!(overflow.to_failure().reason(), "upstream_overflow");
    }
}
