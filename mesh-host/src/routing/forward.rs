//! Forwarding routes: cluster resolution, rewrites, timeouts and header mutations, compiled once
//! per route and resolved per request into a [`ForwardDecision`].

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use mesh_xds::config::{
    AttemptCount, ClusterSpecifier, ForwardAction, HashPolicy, RetryPolicy, RouteTracing,
};

use super::RouteTableError;
use super::actions::{PathRewrite, WeightedClusters, WeightedEntry};
use super::headers::{HeaderEdits, HeaderMutationChain};
use crate::egress::{ATTEMPT_COUNT, UpstreamRoute};
use crate::shared::RequestView;

/// Envoy's router records the path before a rewrite in this header, unless its
/// `suppress_envoy_headers` is set.
const ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
/// Likewise the authority before a host rewrite.
const ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-envoy-original-host");

/// Where a forwarded request goes and how it is changed on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardDecision {
    /// Name of the virtual host that matched.
    pub vhost: Arc<str>,
    /// Name of the route that matched (empty when it has none).
    pub route_name: Arc<str>,
    /// Position of the route in its virtual host.
    pub route_index: usize,
    /// The cluster: the route's, the weighted pick, or the `cluster_header` value.
    pub cluster: String,
    /// The rewritten path and query (`prefix_rewrite` or `regex_rewrite`); `None` keeps the
    /// request's.
    pub path_and_query: Option<String>,
    /// The new authority (`host_rewrite_literal`), if any.
    pub authority: Option<Arc<str>>,
    /// Header mutations of every level, in Envoy's order.
    pub headers: Arc<HeaderMutationChain>,
    /// Whole-request timeout; `None` = disabled (the xds layer already applied Envoy's 15 s
    /// default and turned an explicit 0 into `None`).
    pub timeout: Option<Duration>,
    /// Whether the route sets its timeout (else `timeout` is Envoy's default).
    pub timeout_configured: bool,
    /// Stream idle timeout of the route, if set.
    pub idle_timeout: Option<Duration>,
    /// `max_stream_duration.max_stream_duration`, if set.
    pub max_stream_duration: Option<Duration>,
    /// `max_stream_duration.grpc_timeout_header_max`: when set, a client's `grpc-timeout` is
    /// honoured, capped at this value (`Some(ZERO)`: not capped).
    pub grpc_timeout_header_max: Option<Duration>,
    /// The route's retry policy, else its virtual host's.
    pub retry_policy: Option<Arc<RetryPolicy>>,
    /// The route's hash policy (ring hash and maglev clusters).
    pub hash_policy: Arc<[HashPolicy]>,
    /// Whether `x-envoy-attempt-count` goes on the request and the response (the virtual
    /// host's settings; neither under `suppress_envoy_headers`).
    pub attempt_count: AttemptCount,
    /// The route's decorator and tracing overrides, when it has any.
    pub tracing: Option<Arc<RouteTracing>>,
    /// The router of the connection manager that routed it sets `suppress_envoy_headers`: no
    /// `x-envoy-original-path` or `x-envoy-original-host` is added. Route tables are shared
    /// by connection managers, so the listener's chain sets this after routing.
    pub suppress_envoy_headers: bool,
}

impl ForwardDecision {
    /// What the upstream client needs of this decision: the cluster, the retry and hash
    /// policies, with the request's `timeout` and the downstream address (for source-IP
    /// hashing; `None` for a component's own requests).
    pub fn upstream_route(
        &self,
        timeout: Option<Duration>,
        source_ip: Option<IpAddr>,
    ) -> UpstreamRoute {
        UpstreamRoute {
            cluster: self.cluster.clone(),
            timeout,
            retry: self.retry_policy.clone(),
            hash_policy: self.hash_policy.clone(),
            source_ip,
            attempt_count: self.attempt_count(),
        }
    }

    /// The attempt-count headers this request gets: none under `suppress_envoy_headers`.
    fn attempt_count(&self) -> AttemptCount {
        if self.suppress_envoy_headers {
            AttemptCount::default()
        } else {
            self.attempt_count
        }
    }

