//! String matchers with Envoy's `StringMatcher` semantics.

use regex::Regex;
use serde::Deserialize;

use crate::PolicyConfigErrors;

/// How a [`StringMatch`] compares.
#[derive(Debug, Clone)]
pub enum MatchKind {
    /// The whole string equals this value.
    Exact(String),
    /// The string starts with this value.
    Prefix(String),
    /// The string ends with this value.
    Suffix(String),
    /// The string contains this value.
    Contains(String),
    /// The regular expression matches the whole string (as Envoy's
    /// `safe_regex` does); compiled once.
    Regex(Regex),
}

/// A string matcher: exact, prefix, suffix, contains or a full-string regex,
/// optionally ignoring ASCII case (like Envoy, `ignore_case` has no effect on
/// a regex; write `(?i)` in the pattern instead).
#[derive(Debug, Clone)]
pub struct StringMatch {
    kind: MatchKind,
    ignore_case: bool,
}

impl StringMatch {
    /// Matches a string equal to `value`.
    pub fn exact(value: impl Into<String>) -> StringMatch {
        StringMatch::new(MatchKind::Exact(value.into()))
    }

    /// Matches a string starting with `value`.
    pub fn prefix(value: impl Into<String>) -> StringMatch {
        StringMatch::new(MatchKind::Prefix(value.into()))
    }

    /// Matches a string ending with `value`.
    pub fn suffix(value: impl Into<String>) -> StringMatch {
        StringMatch::new(MatchKind::Suffix(value.into()))
    }

    /// Matches a string containing `value`.
    pub fn contains(value: impl Into<String>) -> StringMatch {
        StringMatch::new(MatchKind::Contains(value.into()))
    }

    /// Matches a string that `pattern` matches in full.
    pub fn regex(pattern: &str) -> Result<StringMatch, regex::Error> {
        let anchored = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(StringMatch::new(MatchKind::Regex(anchored)))
    }

    /// Compares ignoring ASCII case (exact, prefix, suffix and contains only).
    pub fn ignore_case(mut self, ignore_case: bool) -> StringMatch {
        self.ignore_case = ignore_case;
        self
    }

    fn new(kind: MatchKind) -> StringMatch {
        StringMatch {
            kind,
            ignore_case: false,
        }
    }

    /// The comparison this matcher makes.
    pub fn kind(&self) -> &MatchKind {
        &self.kind
    }

    /// True when `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        match &self.kind {
            MatchKind::Exact(s) => eq(v, s.as_bytes(), self.ignore_case),
            MatchKind::Prefix(s) => v
                .get(..s.len())
                .is_some_and(|head| eq(head, s.as_bytes(), self.ignore_case)),
            MatchKind::Suffix(s) => v
                .len()
                .checked_sub(s.len())
                .is_some_and(|start| eq(&v[start..], s.as_bytes(), self.ignore_case)),
            MatchKind::Contains(s) => {
                let s = s.as_bytes();
                s.is_empty() || v.windows(s.len()).any(|w| eq(w, s, self.ignore_case))
            }
            MatchKind::Regex(re) => re.is_match(value),
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

/// A string matcher as written: exactly one of `exact`, `prefix`, `suffix`,
/// `contains`, `safe_regex: { regex }` (Envoy's spelling) or `regex`, plus an
/// optional `ignore_case`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringMatchConfig {
    /// Equal to this value.
    pub exact: Option<String>,
    /// Starts with this value (not empty).
    pub prefix: Option<String>,
    /// Ends with this value (not empty).
    pub suffix: Option<String>,
    /// Contains this value (not empty).
    pub contains: Option<String>,
    /// Envoy's `safe_regex: { regex: "..." }`.
    pub safe_regex: Option<SafeRegexConfig>,
    /// Short form of `safe_regex`.
    pub regex: Option<String>,
    /// Compare ignoring ASCII case (not allowed with a regex).
    pub ignore_case: bool,
}

/// Envoy's `RegexMatcher`: the pattern must match the whole string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeRegexConfig {
    /// The pattern, in the `regex` crate's syntax (RE2-like).
    pub regex: String,
}

