//! Errors shared by every policy: configuration errors collected with their
//! path, and the denial a host turns into a response.

use std::fmt;

use http::StatusCode;

use crate::egress::EgressDenied;
use crate::grpc::GrpcDenied;
use crate::rate_limit::RateLimited;
use crate::rbac::RbacDenied;

/// One bad entry in a workload's policy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfigError {
    /// Where the entry is, for example `egress.allow[2].authority`.
    pub path: String,
    /// What is wrong with it and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every bad entry found while compiling a policy configuration.
///
/// Compilation never stops at the first problem, so an operator sees the
/// whole list at once. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct PolicyConfigErrors {
    /// The bad entries, in the order they appear in the configuration.
    pub errors: Vec<PolicyConfigError>,
}

impl PolicyConfigErrors {
    /// Records a bad entry at `path`.
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(PolicyConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// True when no bad entry was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Number of bad entries.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Iterates over the bad entries.
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyConfigError> {
        self.errors.iter()
    }

    /// Returns `Ok(value)` when nothing was recorded, the errors otherwise.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for PolicyConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid workload policy ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            write!(f, "\n  - {error}")?;
        }
        Ok(())
    }
}

/// Why a request was refused by a workload's policy.
///
/// Carries the HTTP and gRPC status a host answers with, so every denial is
/// reported the same way whatever check produced it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenied {
    /// A gRPC flag of the workload forbids the request.
    #[error(transparent)]
    Grpc(#[from] GrpcDenied),
    /// No egress rule allows the outbound request.
    #[error(transparent)]
    Egress(#[from] EgressDenied),
    /// Inbound authorization refused the request.
    #[error(transparent)]
    Rbac(#[from] RbacDenied),
    /// The workload's local rate limit is exhausted.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
}

impl PolicyDenied {
    /// The HTTP status to answer an inbound request with (an outbound denial
    /// is reported to the component as `HTTP-request-denied` instead).
    pub fn http_status(&self) -> StatusCode {
        match self {
            PolicyDenied::Grpc(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PolicyDenied::Egress(_) | PolicyDenied::Rbac(_) => StatusCode::FORBIDDEN,
            PolicyDenied::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `grpc-status` code to answer a gRPC request with (sent with HTTP
    /// 200 and the code in the trailers, as gRPC requires).
    pub fn grpc_status(&self) -> u32 {
        match self {
            PolicyDenied::Grpc(_) => GRPC_UNIMPLEMENTED,
            PolicyDenied::Egress(_) | PolicyDenied::Rbac(_) => GRPC_PERMISSION_DENIED,
            PolicyDenied::RateLimited(_) => GRPC_UNAVAILABLE,
        }
    }
}

/// gRPC status `PERMISSION_DENIED`.
const GRPC_PERMISSION_DENIED: u32 = 7;
/// gRPC status `UNIMPLEMENTED`.
const GRPC_UNIMPLEMENTED: u32 = 12;
/// gRPC status `UNAVAILABLE` (what Envoy maps HTTP 429 to).
const GRPC_UNAVAILABLE: u32 = 14;
