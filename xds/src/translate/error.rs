//! Translation errors: which resource, which field, what is wrong.

use std::fmt;

use crate::config::ResourceKind;

use super::path::FieldPath;

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The field changes behaviour and mesh-host does not implement it.
    Unsupported,
    /// A required field is not set.
    Missing,
    /// The value is not valid; the text says why.
    Invalid(String),
}

/// A problem at a field path inside a resource (or a bootstrap file).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Dotted path, such as `virtual_hosts[0].routes[2].match.connect_matcher`.
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

impl FieldError {
    pub(crate) fn unsupported(path: &FieldPath<'_>) -> Self {
        Self {
            field: path.to_string(),
            problem: Problem::Unsupported,
        }
    }

    pub(crate) fn missing(path: &FieldPath<'_>) -> Self {
        Self {
            field: path.to_string(),
            problem: Problem::Missing,
        }
    }

    pub(crate) fn invalid(path: &FieldPath<'_>, why: impl fmt::Display) -> Self {
        Self {
            field: path.to_string(),
            problem: Problem::Invalid(why.to_string()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "(resource)"
        } else {
            &self.field
        };
        match &self.problem {
            Problem::Unsupported => write!(f, "{field} is not supported"),
            Problem::Missing => write!(f, "{field} is missing"),
            Problem::Invalid(why) => write!(f, "{field}: {why}"),
        }
    }
}

/// A resource that failed translation; its name goes into the NACK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} \"{name}\": {error}")]
pub struct TranslateError {
    /// Resource type.
    pub kind: ResourceKind,
    /// Resource name (empty when the resource could not even be decoded).
    pub name: String,
    /// The first problem found.
    pub error: FieldError,
}

impl TranslateError {
    pub(crate) fn new(kind: ResourceKind, name: &str, error: FieldError) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            error,
        }
    }
}

/// Result of translating one field or sub-message.
pub(crate) type FieldResult<T> = Result<T, FieldError>;
