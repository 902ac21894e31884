//! Response header edits a filter decides while decoding (from a service's answer) and
//! applies while encoding, whoever produced the response.

use http::{HeaderMap, HeaderName, HeaderValue};

/// How one header is written into the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Edit {
    /// Another value of the header (`addCopy`).
    Add,
    /// The only value of the header (`setCopy`).
    Set,
    /// Only when the response has no such header.
    AddIfAbsent,
    /// Only when the response already has such a header, replacing it.
    OverwriteIfExists,
}

/// Edits in the order they were decided.
#[derive(Debug, Default)]
pub(super) struct ResponseEdits(Vec<(Edit, HeaderName, HeaderValue)>);

impl ResponseEdits {
    /// Adds an edit; a name or value that is not a valid header is dropped, as Envoy drops it.
    pub(super) fn push(&mut self, edit: Edit, name: &str, value: &str) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.0.push((edit, name, value));
        }
    }

    /// Writes every edit into `headers`: the values `Set` writes replace what was there,
    /// repeated `Set`s of one name keep every value (`Set-Cookie`).
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        for (edit, name, _) in &self.0 {
            if *edit == Edit::Set {
                headers.remove(name);
            }
        }
        for (edit, name, value) in &self.0 {
            match edit {
                Edit::Add | Edit::Set => {
                    headers.append(name.clone(), value.clone());
                }
                Edit::AddIfAbsent => {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                Edit::OverwriteIfExists => {
                    if headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_add_appends_and_conditional_edits_look_first() {
        let mut headers = HeaderMap::new();
        headers.insert("x-set", HeaderValue::from_static("old"));
        headers.insert("x-add", HeaderValue::from_static("old"));
        headers.insert("x-over", HeaderValue::from_static("old"));
        let mut edits = ResponseEdits::default();
        edits.push(Edit::Set, "x-set", "a");
        edits.push(Edit::Set, "x-set", "b");
        edits.push(Edit::Add, "x-add", "new");
        edits.push(Edit::AddIfAbsent, "x-add", "ignored");
        edits.push(Edit::AddIfAbsent, "x-absent", "added");
        edits.push(Edit::OverwriteIfExists, "x-over", "new");
        edits.push(Edit::OverwriteIfExists, "x-missing", "ignored");
        edits.push(Edit::Add, "bad name", "dropped");
        edits.apply(&mut headers);
        let all = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        assert_eq!(all("x-set"), ["a", "b"]);
        assert_eq!(all("x-add"), ["old", "new"]);
        assert_eq!(all("x-absent"), ["added"]);
        assert_eq!(all("x-over"), ["new"]);
        assert!(all("x-missing").is_empty());
    }
}
