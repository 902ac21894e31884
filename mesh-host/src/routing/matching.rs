//! Route match conditions (`RouteMatch`): path, case sensitivity, headers, query parameters and
//! gRPC, evaluated against a read-only view of the request as Envoy's header map presents it.

use mesh_xds::config::{HeaderMatcher, PathMatch, QueryParameterMatcher, RouteMatch, SafeRegex};

use crate::shared::RequestView;

/// A compiled [`RouteMatch`].
#[derive(Debug)]
pub(super) struct RouteMatcher {
    path: PathTest,
    headers: Vec<HeaderMatcher>,
    query_parameters: Vec<QueryParameterMatcher>,
    grpc: bool,
}

#[derive(Debug)]
enum PathTest {
    Prefix {
        value: String,
        ignore_case: bool,
    },
    Exact {
        value: String,
        ignore_case: bool,
    },
    SeparatedPrefix {
        value: String,
        ignore_case: bool,
    },
    /// `case_sensitive` does not apply to regexes (Envoy).
    Regex(SafeRegex),
}

impl RouteMatcher {
    pub(super) fn new(m: &RouteMatch) -> Self {
        let ignore_case = !m.case_sensitive;
        let path = match &m.path {
            PathMatch::Prefix(value) => PathTest::Prefix {
                value: value.clone(),
                ignore_case,
            },
            PathMatch::Path(value) => PathTest::Exact {
                value: value.clone(),
                ignore_case,
            },
            PathMatch::PathSeparatedPrefix(value) => PathTest::SeparatedPrefix {
                value: value.clone(),
                ignore_case,
            },
            PathMatch::SafeRegex(re) => PathTest::Regex(re.clone()),
        };
        Self {
            path,
            headers: m.headers.clone(),
            query_parameters: m.query_parameters.clone(),
            grpc: m.grpc,
        }
    }

    /// Whether the request matches; on a match, the length of the path that the route
    /// "consumed" (what `prefix_rewrite` replaces): the configured prefix or path, or the whole
    /// path for a regex.
    pub(super) fn matches(&self, request: &RequestView<'_>) -> Option<usize> {
        // The path test first: it is the cheapest and the most selective.
        let matched = self.path.matches(request.path())?;
        let rest = (!self.grpc || request.is_grpc())
            && self.headers.iter().all(|h| {
                h.matches_values(request.header_values(&h.name).iter().map(|v| v.as_ref()))
            })
            && self
                .query_parameters
                .iter()
                .all(|q| q.matches(request.query_parameter(&q.name)));
        rest.then_some(matched)
    }
}

impl PathTest {
    fn matches(&self, path: &str) -> Option<usize> {
        let starts_with = |value: &str, ignore_case: bool| {
            path.as_bytes()
                .get(..value.len())
                .is_some_and(|head| eq(head, value.as_bytes(), ignore_case))
        };
        match self {
            Self::Prefix { value, ignore_case } => {
                starts_with(value, *ignore_case).then_some(value.len())
            }
            Self::Exact { value, ignore_case } => {
                eq(path.as_bytes(), value.as_bytes(), *ignore_case).then_some(value.len())
            }
            Self::SeparatedPrefix { value, ignore_case } => (starts_with(value, *ignore_case)
                && matches!(path.as_bytes().get(value.len()), None | Some(b'/')))
            .then_some(value.len()),
            Self::Regex(re) => re.is_full_match(path).then_some(path.len()),
        }
    }
}

fn eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use http::request::Parts;

    use super::*;

    fn parts(uri: &str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    fn path_test(path: PathMatch, case_sensitive: bool) -> RouteMatcher {
        RouteMatcher::new(&RouteMatch {
            path,
            case_sensitive,
            headers: vec![],
            query_parameters: vec![],
            grpc: false,
        })
    }

    fn matched(m: &RouteMatcher, uri: &str) -> Option<usize> {
        let p = parts(uri, &[]);
        m.matches(&RequestView::new(&p))
    }

    #[test]
    fn path_matchers_ignore_the_query() {
        let m = path_test(PathMatch::Path("/a".into()), true);
        assert_eq!(matched(&m, "/a?x=1"), Some(2));
        assert_eq!(matched(&m, "/a/"), None);
    }

    #[test]
    fn case_insensitive_prefix_and_path() {
        let m = path_test(PathMatch::Prefix("/API".into()), false);
        assert_eq!(matched(&m, "/api/x"), Some(4));
        let m = path_test(PathMatch::Prefix("/API".into()), true);
        assert_eq!(matched(&m, "/api/x"), None);
    }

    #[test]
    fn path_separated_prefix_needs_a_separator_or_the_end() {
        let m = path_test(PathMatch::PathSeparatedPrefix("/api".into()), true);
        assert_eq!(matched(&m, "/api"), Some(4));
        assert_eq!(matched(&m, "/api/v1"), Some(4));
        assert_eq!(matched(&m, "/api?x"), Some(4));
        assert_eq!(matched(&m, "/apiv1"), None);
    }

    #[test]
    fn regex_matches_the_whole_path_without_query() {
        let re = SafeRegex::new("/v[0-9]+").expect("valid");
        let m = path_test(PathMatch::SafeRegex(re), false);
        assert_eq!(matched(&m, "/v12?q"), Some(4));
        assert_eq!(
            matched(&m, "/V12"),
            None,
            "case_sensitive does not apply to regex"
        );
    }

    #[test]
    fn repeated_headers_are_seen_one_value_at_a_time() {
        let p = parts("/", &[("x-a", "1"), ("x-a", "2")]);
        assert_eq!(RequestView::new(&p).header_values("x-a"), ["1", "2"]);
    }

    #[test]
    fn host_header_is_only_seen_as_authority() {
        let p = parts("/", &[("host", "a.com")]);
        let view = RequestView::new(&p);
        assert_eq!(view.header_values(":authority"), ["a.com"]);
        assert!(view.header_values("host").is_empty());
    }

    #[test]
    fn query_parameters_take_the_first_value_undecoded() {
        let p = parts("/p?a=1&b&a=2&c=x%20y", &[]);
        let view = RequestView::new(&p);
        assert_eq!(view.query_parameter("a"), Some("1"));
        assert_eq!(view.query_parameter("b"), Some(""));
        assert_eq!(view.query_parameter("c"), Some("x%20y"));
        assert_eq!(view.query_parameter("d"), None);
    }

    #[test]
    fn grpc_content_type_is_exact_or_plus_suffixed() {
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            let p = parts("/", &[("content-type", content_type)]);
            assert_eq!(RequestView::new(&p).is_grpc(), grpc, "{content_type}");
        }
    }
}