    /// Applies the decision to the request before it is forwarded, in Envoy's order: header
    /// mutations, then `host_rewrite_literal` (recording the old authority in
    /// `x-envoy-original-host`), then the path rewrite (recording the old path in
    /// `x-envoy-original-path`); neither is recorded under `suppress_envoy_headers`. The
    /// first try's `x-envoy-attempt-count` is set here (a local workload gets only that
    /// one); the upstream client renumbers each retry.
    pub fn apply_to_request(&self, parts: &mut Parts) {
        self.headers.apply_to_request(&mut parts.headers);
        if self.attempt_count().request {
            parts.headers.insert(ATTEMPT_COUNT, HeaderValue::from(1u32));
        }
        if let Some(authority) = &self.authority {
            let had_uri_authority = parts.uri.authority().is_some();
            let original = match parts.uri.authority() {
                Some(original) => HeaderValue::from_str(original.as_str()).ok(),
                None => parts.headers.get(HOST).cloned(),
            };
            if let Some(original) = original.filter(|_| !self.suppress_envoy_headers) {
                parts.headers.insert(ORIGINAL_HOST, original);
            }
            // Validated when the table was built, so parsing succeeds.
            if had_uri_authority && let Ok(authority) = Authority::from_str(authority) {
                replace_uri(parts, |uri| uri.authority = Some(authority));
            }
            // HTTP/1.1 carries the authority in `Host`; keep both in step.
            if (parts.headers.contains_key(HOST) || !had_uri_authority)
                && let Ok(value) = HeaderValue::from_str(authority)
            {
                parts.headers.insert(HOST, value);
            }
        }
        if let Some(path_and_query) = &self.path_and_query {
            let original = parts
                .uri
                .path_and_query()
                .and_then(|pq| HeaderValue::from_str(pq.as_str()).ok());
            match PathAndQuery::from_str(path_and_query) {
                Ok(new) => {
                    replace_uri(parts, |uri| uri.path_and_query = Some(new));
                    if let Some(original) = original.filter(|_| !self.suppress_envoy_headers) {
                        parts.headers.insert(ORIGINAL_PATH, original);
                    }
                }
                // Rewrites are built from a valid path and validated literals; should one still
                // not parse, the request goes out unchanged rather than failing.
                Err(error) => tracing::warn!(
                    route = %self.route_name,
                    route_index = self.route_index,
                    path = %path_and_query,
                    "rewritten path is not valid, not applied: {error}"
                ),
            }
        }
    }

    /// Applies the response header mutations of every level, and the attempt count when the
    /// virtual host asks for it and the upstream client has not set it (a local workload's
    /// response: one try).
    pub fn apply_to_response(&self, headers: &mut HeaderMap) {
        if self.attempt_count().response && !headers.contains_key(ATTEMPT_COUNT) {
            headers.insert(ATTEMPT_COUNT, HeaderValue::from(1u32));
        }
        self.headers.apply_to_response(headers);
    }
}

fn replace_uri(parts: &mut Parts, change: impl FnOnce(&mut http::uri::Parts)) {
    let mut uri = parts.uri.clone().into_parts();
    change(&mut uri);
    if let Ok(uri) = Uri::from_parts(uri) {
        parts.uri = uri;
    }
}

/// A forwarding route, compiled.
#[derive(Debug)]
pub(super) struct CompiledForward {
    target: Target,
    rewrite: Option<PathRewrite>,
    authority: Option<Arc<str>>,
    timeout: Option<Duration>,
    timeout_configured: bool,
    idle_timeout: Option<Duration>,
    max_stream_duration: Option<Duration>,
    grpc_timeout_header_max: Option<Duration>,
    retry_policy: Option<Arc<RetryPolicy>>,
    hash_policy: Arc<[HashPolicy]>,
    attempt_count: AttemptCount,
}

#[derive(Debug)]
enum Target {
    Cluster {
        name: String,
        headers: Arc<HeaderMutationChain>,
    },
    Header {
        name: HeaderName,
        headers: Arc<HeaderMutationChain>,
    },
    Weighted(WeightedClusters),
}

impl CompiledForward {
    /// The response header mutations for the host's own answer when no cluster is chosen.
    pub(super) fn local_reply_headers(&self) -> Arc<HeaderMutationChain> {
        match &self.target {
            Target::Cluster { headers, .. } | Target::Header { headers, .. } => headers.clone(),
            // A weighted pick always names a cluster.
            Target::Weighted(_) => Arc::new(HeaderMutationChain::new([])),
        }
    }

