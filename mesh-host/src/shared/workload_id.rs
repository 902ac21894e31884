//! The identity of a workload.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// The identity of a workload: the trust boundary between a component's
/// requests and the policies applied to them. A newtype so a plain string can
/// never be passed where an identity is meant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId(Arc<str>);

/// A workload id that is empty or contains whitespace or control characters.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid workload id {0:?}: must be non-empty, without whitespace or control characters")]
pub struct InvalidWorkloadId(String);

impl WorkloadId {
    /// Validates and wraps `id`.
    pub fn new(id: &str) -> Result<Self, InvalidWorkloadId> {
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidWorkloadId(id.to_owned()));
        }
        Ok(Self(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkloadId({})", self.0)
    }
}

impl std::str::FromStr for WorkloadId {
    type Err = InvalidWorkloadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_id_rejects_empty_and_whitespace() {
        assert!(WorkloadId::new("").is_err());
        assert!(WorkloadId::new("a b").is_err());
        assert!(WorkloadId::new("a\n").is_err());
        assert_eq!(
            WorkloadId::new("inbound|8080||hello").map(|id| id.to_string()),
            Ok("inbound|8080||hello".to_owned())
        );
    }
}
