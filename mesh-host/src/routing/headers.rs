//! Header mutations (`request_headers_to_add`/`_remove` and the response pair) compiled once and
//! applied the way Envoy's `HeaderParser::evaluateHeaders` does.
//!
//! Values are literal: Envoy's `%...%` command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`, ...)
//! are not interpreted, so a value containing them is sent as written.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_xds::config::{HeaderAppendAction, HeaderMutations, HeaderValueOption};

use super::RouteTableError;

/// The mutations of one level (route configuration, virtual host, route or weighted-cluster
/// entry), with names and values parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    request: EditList,
    response: EditList,
}

/// Removals and additions for one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EditList {
    remove: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue, HeaderAppendAction)>,
}

impl HeaderEdits {
    /// Parses a level's mutations; `route_config` names the configuration in errors.
    ///
    /// Like Envoy, refuses to add or remove `:`-prefixed pseudo-headers and `host`: routing and
    /// request finalization depend on them.
    pub fn compile(
        mutations: &HeaderMutations,
        route_config: &str,
    ) -> Result<Self, RouteTableError> {
        Ok(Self {
            request: EditList::compile(
                &mutations.request_headers_to_add,
                &mutations.request_headers_to_remove,
                route_config,
            )?,
            response: EditList::compile(
                &mutations.response_headers_to_add,
                &mutations.response_headers_to_remove,
                route_config,
            )?,
        })
    }

    /// Whether this level changes nothing (and can be left out of a chain).
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

impl EditList {
    fn compile(
        add: &[HeaderValueOption],
        remove: &[String],
        route_config: &str,
    ) -> Result<Self, RouteTableError> {
        let remove = remove
            .iter()
            .map(|name| modifiable_name(name, route_config))
            .collect::<Result<_, _>>()?;
        let add = add
            .iter()
            .map(|option| {
                let name = modifiable_name(&option.name, route_config)?;
                let value = HeaderValue::from_str(&option.value).map_err(|_| {
                    RouteTableError::InvalidHeader {
                        route_config: route_config.to_owned(),
                        header: option.name.clone(),
                        reason: "the value is not a valid HTTP header value",
                    }
                })?;
                Ok((name, value, option.append))
            })
            .collect::<Result<_, RouteTableError>>()?;
        Ok(Self { remove, add })
    }

    fn is_empty(&self) -> bool {
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

fn modifiable_name(name: &str, route_config: &str) -> Result<HeaderName, RouteTableError> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(RouteTableError::InvalidHeader {
            route_config: route_config.to_owned(),
            header: name.to_owned(),
            reason: "`:`-prefixed and `host` headers may not be added or removed (Envoy rejects them)",
        });
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| RouteTableError::InvalidHeader {
        route_config: route_config.to_owned(),
        header: name.to_owned(),
        reason: "not a valid HTTP header name",
    })
}

/// The levels of header mutations that apply to one routing outcome, in the order Envoy
/// evaluates them: weighted-cluster entry (when one was picked), route, virtual host, route
/// configuration. Later levels win on overwrite; on append, earlier levels' values come first.
///
/// This is Envoy's default order (`most_specific_header_mutations_wins: false`); the xds layer
/// rejects that flag, so the reverse order is never needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMutationChain {
    levels: Vec<Arc<HeaderEdits>>,
}

impl HeaderMutationChain {
    /// A chain of the given levels, most specific first; empty levels are dropped.
    pub fn new(levels: impl IntoIterator<Item = Arc<HeaderEdits>>) -> Self {
        Self {
            levels: levels.into_iter().filter(|l| !l.is_empty()).collect(),
        }
    }

    /// Applies the request mutations of every level.
    pub fn apply_to_request(&self, headers: &mut HeaderMap) {
        for level in &self.levels {
            level.request.apply(headers);
        }
    }

