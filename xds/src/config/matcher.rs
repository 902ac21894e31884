//! String, header and query-parameter matchers with Envoy's semantics.

use std::fmt;

use regex::Regex;

/// A regular expression compiled once at validation time (RE2 syntax via the `regex` crate).
///
/// Equality compares the source pattern, so two snapshots with the same config compare equal.
#[derive(Clone)]
pub struct SafeRegex {
    pattern: String,
    /// Anchored at both ends: Envoy's `safe_regex` matchers match the whole input.
    full: Regex,
}

impl SafeRegex {
    /// Compiles `pattern` for whole-input matching.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let full = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            full,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `input` matches.
    pub fn is_full_match(&self, input: &str) -> bool {
        self.full.is_match(input)
    }
}

impl fmt::Debug for SafeRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SafeRegex").field(&self.pattern).finish()
    }
}

impl PartialEq for SafeRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for SafeRegex {}

/// What a [`StringMatcher`] compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringPattern {
    /// The whole input equals the value.
    Exact(String),
    /// The input starts with the value.
    Prefix(String),
    /// The input ends with the value.
    Suffix(String),
    /// The input contains the value.
    Contains(String),
    /// The whole input matches the regex (`ignore_case` does not apply, as in Envoy).
    SafeRegex(SafeRegex),
}

/// Envoy's `type.matcher.v3.StringMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringMatcher {
    /// The pattern.
    pub pattern: StringPattern,
    /// ASCII case-insensitive comparison for exact/prefix/suffix/contains.
    pub ignore_case: bool,
}

impl StringMatcher {
    /// An exact, case-sensitive matcher.
    pub fn exact(value: impl Into<String>) -> Self {
        Self {
            pattern: StringPattern::Exact(value.into()),
            ignore_case: false,
        }
    }

    /// Whether `input` matches.
    pub fn matches(&self, input: &str) -> bool {
        let eq = |a: &str, b: &str| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match &self.pattern {
            StringPattern::SafeRegex(re) => re.is_full_match(input),
            StringPattern::Exact(v) => eq(input, v),
            StringPattern::Prefix(v) => input.get(..v.len()).is_some_and(|head| eq(head, v)),
            StringPattern::Suffix(v) => input
                .len()
                .checked_sub(v.len())
                .and_then(|at| input.get(at..))
                .is_some_and(|tail| eq(tail, v)),
            StringPattern::Contains(v) if self.ignore_case => {
                input.to_ascii_lowercase().contains(&v.to_ascii_lowercase())
            }
            StringPattern::Contains(v) => input.contains(v.as_str()),
        }
    }
}

/// How a [`HeaderMatcher`] tests the header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderMatch {
    /// The value matches the string matcher.
    String(StringMatcher),
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
    /// The value parses as an integer in `[start, end)`.
    Range {
        /// Inclusive start.
        start: i64,
        /// Exclusive end.
        end: i64,
    },
}

/// Envoy's `config.route.v3.HeaderMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatcher {
    /// Header name, lower case (pseudo-headers such as `:method` included).
    pub name: String,
    /// The test on the value.
    pub matcher: HeaderMatch,
    /// Negates the result.
    pub invert_match: bool,
    /// A missing header is matched as the empty string instead of failing.
    pub treat_missing_header_as_empty: bool,
}

impl HeaderMatcher {
    /// Whether a header with `value` (or `None` when absent) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = match (value, self.treat_missing_header_as_empty) {
            (Some(v), _) => Some(v),
            (None, true) => Some(""),
            (None, false) => None,
        };
        let result = match (&self.matcher, value) {
            (HeaderMatch::Present(present), v) => v.is_some() == *present,
            // Envoy: a missing header never matches a value test, even inverted.
            (_, None) => return false,
            (_, Some(v)) => self.test(v),
        };
        result != self.invert_match
    }

    /// Whether a header with these values (none when absent) matches, as Envoy 1.40 decides
    /// with its default runtime guard `envoy.reloadable_features.match_headers_individually`:
    /// each value is tested on its own and the matcher holds if any value passes; with
    /// `invert_match`, only if none does.
    pub fn matches_values<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> bool {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return self.matches(None);
        }
        let result = match &self.matcher {
            HeaderMatch::Present(present) => *present,
            _ => values.any(|value| self.test(value)),
        };
        result != self.invert_match
    }

    /// The value test, before `invert_match`.
    fn test(&self, value: &str) -> bool {
        match &self.matcher {
            HeaderMatch::Present(_) => true,
            HeaderMatch::String(m) => m.matches(value),
            HeaderMatch::Range { start, end } => value
                .parse::<i64>()
                .is_ok_and(|n| (*start..*end).contains(&n)),
        }
    }
}

/// Envoy's `config.route.v3.QueryParameterMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryParameterMatcher {
    /// Parameter name (case-sensitive).
    pub name: String,
    /// The test on the value; `None` means "present".
    pub matcher: Option<StringMatcher>,
}

impl QueryParameterMatcher {
    /// Whether a parameter with `value` (or `None` when absent) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (&self.matcher, value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(m), Some(v)) => m.matches(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pattern: StringPattern, ignore_case: bool) -> StringMatcher {
        StringMatcher {
            pattern,
            ignore_case,
        }
    }

    #[test]
    fn string_matcher_ignore_case_applies_to_prefix() {
        let m = matcher(StringPattern::Prefix("/API".into()), true);
        assert!(m.matches("/api/v1"));
        assert!(!matcher(StringPattern::Prefix("/API".into()), false).matches("/api/v1"));
    }

    #[test]
    fn safe_regex_matches_whole_input_only() {
        let re = SafeRegex::new("/v[0-9]+").expect("valid regex");
        assert!(re.is_full_match("/v12"));
        assert!(!re.is_full_match("/v12/extra"));
    }

    #[test]
    fn header_matcher_missing_header_never_matches_even_inverted() {
        let m = HeaderMatcher {
            name: "x-a".into(),
            matcher: HeaderMatch::String(StringMatcher::exact("b")),
            invert_match: true,
            treat_missing_header_as_empty: false,
        };
        assert!(!m.matches(None));
        assert!(m.matches(Some("c")));
        assert!(!m.matches(Some("b")));
    }

    #[test]
    fn header_matcher_range_is_half_open() {
        let m = HeaderMatcher {
            name: "x-n".into(),
            matcher: HeaderMatch::Range { start: 1, end: 3 },
            invert_match: false,
            treat_missing_header_as_empty: false,
        };
        assert!(m.matches(Some("2")));
        assert!(!m.matches(Some("3")));
        assert!(!m.matches(Some("two")));
    }

    #[test]
    fn header_matcher_present_false_matches_absence() {
        let m = HeaderMatcher {
            name: "x-a".into(),
            matcher: HeaderMatch::Present(false),
            invert_match: false,
            treat_missing_header_as_empty: false,
        };
        assert!(m.matches(None));
        assert!(!m.matches(Some("")));
    }

    #[test]
    fn query_parameter_without_matcher_means_present() {
        let m = QueryParameterMatcher {
            name: "debug".into(),
            matcher: None,
        };
        assert!(m.matches(Some("")));
        assert!(!m.matches(None));
    }
}
