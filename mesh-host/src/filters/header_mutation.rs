//! `envoy.filters.http.header_mutation`: the filter's own request and response mutations, then
//! those of every per-route level, most specific level first unless
//! `most_specific_header_mutations_wins` (then least specific first, so the most specific has
//! the last word). Each list is applied in order, one mutation after the other.

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_xds::config::{
    HeaderAppendAction, HeaderEdit, HeaderMutation, HeaderMutationRules, StringMatcher,
};

/// A compiled header mutation filter.
pub(super) struct HeaderMutationFilter {
    own: Mutations,
    most_specific_wins: bool,
}

/// Request and response mutations, with names and values parsed once.
pub(super) struct Mutations {
    request: Vec<Edit>,
    response: Vec<Edit>,
}

enum Edit {
    Remove(HeaderName),
    Set {
        name: HeaderName,
        value: HeaderValue,
        action: HeaderAppendAction,
    },
    RemoveMatching(StringMatcher),
}

impl HeaderMutationFilter {
    pub(super) fn new(config: &HeaderMutation) -> Result<HeaderMutationFilter, String> {
        Ok(HeaderMutationFilter {
            own: Mutations::new(&config.mutations)?,
            most_specific_wins: config.most_specific_header_mutations_wins,
        })
    }

    /// `per_route` is most specific first.
    pub(super) fn decode<'a>(
        &self,
        head: &mut http::request::Parts,
        per_route: impl DoubleEndedIterator<Item = &'a Mutations>,
    ) {
        apply(&self.own.request, &mut head.headers);
        self.each_route_level(per_route, |m| apply(&m.request, &mut head.headers));
    }

    pub(super) fn encode<'a>(
        &self,
        headers: &mut HeaderMap,
        per_route: impl DoubleEndedIterator<Item = &'a Mutations>,
    ) {
        apply(&self.own.response, headers);
        self.each_route_level(per_route, |m| apply(&m.response, headers));
    }

    fn each_route_level<'a>(
        &self,
        per_route: impl DoubleEndedIterator<Item = &'a Mutations>,
        mut f: impl FnMut(&Mutations),
    ) {
        if self.most_specific_wins {
            per_route.rev().for_each(&mut f);
        } else {
            per_route.for_each(f);
        }
    }
}

impl Mutations {
    pub(super) fn new(rules: &HeaderMutationRules) -> Result<Mutations, String> {
        Ok(Mutations {
            request: rules
                .request
                .iter()
                .map(Edit::new)
                .collect::<Result<_, _>>()?,
            response: rules
                .response
                .iter()
                .map(Edit::new)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Edit {
    fn new(edit: &HeaderEdit) -> Result<Edit, String> {
        let name = |name: &str| {
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                return Err(format!("header {name:?} may not be mutated"));
            }
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))
        };
        Ok(match edit {
            HeaderEdit::Remove(header) => Edit::Remove(name(header)?),
            HeaderEdit::Append(option) => Edit::Set {
                name: name(&option.name)?,
                value: HeaderValue::from_str(&option.value).map_err(|_| {
                    format!("the value of {:?} is not a valid header value", option.name)
                })?,
                action: option.append,
            },
            HeaderEdit::RemoveOnMatch(matcher) => Edit::RemoveMatching(matcher.clone()),
        })
    }
}

fn apply(edits: &[Edit], headers: &mut HeaderMap) {
    for edit in edits {
        match edit {
            Edit::Remove(name) => {
                headers.remove(name);
            }
            Edit::Set {
                name,
                value,
                action,
            } => {
                let present = headers.contains_key(name);
                match action {
                    HeaderAppendAction::AppendIfExistsOrAdd => {
                        headers.append(name.clone(), value.clone());
                    }
                    HeaderAppendAction::AddIfAbsent if !present => {
                        headers.append(name.clone(), value.clone());
                    }
                    HeaderAppendAction::OverwriteIfExistsOrAdd => {
                        headers.insert(name.clone(), value.clone());
                    }
                    HeaderAppendAction::OverwriteIfExists if present => {
                        headers.insert(name.clone(), value.clone());
                    }
                    HeaderAppendAction::AddIfAbsent | HeaderAppendAction::OverwriteIfExists => {}
                }
            }
            Edit::RemoveMatching(matcher) => {
                let doomed: Vec<HeaderName> = headers
                    .keys()
                    .filter(|name| matcher.matches(name.as_str()))
                    .cloned()
                    .collect();
                for name in doomed {
                    headers.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_xds::config::HeaderValueOption;

    use super::*;

    fn set(name: &str, value: &str, append: HeaderAppendAction) -> HeaderEdit {
        HeaderEdit::Append(HeaderValueOption {
            name: name.to_owned(),
            value: value.to_owned(),
            append,
        })
    }

    fn response_of(rules: Vec<HeaderEdit>) -> Mutations {
        Mutations::new(&HeaderMutationRules {
            request: Vec::new(),
            response: rules,
        })
        .expect("valid")
    }

    #[test]
    fn mutations_apply_in_order_one_after_the_other() {
        let filter = HeaderMutationFilter {
            own: response_of(vec![
                set("x-a", "1", HeaderAppendAction::AppendIfExistsOrAdd),
                set("x-a", "2", HeaderAppendAction::AddIfAbsent),
                HeaderEdit::Remove("x-gone".to_owned()),
                HeaderEdit::RemoveOnMatch(StringMatcher {
                    pattern: mesh_xds::config::StringPattern::Prefix("x-internal-".to_owned()),
                    ignore_case: false,
                }),
            ]),
            most_specific_wins: false,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-gone", HeaderValue::from_static("v"));
        headers.insert("x-internal-a", HeaderValue::from_static("v"));
        filter.encode(&mut headers, std::iter::empty());
        assert_eq!(
            headers.get_all("x-a").iter().count(),
            1,
            "add_if_absent saw the first"
        );
        assert!(!headers.contains_key("x-gone"));
        assert!(!headers.contains_key("x-internal-a"));
    }

    #[test]
    fn least_specific_level_has_the_last_word_by_default() {
        let route = response_of(vec![set(
            "x-l",
            "route",
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        )]);
        let vhost = response_of(vec![set(
            "x-l",
            "vhost",
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        )]);
        let mut filter = HeaderMutationFilter {
            own: response_of(Vec::new()),
            most_specific_wins: false,
        };
        let mut headers = HeaderMap::new();
        filter.encode(&mut headers, [&route, &vhost].into_iter());
        assert_eq!(headers["x-l"], "vhost");
        filter.most_specific_wins = true;
        filter.encode(&mut headers, [&route, &vhost].into_iter());
        assert_eq!(headers["x-l"], "route");
    }

    #[test]
    fn pseudo_headers_and_host_are_refused() {
        for header in [":path", "host"] {
            assert!(
                Mutations::new(&HeaderMutationRules {
                    request: vec![HeaderEdit::Remove(header.to_owned())],
                    response: Vec::new(),
                })
                .is_err()
            );
        }
    }
}