    /// Applies the response mutations of every level.
    pub fn apply_to_response(&self, headers: &mut HeaderMap) {
        for level in &self.levels {
            level.response.apply(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, value: &str, append: HeaderAppendAction) -> HeaderValueOption {
        HeaderValueOption {
            name: name.to_owned(),
            value: value.to_owned(),
            append,
        }
    }

    fn request_edits(add: Vec<HeaderValueOption>, remove: Vec<&str>) -> EditList {
        let mutations = HeaderMutations {
            request_headers_to_add: add,
            request_headers_to_remove: remove.into_iter().map(str::to_owned).collect(),
            ..HeaderMutations::default()
        };
        HeaderEdits::compile(&mutations, "rc")
            .expect("valid mutations")
            .request
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn append_if_exists_or_add_appends_a_value() {
        let mut h = headers(&[("x-a", "1")]);
        request_edits(
            vec![option("x-a", "2", HeaderAppendAction::AppendIfExistsOrAdd)],
            vec![],
        )
        .apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["1", "2"]);
    }

    #[test]
    fn add_if_absent_keeps_an_existing_header() {
        let edits = request_edits(
            vec![option("x-a", "2", HeaderAppendAction::AddIfAbsent)],
            vec![],
        );
        let mut present = headers(&[("x-a", "1")]);
        edits.apply(&mut present);
        assert_eq!(values(&present, "x-a"), ["1"]);
        let mut absent = HeaderMap::new();
        edits.apply(&mut absent);
        assert_eq!(values(&absent, "x-a"), ["2"]);
    }

    #[test]
    fn overwrite_if_exists_does_nothing_when_absent() {
        let edits = request_edits(
            vec![option("x-a", "2", HeaderAppendAction::OverwriteIfExists)],
            vec![],
        );
        let mut absent = HeaderMap::new();
        edits.apply(&mut absent);
        assert!(absent.is_empty());
        let mut present = headers(&[("x-a", "1"), ("x-a", "0")]);
        edits.apply(&mut present);
        assert_eq!(values(&present, "x-a"), ["2"]);
    }

    #[test]
    fn overwrite_if_exists_or_add_replaces_every_value() {
        let mut h = headers(&[("x-a", "1"), ("x-a", "0")]);
        request_edits(
            vec![option(
                "x-a",
                "2",
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            )],
            vec![],
        )
        .apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["2"]);
    }

    #[test]
    fn removals_happen_before_additions() {
        let mut h = headers(&[("x-a", "1")]);
        request_edits(
            vec![option("x-a", "2", HeaderAppendAction::AppendIfExistsOrAdd)],
            vec!["x-a"],
        )
        .apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["2"]);
    }

    #[test]
    fn add_if_absent_is_decided_before_the_same_level_adds() {
        let mut h = HeaderMap::new();
        request_edits(
            vec![
                option("x-a", "1", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-a", "2", HeaderAppendAction::AddIfAbsent),
            ],
            vec![],
        )
        .apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["1", "2"]);
    }

    #[test]
    fn overwrites_apply_before_appends_within_a_level() {
        let mut h = headers(&[("x-a", "0")]);
        request_edits(
            vec![
                option("x-a", "1", HeaderAppendAction::AppendIfExistsOrAdd),
                option("x-a", "2", HeaderAppendAction::OverwriteIfExistsOrAdd),
            ],
            vec![],
        )
        .apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["2", "1"]);
    }

    #[test]
    fn pseudo_headers_and_host_may_not_be_modified() {
        for name in [":path", "host", "Host"] {
            let mutations = HeaderMutations {
                request_headers_to_remove: vec![name.to_owned()],
                ..HeaderMutations::default()
            };
            let error = HeaderEdits::compile(&mutations, "rc").expect_err(name);
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn chain_applies_most_specific_level_first_so_least_specific_overwrite_wins() {
        let level = |value: &str| {
            Arc::new(
                HeaderEdits::compile(
                    &HeaderMutations {
                        request_headers_to_add: vec![option(
                            "x-a",
                            value,
                            HeaderAppendAction::OverwriteIfExistsOrAdd,
                        )],
                        ..HeaderMutations::default()
                    },
                    "rc",
                )
                .expect("valid"),
            )
        };
        let chain = HeaderMutationChain::new([level("route"), level("vhost"), level("config")]);
        let mut h = HeaderMap::new();
        chain.apply_to_request(&mut h);
        assert_eq!(values(&h, "x-a"), ["config"]);
    }
}
