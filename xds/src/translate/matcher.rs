//! String and header matchers.

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;

use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{
    HeaderMatch, HeaderMatcher, QueryParameterMatcher, SafeRegex, StringMatcher, StringPattern,
};

/// A regex matcher, compiled; a bad pattern names the field.
pub(crate) fn safe_regex(
    mut m: matcher::RegexMatcher,
    path: &FieldPath<'_>,
) -> FieldResult<SafeRegex> {
    let regex = std::mem::take(&mut m.regex);
    // `engine_type` only selects RE2 (the only engine), with its program-size limits.
    m.engine_type = None;
    reject_unsupported(&m, path)?;
    SafeRegex::new(&regex)
        .map_err(|e| FieldError::invalid(&path.field("regex"), format!("invalid regex: {e}")))
}

/// Envoy's `type.matcher.v3.StringMatcher`.
pub(crate) fn string_matcher(
    mut m: matcher::StringMatcher,
    path: &FieldPath<'_>,
) -> FieldResult<StringMatcher> {
    use matcher::string_matcher::MatchPattern;
    let pattern = match m.match_pattern.take() {
        Some(MatchPattern::Exact(v)) => StringPattern::Exact(v),
        Some(MatchPattern::Prefix(v)) => StringPattern::Prefix(v),
        Some(MatchPattern::Suffix(v)) => StringPattern::Suffix(v),
        Some(MatchPattern::Contains(v)) => StringPattern::Contains(v),
        Some(MatchPattern::SafeRegex(r)) => {
            StringPattern::SafeRegex(safe_regex(r, &path.field("safe_regex"))?)
        }
        Some(MatchPattern::Custom(_)) => {
            return Err(FieldError::unsupported(&path.field("custom")));
        }
        None => return Err(FieldError::missing(&path.field("match_pattern"))),
    };
    let ignore_case = std::mem::take(&mut m.ignore_case);
    reject_unsupported(&m, path)?;
    Ok(StringMatcher {
        pattern,
        ignore_case,
    })
}

/// Envoy's `config.route.v3.HeaderMatcher`.
pub(crate) fn header_matcher(
    mut m: route::HeaderMatcher,
    path: &FieldPath<'_>,
) -> FieldResult<HeaderMatcher> {
    use route::header_matcher::HeaderMatchSpecifier as S;
    let exact = |v: String| HeaderMatch::String(StringMatcher::exact(v));
    let plain = |p: StringPattern| {
        HeaderMatch::String(StringMatcher {
            pattern: p,
            ignore_case: false,
        })
    };
    let matcher = match m.header_match_specifier.take() {
        Some(S::ExactMatch(v)) => exact(v),
        Some(S::PrefixMatch(v)) => plain(StringPattern::Prefix(v)),
        Some(S::SuffixMatch(v)) => plain(StringPattern::Suffix(v)),
        Some(S::ContainsMatch(v)) => plain(StringPattern::Contains(v)),
        Some(S::SafeRegexMatch(r)) => plain(StringPattern::SafeRegex(safe_regex(
            r,
            &path.field("safe_regex_match"),
        )?)),
        Some(S::RangeMatch(r)) => HeaderMatch::Range {
            start: r.start,
            end: r.end,
        },
        Some(S::PresentMatch(p)) => HeaderMatch::Present(p),
        Some(S::StringMatch(s)) => {
            HeaderMatch::String(string_matcher(s, &path.field("string_match"))?)
        }
        // Envoy: no specifier means "present".
        None => HeaderMatch::Present(true),
    };
    let name = std::mem::take(&mut m.name);
    if name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    let invert_match = std::mem::take(&mut m.invert_match);
    let treat_missing_header_as_empty = std::mem::take(&mut m.treat_missing_header_as_empty);
    reject_unsupported(&m, path)?;
    Ok(HeaderMatcher {
        name: name.to_ascii_lowercase(),
        matcher,
        invert_match,
        treat_missing_header_as_empty,
    })
}

/// Envoy's `config.route.v3.QueryParameterMatcher`.
pub(crate) fn query_parameter_matcher(
    mut m: route::QueryParameterMatcher,
    path: &FieldPath<'_>,
) -> FieldResult<QueryParameterMatcher> {
    use route::query_parameter_matcher::QueryParameterMatchSpecifier as S;
    let matcher = match m.query_parameter_match_specifier.take() {
        Some(S::StringMatch(s)) => Some(string_matcher(s, &path.field("string_match"))?),
        Some(S::PresentMatch(true)) | None => None,
        Some(S::PresentMatch(false)) => {
            return Err(FieldError::invalid(
                &path.field("present_match"),
                "must be true",
            ));
        }
    };
    let name = std::mem::take(&mut m.name);
    if name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    reject_unsupported(&m, path)?;
    Ok(QueryParameterMatcher { name, matcher })
}
