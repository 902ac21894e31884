//! Field paths for error messages, built on the stack and rendered only on error.

use std::fmt;

#[derive(Clone, Copy, Debug)]
enum Segment<'a> {
    /// The start of the path: empty for an xDS resource, a prefix such as
    /// `static_resources.clusters[1]` for a bootstrap resource.
    Root(&'a str),
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

/// A position inside a resource, such as `virtual_hosts[0].routes[2].match`.
#[derive(Clone, Copy, Debug)]
pub struct FieldPath<'a> {
    parent: Option<&'a FieldPath<'a>>,
    segment: Segment<'a>,
}

impl<'a> FieldPath<'a> {
    /// The top of a resource.
    pub fn root() -> Self {
        Self::prefixed("")
    }

    /// The top of a resource that sits at `prefix` inside a larger document.
    pub fn prefixed(prefix: &'a str) -> Self {
        Self {
            parent: None,
            segment: Segment::Root(prefix),
        }
    }

    /// A field of this message.
    pub fn field(&'a self, name: &'a str) -> FieldPath<'a> {
        self.child(Segment::Field(name))
    }

    /// An element of this repeated field.
    pub fn index(&'a self, index: usize) -> FieldPath<'a> {
        self.child(Segment::Index(index))
    }

    /// An entry of this map field.
    pub fn key(&'a self, key: &'a str) -> FieldPath<'a> {
        self.child(Segment::Key(key))
    }

    fn child(&'a self, segment: Segment<'a>) -> FieldPath<'a> {
        FieldPath {
            parent: Some(self),
            segment,
        }
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.push(path.segment);
            at = path.parent;
        }
        let mut empty = true;
        for segment in segments.into_iter().rev() {
            match segment {
                Segment::Root(prefix) => {
                    f.write_str(prefix)?;
                    empty = prefix.is_empty();
                    continue;
                }
                Segment::Field(name) if empty => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(key) => write!(f, "[\"{key}\"]")?,
            }
            empty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_indexes_and_keys() {
        let root = FieldPath::root();
        let vhosts = root.field("virtual_hosts");
        let vh = vhosts.index(0);
        let routes = vh.field("routes");
        let route = routes.index(2);
        let m = route.field("match");
        assert_eq!(m.to_string(), "virtual_hosts[0].routes[2].match");
        let policies = root.field("policies");
        assert_eq!(policies.key("p").to_string(), "policies[\"p\"]");
    }

    #[test]
    fn renders_after_a_prefix() {
        let root = FieldPath::prefixed("static_resources.clusters[1]");
        assert_eq!(
            root.field("load_assignment").to_string(),
            "static_resources.clusters[1].load_assignment"
        );
        assert_eq!(root.to_string(), "static_resources.clusters[1]");
    }
}
