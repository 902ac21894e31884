//! String matchers as written in a policy (Envoy's `StringMatcher` fields), compiled into the
//! matcher the RBAC filter evaluates.

use mesh_xds::config::{SafeRegex, StringMatcher, StringPattern};
use serde::Deserialize;

use crate::PolicyConfigErrors;

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
    ) -> Option<StringMatcher> {
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
        let pattern = if let Some(v) = &self.exact {
            StringPattern::Exact(v.clone())
        } else if let Some(v) = &self.prefix {
            non_empty("prefix", v, errors).then(|| StringPattern::Prefix(v.clone()))?
        } else if let Some(v) = &self.suffix {
            non_empty("suffix", v, errors).then(|| StringPattern::Suffix(v.clone()))?
        } else if let Some(v) = &self.contains {
            non_empty("contains", v, errors).then(|| StringPattern::Contains(v.clone()))?
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
            match SafeRegex::new(pattern) {
                Ok(regex) => StringPattern::SafeRegex(regex),
                Err(e) => {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("invalid regex {pattern:?}: {e}"),
                    );
                    return None;
                }
            }
        };
        Some(StringMatcher {
            pattern,
            ignore_case: self.ignore_case,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<StringMatcher, Vec<String>> {
        let config: StringMatchConfig = serde_yaml::from_str(yaml).expect("valid yaml");
        let mut errors = PolicyConfigErrors::default();
        config
            .compile("m", &mut errors)
            .ok_or_else(|| errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn each_key_compiles_to_its_envoy_pattern() {
        let prefix = compile("{ prefix: /admin, ignore_case: true }").expect("valid");
        assert_eq!(prefix.pattern, StringPattern::Prefix("/admin".into()));
        assert!(prefix.ignore_case && prefix.matches("/ADMIN/x"));
        let regex = compile("{ safe_regex: { regex: \"/v[0-9]+\" } }").expect("valid");
        assert!(
            regex.matches("/v2") && !regex.matches("/v2/x"),
            "whole input only"
        );
        assert!(
            compile("{ regex: \"a.c\" }")
                .expect("short form")
                .matches("abc")
        );
    }

    #[test]
    fn bad_matchers_are_reported_with_their_path() {
        for (yaml, path) in [
            ("{ exact: a, prefix: b }", "m:"),
            ("{ prefix: \"\" }", "m.prefix"),
            ("{ regex: \"(\" }", "m.regex"),
            ("{ regex: a, ignore_case: true }", "m.ignore_case"),
        ] {
            let errors = compile(yaml).expect_err(yaml);
            assert!(
                errors.iter().any(|e| e.starts_with(path)),
                "{yaml}: {errors:?}"
            );
        }
    }
}
