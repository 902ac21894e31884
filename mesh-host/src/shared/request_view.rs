//! A read-only view of a request as Envoy's header map presents it: the pseudo-headers
//! (`:path`, `:authority`, `:scheme`, `:method`) computed once, and header values one by one.
//! Route matching and the HTTP filters read requests through it, so both see the same thing.

use std::borrow::Cow;

use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;

/// What the matchers read from a request: Envoy's pseudo-headers, computed once.
pub(crate) struct RequestView<'a> {
    parts: &'a Parts,
    /// `:path`: path and query.
    pub(crate) path_and_query: &'a str,
    /// `:authority`: the URI's authority, else the `Host` header (HTTP/1.1), as Envoy's codecs
    /// set it; `None` when the request has neither or it is not UTF-8.
    pub(crate) authority: Option<&'a str>,
    /// `:scheme`: the URI's, else `x-forwarded-proto`, else `http` (the front end does not tell
    /// whether the connection is TLS; Envoy takes it from the connection).
    pub(crate) scheme: &'a str,
}

impl<'a> RequestView<'a> {
    pub(crate) fn new(parts: &'a Parts) -> Self {
        let uri = &parts.uri;
        let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        let authority = match uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => parts
                .headers
                .get(HOST)
                .and_then(|h| std::str::from_utf8(h.as_bytes()).ok()),
        };
        let scheme = uri
            .scheme_str()
            .or_else(|| {
                parts
                    .headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("http");
        Self {
            parts,
            path_and_query,
            authority,
            scheme,
        }
    }

    /// The path without query or fragment: what path matchers and `regex_rewrite` see.
    pub(crate) fn path(&self) -> &'a str {
        let end = self
            .path_and_query
            .find(['?', '#'])
            .unwrap_or(self.path_and_query.len());
        &self.path_and_query[..end]
    }

    /// `x-forwarded-proto`, which Envoy's connection manager always sets (to the scheme when the
    /// client sent none); redirects strip default ports by it.
    pub(crate) fn forwarded_proto(&self) -> &'a str {
        self.parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .unwrap_or(self.scheme)
    }

    /// The first value of a header, as Envoy reads untrusted single-value headers
    /// (`cluster_header`).
    pub(crate) fn first_header(&self, name: &http::HeaderName) -> Option<&'a str> {
        self.parts
            .headers
            .get(name)
            .and_then(|h| std::str::from_utf8(h.as_bytes()).ok())
    }

    /// A header's values as Envoy's header matchers see them: pseudo-headers from the request
    /// line, every value of a repeated header separately (empty when absent).
    ///
    /// `host` is never present: Envoy's codecs turn it into `:authority`.
    pub(crate) fn header_values(&self, name: &str) -> Vec<Cow<'a, str>> {
        let pseudo = match name {
            ":method" => Some(self.parts.method.as_str()),
            ":path" => Some(self.path_and_query),
            ":authority" => self.authority,
            ":scheme" => Some(self.scheme),
            "host" => None,
            _ => {
                return self
                    .parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|value| String::from_utf8_lossy(value.as_bytes()))
                    .collect();
            }
        };
        pseudo.map(Cow::Borrowed).into_iter().collect()
    }

    /// The first value of query parameter `name`, undecoded, as Envoy's `parseQueryString`
    /// (a parameter without `=` has the empty value).
    pub(crate) fn query_parameter(&self, name: &str) -> Option<&'a str> {
        let (_, query) = self.path_and_query.split_once('?')?;
        let query = query.split('#').next().unwrap_or(query);
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| match pair.split_once('=') {
                Some((key, value)) if key == name => Some(value),
                None if pair == name => Some(""),
                _ => None,
            })
    }

    /// Envoy's `Http::Utility::buildOriginalUri`: scheme, authority and path without the
    /// query, the realm of the filters' `www-authenticate` challenges.
    pub(crate) fn original_uri(&self) -> String {
        format!(
            "{}://{}{}",
            self.forwarded_proto(),
            self.authority.unwrap_or_default(),
            self.path()
        )
    }

    /// Envoy's `Grpc::Common::isGrpcRequestHeaders`: `content-type` is exactly
    /// `application/grpc` or starts with `application/grpc+` (so `application/grpc-web` is not).
    pub(crate) fn is_grpc(&self) -> bool {
        self.parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|h| h.as_bytes().strip_prefix(b"application/grpc"))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"+"))
    }
}
