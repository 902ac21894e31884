//! `envoy.filters.http.ext_authz`: every enabled request is checked by an authorization
//! service before it goes on. The service allows it (with header mutations for the request
//! and the response), denies it (its status, headers and body go to the client) or cannot be
//! reached (`failure_mode_allow` lets the request through, else `status_on_error` refuses it).
//! The request body is buffered for the check when `with_request_body` asks.

mod body;
mod grpc;
mod http_service;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mesh_xds::config::{AuthzService, ExtAuthz, ExtAuthzPerRoute, StringMatcher};

use super::chain::FilterRequest;
use super::response_edits::ResponseEdits;
use crate::shared::Failure;

/// Header marking a request let through because the service failed.
const FAILURE_MODE_ALLOWED: &str = "x-envoy-auth-failure-mode-allowed";

/// A compiled ext_authz filter.
pub(super) struct ExtAuthzFilter {
    config: Arc<ExtAuthz>,
    status_on_error: StatusCode,
}

/// What the service decided.
pub(super) enum Verdict {
    /// Allowed, with these changes.
    Allowed(Allowed),
    /// Denied: the client gets this answer.
    Denied {
        status: StatusCode,
        body: String,
        headers: ResponseEdits,
    },
    /// The service failed (unreachable, timed out, 5xx, malformed answer).
    Error(String),
}

/// The changes an allowing answer asks for.
#[derive(Default)]
pub(super) struct Allowed {
    /// Request headers that replace the request's.
    pub(super) set: Vec<(String, String)>,
    /// Request headers added beside the request's.
    pub(super) add: Vec<(String, String)>,
    /// Request headers whose existing value gets `,value` appended.
    pub(super) append: Vec<(String, String)>,
    /// Request headers removed.
    pub(super) remove: Vec<String>,
    /// Query parameters set.
    pub(super) query_set: Vec<(String, String)>,
    /// Query parameters removed.
    pub(super) query_remove: Vec<String>,
    /// Response headers.
    pub(super) response: ResponseEdits,
}

/// The per-route settings that apply to one request, merged over every level.
pub(super) struct RouteSettings {
    pub(super) context_extensions: BTreeMap<String, String>,
    pub(super) disable_request_body_buffering: bool,
}

impl RouteSettings {
    /// Merges per-route settings given most specific first: context extensions of more
    /// specific levels win key by key, the most specific level's flags apply.
    pub(super) fn merge<'a>(levels: impl DoubleEndedIterator<Item = &'a ExtAuthzPerRoute>) -> Self {
        let mut merged = RouteSettings {
            context_extensions: BTreeMap::new(),
            disable_request_body_buffering: false,
        };
        for level in levels.rev() {
            merged.context_extensions.extend(
                level
                    .context_extensions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            merged.disable_request_body_buffering = level.disable_request_body_buffering;
        }
        merged
    }
}

impl ExtAuthzFilter {
    pub(super) fn new(config: &Arc<ExtAuthz>) -> Result<ExtAuthzFilter, String> {
        Ok(ExtAuthzFilter {
            config: config.clone(),
            status_on_error: StatusCode::from_u16(config.status_on_error).map_err(|_| {
                format!(
                    "status_on_error {} is not an HTTP status",
                    config.status_on_error
                )
            })?,
        })
    }

    /// Checks the request. Returns the response edits for encoding and the refusal, if any.
    pub(super) async fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        route: RouteSettings,
    ) -> (ResponseEdits, Option<Failure>) {
        // Envoy skips the check of a request that matched no route.
        if !request.routed {
            return (ResponseEdits::default(), None);
        }
        if !self.config.filter_enabled.includes(rand::random()) {
            let refusal = self.config.deny_at_disable.then_some(Failure::AuthzError {
                status: self.status_on_error,
            });
            return (ResponseEdits::default(), refusal);
        }
        let buffered = match self.config.with_request_body {
            Some(settings) if !route.disable_request_body_buffering => {
                match body::buffer(request.body.get_mut(), settings).await {
                    Ok(buffered) => buffered,
                    Err(failure) => return (ResponseEdits::default(), Some(failure)),
                }
            }
            _ => None,
        };
        let upstream = request.upstream;
        let verdict = match &self.config.service {
            AuthzService::Grpc(target) => {
                let check = grpc::check_request(&self.config, request, &route, buffered.as_ref());
                grpc::call(target, upstream, check).await
            }
            AuthzService::Http(service) => {
                match http_service::check_request(service, request, buffered.as_ref()) {
                    Ok(check) => http_service::call(service, upstream, check).await,
                    Err(why) => Verdict::Error(why),
                }
            }
        };
        match verdict {
            Verdict::Allowed(allowed) => {
                apply_to_request(request.head, &allowed);
                (allowed.response, None)
            }
            Verdict::Denied {
                status,
                body,
                headers,
            } => (headers, Some(Failure::AuthzDenied { status, body })),
            Verdict::Error(why) => {
                tracing::warn!("ext_authz check failed: {why}");
                if self.config.failure_mode_allow {
                    if self.config.failure_mode_allow_header_add {
                        request.head.headers.append(
                            HeaderName::from_static(FAILURE_MODE_ALLOWED),
                            HeaderValue::from_static("true"),
                        );
                    }
                    (ResponseEdits::default(), None)
                } else {
                    let refusal = Failure::AuthzError {
                        status: self.status_on_error,
                    };
                    (ResponseEdits::default(), Some(refusal))
                }
            }
        }
    }
}