    /// Compiles `forward`; `levels` are the route's, virtual host's and configuration's header
    /// mutations, most specific first.
    pub(super) fn new(
        forward: &ForwardAction,
        levels: [Arc<HeaderEdits>; 3],
        route_config: &str,
        route: &str,
    ) -> Result<Self, RouteTableError> {
        let chain = || Arc::new(HeaderMutationChain::new(levels.iter().cloned()));
        let target = match &forward.cluster {
            ClusterSpecifier::Cluster(name) => Target::Cluster {
                name: name.clone(),
                headers: chain(),
            },
            ClusterSpecifier::ClusterHeader(header) => Target::Header {
                name: HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    RouteTableError::InvalidHeader {
                        route_config: route_config.to_owned(),
                        header: header.clone(),
                        reason: "cluster_header is not a valid HTTP header name",
                    }
                })?,
                headers: chain(),
            },
            ClusterSpecifier::WeightedClusters {
                total_weight,
                clusters,
            } => {
                let entries = clusters
                    .iter()
                    .map(|c| {
                        let own = Arc::new(HeaderEdits::compile(&c.headers, route_config)?);
                        // Envoy: the entry's mutations, then the route's chain.
                        let levels = std::iter::once(own).chain(levels.iter().cloned());
                        let entry = WeightedEntry {
                            cluster: c.name.clone(),
                            headers: Arc::new(HeaderMutationChain::new(levels)),
                        };
                        Ok((entry, c.weight))
                    })
                    .collect::<Result<Vec<_>, RouteTableError>>()?;
                Target::Weighted(WeightedClusters::new(entries, *total_weight).ok_or_else(
                    || RouteTableError::InvalidWeights {
                        route_config: route_config.to_owned(),
                        route: route.to_owned(),
                    },
                )?)
            }
        };
        let rewrite = match (&forward.prefix_rewrite, &forward.regex_rewrite) {
            (Some(prefix), _) => Some(PathRewrite::Prefix(prefix.clone())),
            (None, Some(regex)) => Some(PathRewrite::Regex(regex.clone())),
            (None, None) => None,
        };
        let authority = forward
            .host_rewrite_literal
            .as_deref()
            .map(|host| {
                let valid =
                    Authority::from_str(host).is_ok() && HeaderValue::from_str(host).is_ok();
                valid
                    .then(|| Arc::from(host))
                    .ok_or_else(|| RouteTableError::InvalidHostRewrite {
                        route_config: route_config.to_owned(),
                        host: host.to_owned(),
                    })
            })
            .transpose()?;
        Ok(Self {
            target,
            rewrite,
            authority,
            timeout: forward.timeout,
            timeout_configured: forward.timeout_configured,
            idle_timeout: forward.idle_timeout,
            max_stream_duration: forward.max_stream_duration,
            grpc_timeout_header_max: forward.grpc_timeout_header_max,
            retry_policy: forward.retry_policy.clone().map(Arc::new),
            hash_policy: forward.hash_policy.clone().into(),
            attempt_count: forward.attempt_count,
        })
    }

    /// The decision for a request that matched with `matched` bytes of path; `None` when no
    /// cluster can be named (`cluster_header` absent or empty: Envoy answers 503).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide(
        &self,
        request: &RequestView<'_>,
        matched: usize,
        random: u64,
        vhost: &Arc<str>,
        route_name: &Arc<str>,
        route_index: usize,
        tracing: Option<&Arc<RouteTracing>>,
    ) -> Option<ForwardDecision> {
        let (cluster, headers) = match &self.target {
            Target::Cluster { name, headers } => (name.clone(), headers),
            Target::Header { name, headers } => {
                // Untrusted and single-valued: Envoy takes the first value only.
                let value = request.first_header(name).filter(|v| !v.is_empty())?;
                (value.to_owned(), headers)
            }
            Target::Weighted(weighted) => {
                let entry = weighted.pick(random)?;
                (entry.cluster.clone(), &entry.headers)
            }
        };
        Some(ForwardDecision {
            vhost: vhost.clone(),
            route_name: route_name.clone(),
            route_index,
            cluster,
            path_and_query: self.rewrite.as_ref().map(|r| r.apply(request, matched)),
            authority: self.authority.clone(),
            headers: headers.clone(),
            timeout: self.timeout,
            timeout_configured: self.timeout_configured,
            idle_timeout: self.idle_timeout,
            max_stream_duration: self.max_stream_duration,
            grpc_timeout_header_max: self.grpc_timeout_header_max,
            retry_policy: self.retry_policy.clone(),
            hash_policy: self.hash_policy.clone(),
            attempt_count: self.attempt_count,
            tracing: tracing.cloned(),
            suppress_envoy_headers: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewriting(suppress_envoy_headers: bool) -> ForwardDecision {
        ForwardDecision {
            vhost: Arc::from("v"),
            route_name: Arc::from("r"),
            route_index: 0,
            cluster: "c".into(),
            path_and_query: Some("/new?q=1".into()),
            authority: Some(Arc::from("upstream.internal")),
            headers: Arc::default(),
            timeout: None,
            timeout_configured: false,
            idle_timeout: None,
            max_stream_duration: None,
            grpc_timeout_header_max: None,
            retry_policy: None,
            hash_policy: Arc::from([]),
            attempt_count: AttemptCount::default(),
            tracing: None,
            suppress_envoy_headers,
        }
    }

    fn request() -> Parts {
        let (parts, ()) = http::Request::get("/old?q=1")
            .header(HOST, "www.example.com")
            .body(())
            .expect("request")
            .into_parts();
        parts
    }

    /// Envoy's router records the path and authority a rewrite replaced, unless
    /// `suppress_envoy_headers` is set; the rewrites themselves apply either way.
    #[test]
    fn original_path_and_host_are_recorded_unless_envoy_headers_are_suppressed() {
        let mut recorded = request();
        rewriting(false).apply_to_request(&mut recorded);
        assert_eq!(recorded.headers[ORIGINAL_PATH], "/old?q=1");
        assert_eq!(recorded.headers[ORIGINAL_HOST], "www.example.com");

        let mut suppressed = request();
        rewriting(true).apply_to_request(&mut suppressed);
        assert_eq!(
            suppressed.uri.path_and_query().map(|p| p.as_str()),
            Some("/new?q=1")
        );
        assert_eq!(suppressed.headers[HOST], "upstream.internal");
        assert!(!suppressed.headers.contains_key(ORIGINAL_PATH));
        assert!(!suppressed.headers.contains_key(ORIGINAL_HOST));
    }

    /// The first try is numbered 1 on the request; a response the upstream client numbered
    /// keeps its count, one it did not (a local workload's) gets 1; nothing when the virtual
    /// host does not ask or Envoy headers are suppressed.
    #[test]
    fn attempt_count_goes_on_the_request_and_the_response_when_asked() {
        let both = AttemptCount {
            request: true,
            response: true,
        };
        let counted = ForwardDecision {
            attempt_count: both,
            ..rewriting(false)
        };
        let mut parts = request();
        counted.apply_to_request(&mut parts);
        assert_eq!(parts.headers[ATTEMPT_COUNT], "1");
        let mut local = HeaderMap::new();
        counted.apply_to_response(&mut local);
        assert_eq!(local[ATTEMPT_COUNT], "1");
        let mut retried = HeaderMap::new();
        retried.insert(ATTEMPT_COUNT, HeaderValue::from(3u32));
        counted.apply_to_response(&mut retried);
        assert_eq!(retried[ATTEMPT_COUNT], "3");
        assert_eq!(counted.upstream_route(None, None).attempt_count, both);

        for silent in [
            rewriting(false),
            ForwardDecision {
                attempt_count: both,
                ..rewriting(true)
            },
        ] {
            let mut parts = request();
            silent.apply_to_request(&mut parts);
            let mut headers = HeaderMap::new();
            silent.apply_to_response(&mut headers);
            assert!(!parts.headers.contains_key(ATTEMPT_COUNT));
            assert!(!headers.contains_key(ATTEMPT_COUNT));
            assert_eq!(
                silent.upstream_route(None, None).attempt_count,
                AttemptCount::default()
            );
        }
    }
}