impl StringMatchConfig {
    /// Validates the matcher, recording problems under `path`.
    pub(crate) fn compile(
        &self,
        path: &str,
        errors: &mut PolicyConfigErrors,
    ) -> Option<StringMatch> {
        let regex = self
            .safe_regex
            .as_ref()
            .map(|r| r.regex.as_str())
            .or(self.regex.as_deref());
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.suffix.is_some(),
            self.contains.is_some(),
            self.safe_regex.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            errors.push(
                path,
                "a string matcher needs exactly one of exact, prefix, suffix, contains, safe_regex or regex",
            );
            return None;
        }
        let non_empty = |key: &str, value: &String, errors: &mut PolicyConfigErrors| {
            if value.is_empty() {
                errors.push(format!("{path}.{key}"), format!("{key} must not be empty"));
                false
            } else {
                true
            }
        };
        let matcher = if let Some(v) = &self.exact {
            StringMatch::exact(v)
        } else if let Some(v) = &self.prefix {
            non_empty("prefix", v, errors).then(|| StringMatch::prefix(v))?
        } else if let Some(v) = &self.suffix {
            non_empty("suffix", v, errors).then(|| StringMatch::suffix(v))?
        } else if let Some(v) = &self.contains {
            non_empty("contains", v, errors).then(|| StringMatch::contains(v))?
        } else {
            let key = if self.safe_regex.is_some() {
                "safe_regex.regex"
            } else {
                "regex"
            };
            let pattern = regex.unwrap_or_default();
            if self.ignore_case {
                errors.push(
                    format!("{path}.ignore_case"),
                    "ignore_case has no effect on a regex; write (?i) at the start of the pattern instead",
                );
                return None;
            }
            match StringMatch::regex(pattern) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("invalid regex {pattern:?}: {e}"),
                    );
                    return None;
                }
            }
        };
        Some(matcher.ignore_case(self.ignore_case))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_suffix_contains_match() {
        assert!(StringMatch::exact("abc").matches("abc"));
        assert!(!StringMatch::exact("abc").matches("abcd"));
        assert!(StringMatch::prefix("/admin").matches("/admin/x"));
        assert!(!StringMatch::prefix("/admin").matches("/adm"));
        assert!(StringMatch::suffix(".svc").matches("a.svc"));
        assert!(!StringMatch::suffix(".svc").matches("svc"));
        assert!(StringMatch::contains("mid").matches("amidst"));
        assert!(!StringMatch::contains("mid").matches("mi"));
    }

    #[test]
    fn ignore_case_compares_ascii_case_insensitively() {
        assert!(StringMatch::exact("ABC").ignore_case(true).matches("abc"));
        assert!(
            StringMatch::prefix("/ADMIN")
                .ignore_case(true)
                .matches("/admin/x")
        );
        assert!(
            StringMatch::suffix(".SVC")
                .ignore_case(true)
                .matches("a.svc")
        );
        assert!(
            StringMatch::contains("MID")
                .ignore_case(true)
                .matches("amidst")
        );
        assert!(!StringMatch::exact("ABC").matches("abc"));
    }

    #[test]
    fn regex_must_match_the_whole_string() {
        let m = StringMatch::regex("/api/v[0-9]+").expect("valid");
        assert!(m.matches("/api/v2"));
        assert!(!m.matches("/api/v2/users"));
        assert!(!m.matches("x/api/v2"));
        let alt = StringMatch::regex("a|b").expect("valid");
        assert!(alt.matches("a") && !alt.matches("ab"));
    }

    #[test]
    fn matcher_config_needs_exactly_one_kind() {
        let mut errors = PolicyConfigErrors::default();
        let none = StringMatchConfig::default();
        assert!(none.compile("m", &mut errors).is_none());
        let two = StringMatchConfig {
            exact: Some("a".into()),
            prefix: Some("b".into()),
            ..Default::default()
        };
        assert!(two.compile("m", &mut errors).is_none());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn matcher_config_rejects_empty_prefix_bad_regex_and_regex_ignore_case() {
        let mut errors = PolicyConfigErrors::default();
        let cfg = |yaml: &str| serde_yaml::from_str::<StringMatchConfig>(yaml).expect("yaml");
        assert!(cfg("{ prefix: \"\" }").compile("m", &mut errors).is_none());
        assert!(
            cfg("{ safe_regex: { regex: \"(\" } }")
                .compile("m", &mut errors)
                .is_none()
        );
        assert!(
            cfg("{ regex: \"a\", ignore_case: true }")
                .compile("m", &mut errors)
                .is_none()
        );
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["m.prefix", "m.safe_regex.regex", "m.ignore_case"]);
        assert!(cfg("{ exact: \"\" }").compile("m", &mut errors).is_some());
    }
}
