//! The parts of route actions that depend on the request: path rewrites, redirect locations and
//! the weighted-cluster pick, each as Envoy computes it.

use std::sync::Arc;

use mesh_xds::config::{PathRedirect, RedirectAction, RegexRewrite};

use super::headers::HeaderMutationChain;
use crate::shared::RequestView;

/// How a forwarded request's path is rewritten (Envoy allows one of the two).
#[derive(Debug)]
pub(super) enum PathRewrite {
    /// `prefix_rewrite`: replaces the matched part of the path.
    Prefix(String),
    /// `regex_rewrite`: substitutes every match in the path; the query is kept.
    Regex(RegexRewrite),
}

impl PathRewrite {
    /// The new path and query; `matched` is the length [`super::matching::RouteMatcher::matches`]
    /// returned.
    pub(super) fn apply(&self, request: &RequestView<'_>, matched: usize) -> String {
        match self {
            Self::Prefix(prefix) => replace_head(request.path_and_query, matched, prefix),
            Self::Regex(rewrite) => {
                let path = request.path();
                let new_path = rewrite
                    .pattern
                    .replace_all(path, rewrite.substitution.as_str());
                replace_head(request.path_and_query, path.len(), &new_path)
            }
        }
    }
}

/// `replacement` followed by what comes after the first `len` bytes of `path_and_query`.
fn replace_head(path_and_query: &str, len: usize, replacement: &str) -> String {
    // `len` is a matched prefix, so it is in range and on a char boundary; `get` keeps a
    // mismatch from panicking all the same.
    let tail = path_and_query.get(len..).unwrap_or_default();
    let mut out = String::with_capacity(replacement.len() + tail.len());
    out.push_str(replacement);
    out.push_str(tail);
    out
}

/// The `Location` of a redirect, as Envoy's `RouteEntryImplBase::newUri` builds it after the
/// router applied the redirect's `prefix_rewrite` to the path.
pub(super) fn redirect_location(
    redirect: &RedirectAction,
    request: &RequestView<'_>,
    matched: usize,
) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(request.scheme);
    let port = redirect.port.map(|p| format!(":{p}")).unwrap_or_default();
    let host = match &redirect.host {
        Some(host) => host.as_str(),
        None => request_host(request, scheme, redirect.port.is_some()),
    };
    let mut path_has_query_of_its_own = false;
    let mut path = match &redirect.path {
        // A query in `path_redirect` replaces the request's and survives `strip_query`.
        Some(PathRedirect::Path(p)) if p.contains('?') => {
            path_has_query_of_its_own = true;
            p.clone()
        }
        Some(PathRedirect::Path(p)) => match request.path_and_query.find('?') {
            Some(at) => format!("{p}{}", &request.path_and_query[at..]),
            None => p.clone(),
        },
        // An empty prefix rewrite means none (Envoy).
        Some(PathRedirect::Prefix(prefix)) if !prefix.is_empty() => {
            replace_head(request.path_and_query, matched, prefix)
        }
        Some(PathRedirect::Prefix(_)) | None => request.path_and_query.to_owned(),
    };
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if redirect.strip_query
        && !path_has_query_of_its_own
        && let Some(at) = path.find('?')
    {
        path.truncate(at);
    }
    format!("{scheme}://{host}{port}{path}")
}

/// Envoy's `processRequestHost`: the request's authority, without its port when the redirect
/// sets a port, or when the scheme changes and the port is the default one of the old scheme.
fn request_host<'a>(request: &RequestView<'a>, new_scheme: &str, new_port: bool) -> &'a str {
    let host = request.authority.unwrap_or_default();
    let port_start = if host.starts_with('[') {
        // IPv6 literal: the port follows the closing bracket.
        host.rfind("]:").map(|at| at + 1)
    } else {
        host.rfind(':')
    };
    let Some(port_start) = port_start else {
        return host;
    };
    let port = &host[port_start..];
    let proto = request.forwarded_proto();
    let remove = new_port
        || (new_scheme != proto
            && ((proto == "https" && port == ":443") || (proto == "http" && port == ":80")));
    if remove { &host[..port_start] } else { host }
}

/// One candidate of `weighted_clusters`.
#[derive(Debug)]
pub(super) struct WeightedEntry {
    pub(super) cluster: String,
    /// The entry's own header mutations, then the route's, virtual host's and configuration's.
    pub(super) headers: Arc<HeaderMutationChain>,
}

