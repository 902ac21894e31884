//! Errors shared by every policy: configuration errors collected with their
//! path, and the denial a host turns into a response.

use std::fmt;

use crate::egress::EgressDenied;
use crate::grpc::GrpcDenied;

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

/// Why an outbound request was refused by a workload's policy (the host
/// reports it to the component as `HTTP-request-denied`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenied {
    /// A gRPC flag of the workload forbids the request.
    #[error(transparent)]
    Grpc(#[from] GrpcDenied),
    /// No egress rule allows the outbound request.
    #[error(transparent)]
    Egress(#[from] EgressDenied),
}
