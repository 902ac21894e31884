//! The connection manager's request normalisation, before filters and routing see a request:
//! escaped slashes (`path_with_escaped_slashes_action`), RFC 3986 path normalisation
//! (`normalize_path`), merged slashes (`merge_slashes`), in Envoy's order, and header names
//! with underscores (`headers_with_underscores_action`).

use http::uri::{PathAndQuery, Uri};
use http::{HeaderName, StatusCode};
use mesh_xds::config::{EscapedSlashes, RequestNormalization, UnderscoresAction};

use crate::shared::Failure;

/// What normalisation decided instead of letting the request through.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Answer with this failure.
    Fail(Failure),
    /// Redirect the client to the unescaped path (`UNESCAPE_AND_REDIRECT`).
    Redirect(String),
}

/// Normalises the request in place.
pub(super) fn normalize(
    settings: &RequestNormalization,
    head: &mut http::request::Parts,
) -> Result<(), Refusal> {
    match settings.headers_with_underscores {
        UnderscoresAction::Allow => {}
        UnderscoresAction::Reject => {
            if head.headers.keys().any(|name| name.as_str().contains('_')) {
                return Err(Refusal::Fail(Failure::BadRequest(
                    "header names with underscores are refused".into(),
                )));
            }
        }
        UnderscoresAction::Drop => {
            let doomed: Vec<HeaderName> = head
                .headers
                .keys()
                .filter(|name| name.as_str().contains('_'))
                .cloned()
                .collect();
            for name in doomed {
                head.headers.remove(name);
            }
        }
    }
    if settings.escaped_slashes == EscapedSlashes::Keep
        && !settings.normalize_path
        && !settings.merge_slashes
    {
        return Ok(());
    }
    let original = head
        .uri
        .path_and_query()
        .map_or("/", PathAndQuery::as_str)
        .to_owned();
    let (path, query) = match original.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query)),
        None => (original.clone(), None),
    };
    let mut path = path;
    match settings.escaped_slashes {
        EscapedSlashes::Keep => {}
        EscapedSlashes::Reject if has_escaped_slash(&path) => {
            return Err(Refusal::Fail(Failure::BadRequest(
                "escaped slashes in the path are refused".into(),
            )));
        }
        EscapedSlashes::Reject => {}
        EscapedSlashes::UnescapeAndRedirect if has_escaped_slash(&path) => {
            let unescaped = unescape_slashes(&path);
            return Err(Refusal::Redirect(with_query(&unescaped, query)));
        }
        EscapedSlashes::UnescapeAndRedirect => {}
        EscapedSlashes::UnescapeAndForward => path = unescape_slashes(&path),
    }
    if settings.normalize_path {
        path = remove_dot_segments(&normalize_percent_encoding(&path));
    }
    if settings.merge_slashes {
        path = merge_slashes(&path);
    }
    let normalized = with_query(&path, query);
    if normalized != original {
        let mut parts = head.uri.clone().into_parts();
        parts.path_and_query = Some(normalized.parse().map_err(|_| {
            Refusal::Fail(Failure::BadRequest(
                "the normalised path is not valid".into(),
            ))
        })?);
        head.uri = Uri::from_parts(parts).map_err(|_| {
            Refusal::Fail(Failure::BadRequest(
                "the normalised path is not valid".into(),
            ))
        })?;
    }
    Ok(())
}

/// The status of the redirect `UNESCAPE_AND_REDIRECT` answers with.
pub(super) const REDIRECT_STATUS: StatusCode = StatusCode::TEMPORARY_REDIRECT;

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

fn has_escaped_slash(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c")
}

fn unescape_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        match escape.to_ascii_lowercase().as_str() {
            "%2f" => out.push('/'),
            "%5c" => out.push('\\'),
            _ => {
                out.push_str(escape);
            }
        }
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// Percent-encoded unreserved characters are decoded; other escapes stay as written (Envoy
/// does not change their case).
fn normalize_percent_encoding(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = (hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8;
                if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                    out.push(value as char);
                } else {
                    out.push_str(&path[i..i + 3]);
                }
                i += 3;
            }
            (byte, ..) => {
                out.push(byte as char);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 section 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if index == last {
                    output.push("");
                }
            }
            ".." => {
                if output.len() > 1 {
                    output.pop();
                }
                if index == last {
                    output.push("");
                }
            }
            other => output.push(other),
        }
    }
    let joined = output.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(settings: RequestNormalization, uri: &str) -> Result<String, Refusal> {
        let (mut head, ()) = http::Request::get(uri)
            .body(())
            .expect("request")
            .into_parts();
        normalize(&settings, &mut head)?;
        Ok(head.uri.to_string())
    }

    fn all() -> RequestNormalization {
        RequestNormalization {
            normalize_path: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Keep,
            headers_with_underscores: UnderscoresAction::Allow,
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        for (from, to) in [
            ("/a/b/../c", "/a/c"),
            ("/a/./b", "/a/b"),
            ("/../a", "/a"),
            ("/a/b/..", "/a/"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/b?x=/../y", "/a/b?x=/../y"),
        ] {
            assert_eq!(run(all(), from).ok().as_deref(), Some(to), "{from}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept() {
        assert_eq!(
            run(all(), "/%7euser/%41%2f").ok().as_deref(),
            Some("/~user/A%2f")
        );
    }

    #[test]
    fn slashes_merge() {
        assert_eq!(run(all(), "//a///b/").ok().as_deref(), Some("/a/b/"));
    }

    #[test]
    fn escaped_slashes_are_kept_refused_unescaped_or_redirected() {
        let with = |escaped_slashes| RequestNormalization {
            escaped_slashes,
            ..RequestNormalization::default()
        };
        assert_eq!(
            run(with(EscapedSlashes::Keep), "/a%2Fb").ok().as_deref(),
            Some("/a%2Fb")
        );
        assert!(matches!(
            run(with(EscapedSlashes::Reject), "/a%2fb"),
            Err(Refusal::Fail(Failure::BadRequest(_)))
        ));
        assert_eq!(
            run(with(EscapedSlashes::UnescapeAndForward), "/a%2Fb%5cc")
                .ok()
                .as_deref(),
            Some("/a/b\\c")
        );
        assert_eq!(
            run(with(EscapedSlashes::UnescapeAndRedirect), "/a%2Fb?q=1"),
            Err(Refusal::Redirect("/a/b?q=1".into()))
        );
    }

    #[test]
    fn header_names_with_underscores_are_kept_refused_or_dropped() {
        let settings = |headers_with_underscores| RequestNormalization {
            headers_with_underscores,
            ..RequestNormalization::default()
        };
        let request = || {
            http::Request::get("/")
                .header("x_under", "1")
                .header("x-dash", "1")
                .body(())
                .expect("request")
                .into_parts()
                .0
        };
        let mut head = request();
        assert!(normalize(&settings(UnderscoresAction::Reject), &mut head).is_err());
        let mut head = request();
        normalize(&settings(UnderscoresAction::Drop), &mut head).expect("dropped");
        assert!(!head.headers.contains_key("x_under") && head.headers.contains_key("x-dash"));
    }
}