/// Whether a request header goes into a check: allowed (every header when no list is
/// configured) and not disallowed.
pub(super) fn header_allowed(
    name: &str,
    allowed: &[StringMatcher],
    disallowed: &[StringMatcher],
) -> bool {
    (allowed.is_empty() || allowed.iter().any(|m| m.matches(name)))
        && !disallowed.iter().any(|m| m.matches(name))
}

/// Envoy's order: set, add, append (to an existing header only), remove (never a
/// pseudo-header or `host`), then the query parameters.
fn apply_to_request(head: &mut http::request::Parts, allowed: &Allowed) {
    let headers = &mut head.headers;
    for (name, value) in &allowed.set {
        if let Some((name, value)) = header(name, value) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &allowed.add {
        if let Some((name, value)) = header(name, value) {
            headers.append(name, value);
        }
    }
    for (name, value) in &allowed.append {
        append_to_existing(headers, name, value);
    }
    for name in &allowed.remove {
        let name = name.to_ascii_lowercase();
        if name.starts_with(':') || name == "host" {
            continue;
        }
        headers.remove(name.as_str());
    }
    if !allowed.query_set.is_empty() || !allowed.query_remove.is_empty() {
        rewrite_query(head, &allowed.query_set, &allowed.query_remove);
    }
}

fn header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = name.to_ascii_lowercase();
    if name.starts_with(':') {
        return None;
    }
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value).ok()?,
    ))
}

/// Envoy's `appendCopy`: the first value of an existing header gets `,value`.
fn append_to_existing(headers: &mut HeaderMap, name: &str, value: &str) {
    let Some((name, _)) = header(name, value) else {
        return;
    };
    let mut values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
    let Some(first) = values.first_mut() else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    joined.push(b',');
    joined.extend_from_slice(value.as_bytes());
    let Ok(joined) = HeaderValue::from_bytes(&joined) else {
        return;
    };
    *first = joined;
    headers.remove(&name);
    for value in values {
        headers.append(name.clone(), value);
    }
}

/// Sets and removes query parameters, keeping the others in order (Envoy rebuilds the query
/// from its parsed parameters, sorted by key).
fn rewrite_query(head: &mut http::request::Parts, set: &[(String, String)], remove: &[String]) {
    let path_and_query = head
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    let mut params: BTreeMap<String, String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    for (key, value) in set {
        params.insert(key.clone(), value.clone());
    }
    for key in remove {
        params.remove(key);
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let rebuilt = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut parts = head.uri.clone().into_parts();
    if let Ok(pq) = rebuilt.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            head.uri = uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str) -> http::request::Parts {
        http::Request::get(uri)
            .header("x-keep", "1")
            .header("x-append", "a")
            .header("x-gone", "1")
            .header("host", "h")
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[test]
    fn allowed_mutations_follow_envoys_order_and_rules() {
        let mut head = head("/p?b=2&a=1");
        let allowed = Allowed {
            set: vec![
                ("x-keep".into(), "set".into()),
                ("X-New".into(), "n".into()),
            ],
            add: vec![("x-keep".into(), "added".into())],
            append: vec![
                ("x-append".into(), "b".into()),
                ("x-absent".into(), "never".into()),
            ],
            remove: vec!["x-gone".into(), "host".into(), ":path".into()],
            query_set: vec![("c".into(), "3".into())],
            query_remove: vec!["b".into()],
            response: ResponseEdits::default(),
        };
        apply_to_request(&mut head, &allowed);
        let all = |name: &str| -> Vec<String> {
            head.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(all("x-keep"), ["set", "added"]);
        assert_eq!(all("x-new"), ["n"]);
        assert_eq!(all("x-append"), ["a,b"]);
        assert!(all("x-absent").is_empty());
        assert!(all("x-gone").is_empty());
        assert_eq!(all("host"), ["h"], "host is never removed");
        assert_eq!(
            head.uri.path_and_query().map(|p| p.as_str()),
            Some("/p?a=1&c=3")
        );
    }

    #[test]
    fn context_extensions_merge_most_specific_last() {
        let config = |pairs: &[(&str, &str)], no_body: bool| ExtAuthzPerRoute {
            disabled: false,
            context_extensions: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            disable_request_body_buffering: no_body,
        };
        let route = config(&[("a", "route")], true);
        let vhost = config(&[("a", "vhost"), ("b", "vhost")], false);
        let merged = RouteSettings::merge([&route, &vhost].into_iter());
        assert_eq!(merged.context_extensions["a"], "route");
        assert_eq!(merged.context_extensions["b"], "vhost");
        assert!(merged.disable_request_body_buffering);
    }

    #[test]
    fn allowed_and_disallowed_headers_decide_what_is_sent() {
        let exact = |s: &str| StringMatcher {
            pattern: mesh_xds::config::StringPattern::Exact(s.to_owned()),
            ignore_case: false,
        };
        assert!(header_allowed("x-a", &[], &[]));
        assert!(!header_allowed("x-a", &[exact("x-b")], &[]));
        assert!(!header_allowed("x-b", &[exact("x-b")], &[exact("x-b")]));
    }
}
