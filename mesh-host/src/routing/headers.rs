//! The router's header mutations (`request_headers_to_add`/`_remove` and the response pair) of
//! each level, compiled once, and the order Envoy applies the levels in.

use std::sync::Arc;

use http::HeaderMap;
use mesh_xds::config::HeaderMutations;

use super::RouteTableError;
use crate::shared::{EditList, InvalidHeaderEdit};

/// The mutations of one level (route configuration, virtual host, route or weighted-cluster
/// entry), with names and values parsed once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    request: EditList,
    response: EditList,
}

impl InvalidHeaderEdit {
    fn in_route_config(self, route_config: &str) -> RouteTableError {
        RouteTableError::InvalidHeader {
            route_config: route_config.to_owned(),
            header: self.header,
            reason: self.reason,
        }
    }
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
            )
            .map_err(|error| error.in_route_config(route_config))?,
            response: EditList::compile(
                &mutations.response_headers_to_add,
                &mutations.response_headers_to_remove,
            )
            .map_err(|error| error.in_route_config(route_config))?,
        })
    }

    /// Whether this level changes nothing (and can be left out of a chain).
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
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
    use http::HeaderValue;
    use mesh_xds::config::{HeaderAppendAction, HeaderValueOption};

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
