//! Header additions and removals (`HeaderValueOption` lists), parsed once and applied the way
//! Envoy's `HeaderParser::evaluateHeaders` does: by the router's header options and by filters
//! that add headers (`response_headers_to_add`).
//!
//! Values are literal: Envoy's `%...%` command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`, ...)
//! are not interpreted, so a value containing them is sent as written.

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_xds::config::{HeaderAppendAction, HeaderValueOption};

/// A header that cannot be added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header \"{header}\": {reason}")]
pub struct InvalidHeaderEdit {
    /// The header name as configured.
    pub header: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Removals and additions for one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EditList {
    remove: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue, HeaderAppendAction)>,
}

impl EditList {
    /// Parses the headers to add and the names to remove.
    ///
    /// Like Envoy, refuses to add or remove `:`-prefixed pseudo-headers and `host`: routing and
    /// request finalization depend on them.
    pub fn compile(
        add: &[HeaderValueOption],
        remove: &[String],
    ) -> Result<Self, InvalidHeaderEdit> {
        let remove = remove
            .iter()
            .map(|name| modifiable_name(name))
            .collect::<Result<_, _>>()?;
        let add = add
            .iter()
            .map(|option| {
                let name = modifiable_name(&option.name)?;
                let value =
                    HeaderValue::from_str(&option.value).map_err(|_| InvalidHeaderEdit {
                        header: option.name.clone(),
                        reason: "the value is not a valid HTTP header value",
                    })?;
                Ok((name, value, option.append))
            })
            .collect::<Result<_, InvalidHeaderEdit>>()?;
        Ok(Self { remove, add })
    }

    /// Whether nothing is removed or added.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies this list as Envoy does: removals first; then every addition is decided against
    /// the headers as they are before any addition of this list (so `add_if_absent` does not see
    /// a header another entry of the same list adds); overwrites are applied before appends.
    ///
    /// Empty values are added: the xds layer does not carry `keep_empty_value`, and documents
    /// that mesh-host keeps them (Envoy drops them unless `keep_empty_value` is set).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        if self.add.is_empty() {
            return;
        }
        let decisions: Vec<Op> = self
            .add
            .iter()
            .map(|(name, _, action)| {
                let present = headers.contains_key(name);
                match action {
                    HeaderAppendAction::AppendIfExistsOrAdd => Op::Append,
                    HeaderAppendAction::AddIfAbsent if present => Op::Skip,
                    HeaderAppendAction::AddIfAbsent => Op::Append,
                    HeaderAppendAction::OverwriteIfExists if !present => Op::Skip,
                    HeaderAppendAction::OverwriteIfExists
                    | HeaderAppendAction::OverwriteIfExistsOrAdd => Op::Overwrite,
                }
            })
            .collect();
        for ((name, value, _), op) in self.add.iter().zip(&decisions) {
            if *op == Op::Overwrite {
                headers.insert(name.clone(), value.clone());
            }
        }
        for ((name, value, _), op) in self.add.iter().zip(&decisions) {
            if *op == Op::Append {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Skip,
    Overwrite,
    Append,
}

fn modifiable_name(name: &str) -> Result<HeaderName, InvalidHeaderEdit> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(InvalidHeaderEdit {
            header: name.to_owned(),
            reason: "`:`-prefixed and `host` headers may not be added or removed (Envoy rejects them)",
        });
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeaderEdit {
        header: name.to_owned(),
        reason: "not a valid HTTP header name",
    })
}
