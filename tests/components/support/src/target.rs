//! The outbound request a caller asks of the `outbound` components, read from
//! the incoming request's target and `x-target-*` headers (see the README).
//! Pure, so the P2 and P3 components read it the same way.

const URL_HEADER: &str = "x-target-url";
const METHOD_HEADER: &str = "x-target-method";
const CONTENT_TYPE_HEADER: &str = "x-target-content-type";
const HEADER_PREFIX: &str = "x-target-header-";
const BETWEEN_BYTES_HEADER: &str = "x-target-between-bytes-ms";

/// Where to send the outbound request and how. Every error is a message for
/// the caller, who gets it back as a 400.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub url: Url,
    pub method: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request option `between-bytes-timeout`, in milliseconds.
    pub between_bytes_ms: Option<u64>,
}

/// The parts of an absolute URL that `wasi:http` takes separately.
#[derive(Debug, PartialEq)]
pub struct Url {
    pub scheme: String,
    pub authority: String,
    pub path_with_query: String,
}

impl Target {
    /// Reads the target from the `url` query parameter (or the `x-target-url`
    /// header) and the `x-target-*` headers of a request with this target
    /// and these headers.
    pub fn from_parts(path_with_query: &str, headers: &[(String, Vec<u8>)]) -> Result<Self, String> {
        let url = match crate::query::param(path_with_query, "url") {
            Some(url) => url,
            None => header_text(headers, URL_HEADER)?.ok_or_else(|| {
                format!(
                    "missing target: pass the `url` query parameter or the `{URL_HEADER}` header\n"
                )
            })?,
        };
        Ok(Target {
            url: Url::parse(&url)?,
            method: header_text(headers, METHOD_HEADER)?.unwrap_or_else(|| "GET".into()),
            headers: forwarded_headers(headers),
            between_bytes_ms: header_text(headers, BETWEEN_BYTES_HEADER)?
                .map(|ms| {
                    ms.parse()
                        .map_err(|_| format!("{BETWEEN_BYTES_HEADER} is not a number\n"))
                })
                .transpose()?,
        })
    }
}

impl Url {
    /// Splits `scheme://authority/path?query`; a fragment is dropped and an
    /// empty path becomes `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid target url {url:?}: {why}\n");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host/path"))?;
        if scheme.is_empty() {
            return Err(invalid("empty scheme"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_with_query) = rest.split_at(authority_end);
        if authority.is_empty() {
            return Err(invalid("empty host"));
        }
        let path_with_query = if path_with_query.starts_with('/') {
            path_with_query.to_owned()
        } else {
            format!("/{path_with_query}")
        };
        Ok(Url {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

/// The first value of header `name` as text, if present.
fn header_text(headers: &[(String, Vec<u8>)], name: &str) -> Result<Option<String>, String> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| {
            String::from_utf8(value.clone()).map_err(|_| format!("header {name} is not UTF-8\n"))
        })
        .transpose()
}

/// Headers for the outbound request: `x-target-content-type` becomes
/// `content-type` and `x-target-header-<name>` becomes `<name>`.
fn forwarded_headers(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let target = if name == CONTENT_TYPE_HEADER {
                "content-type"
            } else {
                name.strip_prefix(HEADER_PREFIX)
                    .filter(|name| !name.is_empty())?
            };
            Some((target.to_owned(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: &str, authority: &str, path_with_query: &str) -> Url {
        Url {
            scheme: scheme.into(),
            authority: authority.into(),
            path_with_query: path_with_query.into(),
        }
    }

    #[test]
    fn url_splits_into_scheme_authority_and_path() {
        assert_eq!(
            Url::parse("http://127.0.0.1:8080/a/b?c=d"),
            Ok(url("http", "127.0.0.1:8080", "/a/b?c=d"))
        );
    }

    #[test]
    fn url_without_path_gets_root_path() {
        assert_eq!(
            Url::parse("https://example.com"),
            Ok(url("https", "example.com", "/"))
        );
        assert_eq!(Url::parse("http://h?x=1"), Ok(url("http", "h", "/?x=1")));
    }

    #[test]
    fn url_fragment_is_dropped() {
        assert_eq!(Url::parse("http://h/p#frag"), Ok(url("http", "h", "/p")));
    }

    #[test]
    fn url_without_scheme_or_host_is_rejected() {
        assert!(Url::parse("127.0.0.1:8080/a").is_err());
        assert!(Url::parse("://h/").is_err());
        assert!(Url::parse("http:///path").is_err());
    }

    #[test]
    fn target_headers_are_renamed_and_others_dropped() {
        let headers = vec![
            (
                "x-target-content-type".to_owned(),
                b"application/grpc".to_vec(),
            ),
            ("x-target-header-te".to_owned(), b"trailers".to_vec()),
            ("x-target-header-".to_owned(), b"nameless".to_vec()),
            ("accept".to_owned(), b"*/*".to_vec()),
        ];
        assert_eq!(
            forwarded_headers(&headers),
            vec![
                ("content-type".to_owned(), b"application/grpc".to_vec()),
                ("te".to_owned(), b"trailers".to_vec()),
            ]
        );
    }
}