/// `weighted_clusters` with the cumulative weights precomputed.
#[derive(Debug)]
pub(super) struct WeightedClusters {
    /// Exclusive end of each entry's interval: entry `i` owns `[ends[i-1], ends[i])`.
    ends: Vec<u64>,
    entries: Vec<WeightedEntry>,
    total: u64,
}

impl WeightedClusters {
    /// `None` when the weights do not add up to `total` or to more than 0 (the xds layer
    /// already refuses both).
    pub(super) fn new(entries: Vec<(WeightedEntry, u32)>, total: u32) -> Option<Self> {
        let mut sum = 0u64;
        let mut ends = Vec::with_capacity(entries.len());
        let mut kept = Vec::with_capacity(entries.len());
        for (entry, weight) in entries {
            sum += u64::from(weight);
            ends.push(sum);
            kept.push(entry);
        }
        (sum == u64::from(total) && sum > 0).then_some(Self {
            ends,
            entries: kept,
            total: sum,
        })
    }

    /// The entry for `random`: Envoy takes `random % total_weight` and walks the intervals
    /// `[0, w1), [w1, w1 + w2), ...` in configuration order.
    pub(super) fn pick(&self, random: u64) -> Option<&WeightedEntry> {
        let bucket = random % self.total;
        let at = self.ends.partition_point(|end| *end <= bucket);
        self.entries.get(at)
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

    fn redirect() -> RedirectAction {
        RedirectAction {
            scheme: None,
            host: None,
            port: None,
            path: None,
            response_code: 301,
            strip_query: false,
        }
    }

    fn location(r: &RedirectAction, uri: &str, headers: &[(&'static str, &'static str)]) -> String {
        let p = parts(uri, headers);
        redirect_location(r, &RequestView::new(&p), 1)
    }

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix_and_keeps_the_query() {
        let p = parts("/api/v1/users?id=7", &[]);
        let view = RequestView::new(&p);
        assert_eq!(
            PathRewrite::Prefix("/v2".into()).apply(&view, 4),
            "/v2/v1/users?id=7"
        );
    }

    #[test]
    fn https_redirect_strips_the_default_http_port() {
        let r = RedirectAction {
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(
            location(&r, "http://a.com:80/p?q", &[]),
            "https://a.com/p?q"
        );
        assert_eq!(
            location(&r, "http://a.com:8080/p", &[]),
            "https://a.com:8080/p"
        );
    }

    #[test]
    fn port_redirect_replaces_the_request_port() {
        let r = RedirectAction {
            port: Some(8443),
            ..redirect()
        };
        assert_eq!(
            location(&r, "/p", &[("host", "a.com:80")]),
            "http://a.com:8443/p"
        );
    }

    #[test]
    fn path_redirect_keeps_the_request_query_unless_it_has_its_own() {
        let r = RedirectAction {
            path: Some(PathRedirect::Path("/new".into())),
            strip_query: true,
            ..redirect()
        };
        assert_eq!(
            location(&r, "http://a.com/old?x=1", &[]),
            "http://a.com/new"
        );
        let r = RedirectAction {
            path: Some(PathRedirect::Path("/new?y=2".into())),
            strip_query: true,
            ..redirect()
        };
        assert_eq!(
            location(&r, "http://a.com/old?x=1", &[]),
            "http://a.com/new?y=2"
        );
    }

    #[test]
    fn weighted_pick_uses_random_modulo_total_weight() {
        let entry = |name: &str| WeightedEntry {
            cluster: name.into(),
            headers: Arc::default(),
        };
        let w = WeightedClusters::new(
            vec![(entry("a"), 30), (entry("zero"), 0), (entry("b"), 70)],
            100,
        )
        .expect("valid weights");
        let pick = |r| w.pick(r).map(|e| e.cluster.as_str());
        assert_eq!(pick(0), Some("a"));
        assert_eq!(pick(29), Some("a"));
        assert_eq!(pick(30), Some("b"));
        assert_eq!(pick(99), Some("b"));
        assert_eq!(pick(129), Some("a"));
        assert!(WeightedClusters::new(vec![(entry("a"), 1)], 2).is_none());
    }
}
