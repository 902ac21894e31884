//! `envoy.filters.http.cors`: cross-origin requests as Envoy's CORS filter answers them. The
//! policies come from the route, the virtual host and the route configuration
//! (`typed_per_filter_config`); each setting is taken from the most specific policy that sets
//! it. The host answers preflights itself and adds `access-control-*` to the responses of
//! allowed origins.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::chain::FilterRequest;
use crate::body::{ResponseBody, empty};

const ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// A route's (or virtual host's) CORS policy.
pub(super) struct CorsPolicy {
    config: mesh_xds::config::CorsPolicy,
}

/// What encoding needs from a CORS request whose origin is allowed.
pub(super) struct CorsMatch {
    origin: HeaderValue,
    allow_credentials: bool,
    expose_headers: Option<HeaderValue>,
}

/// The settings of the applicable policies, each from the most specific that sets it.
struct Merged<'a> {
    policies: Vec<&'a mesh_xds::config::CorsPolicy>,
}

impl<'a> Merged<'a> {
    fn first<T>(&self, get: impl Fn(&'a mesh_xds::config::CorsPolicy) -> Option<T>) -> Option<T> {
        self.policies.iter().find_map(|policy| get(policy))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.first(|p| (!p.allow_origin.is_empty()).then_some(&p.allow_origin))
            .is_some_and(|matchers| matchers.iter().any(|m| m.matches("*") || m.matches(origin)))
    }

    fn text(
        &self,
        get: impl Fn(&'a mesh_xds::config::CorsPolicy) -> &'a Option<String>,
    ) -> Option<&'a str> {
        self.first(|p| get(p).as_deref().filter(|v| !v.is_empty()))
    }
}

impl CorsPolicy {
    pub(super) fn new(config: &mesh_xds::config::CorsPolicy) -> CorsPolicy {
        CorsPolicy {
            config: config.clone(),
        }
    }

    /// Answers a preflight, or remembers an allowed origin for the response. `policies` are
    /// most specific first; without any, or without a route, the request is not a CORS one.
    pub(super) fn decode<'p>(
        policies: impl Iterator<Item = &'p CorsPolicy>,
        request: &FilterRequest<'_>,
    ) -> (Option<CorsMatch>, Option<http::Response<ResponseBody>>) {
        let merged = Merged {
            policies: policies.map(|p| &p.config).collect(),
        };
        let Some(most_specific) = merged.policies.first() else {
            return (None, None);
        };
        if !most_specific.filter_enabled.includes(rand::random()) {
            return (None, None);
        }
        let headers = &request.head.headers;
        let Some(origin) = headers.get(ORIGIN).filter(|o| !o.is_empty()) else {
            return (None, None);
        };
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| merged.origin_allowed(origin));
        let allow_credentials = merged.first(|p| p.allow_credentials).unwrap_or(false);
        let matched = allowed.then(|| CorsMatch {
            origin: origin.clone(),
            allow_credentials,
            expose_headers: merged
                .text(|p| &p.expose_headers)
                .and_then(|v| HeaderValue::from_str(v).ok()),
        });
        let request_method = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|m| !m.is_empty());
        let Some(request_method) =
            request_method.filter(|_| request.head.method == Method::OPTIONS)
        else {
            return (matched, None);
        };
        let forward_unmatched = merged
            .first(|p| p.forward_not_matching_preflights)
            .unwrap_or(true);
        if !allowed && forward_unmatched {
            return (matched, None);
        }
        let mut response = http::Response::new(empty());
        *response.status_mut() = StatusCode::OK;
        let out = response.headers_mut();
        if allowed {
            out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if allow_credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        // `*` echoes what the preflight asks for, as an empty value when it asks nothing.
        let echo = |configured: Option<&str>, asked: Option<&HeaderValue>| match configured {
            Some("*") => Some(
                asked
                    .cloned()
                    .unwrap_or_else(|| HeaderValue::from_static("")),
            ),
            Some(value) => HeaderValue::from_str(value).ok(),
            None => None,
        };
        if let Some(value) = echo(merged.text(|p| &p.allow_methods), Some(request_method)) {
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, value);
        }
        if let Some(value) = echo(
            merged.text(|p| &p.allow_headers),
            headers.get(ACCESS_CONTROL_REQUEST_HEADERS),
        ) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if let Some(value) = merged
            .text(|p| &p.max_age)
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            out.insert(ACCESS_CONTROL_MAX_AGE, value);
        }
        let private_network = merged.first(|p| p.allow_private_network_access) == Some(true);
        if private_network
            && headers
                .get(ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK)
                .is_some_and(|v| v == "true")
        {
            out.insert(
                ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK,
                HeaderValue::from_static("true"),
            );
        }
        (matched, Some(response))
    }
}

impl CorsMatch {
    /// `access-control-allow-origin` (and credentials, exposed headers) on the response.
    pub(super) fn encode(&self, headers: &mut HeaderMap) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.origin.clone());
        if self.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_xds::config::{Fraction, StringMatcher};

    use super::*;
    use crate::shared::RequestMeta;

    fn policy(origins: &[&str]) -> CorsPolicy {
        CorsPolicy::new(&mesh_xds::config::CorsPolicy {
            allow_origin: origins.iter().map(|o| StringMatcher::exact(*o)).collect(),
            allow_methods: Some("GET, POST".to_owned()),
            allow_headers: Some("*".to_owned()),
            expose_headers: Some("x-trace".to_owned()),
            max_age: Some("600".to_owned()),
            allow_credentials: Some(true),
            allow_private_network_access: None,
            filter_enabled: Fraction::ALL,
            forward_not_matching_preflights: None,
        })
    }

    fn run(
        policies: &[&CorsPolicy],
        method: Method,
        headers: &[(&'static str, &'static str)],
    ) -> (Option<CorsMatch>, Option<http::Response<ResponseBody>>) {
        let mut builder = http::Request::builder()
            .method(method)
            .uri("http://a.test/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let request = FilterRequest {
            head: &mut head,
            meta: &meta,
            cluster: None,
            routed: true,
            body: &mut body,
            upstream: &upstream,
        };
        CorsPolicy::decode(policies.iter().copied(), &request)
    }

    #[test]
    fn allowed_preflight_is_answered_by_the_host() {
        let policy = policy(&["https://app.test"]);
        let (_, answer) = run(
            &[&policy],
            Method::OPTIONS,
            &[
                ("origin", "https://app.test"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-a, x-b"),
            ],
        );
        let answer = answer.expect("preflight answered");
        let headers = answer.headers();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(
            headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-a, x-b",
            "`*` echoes the ask"
        );
        assert_eq!(headers[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn refused_preflight_goes_upstream_unless_told_otherwise() {
        let forwarding = policy(&["https://app.test"]);
        let preflight = [
            ("origin", "https://evil.test"),
            ("access-control-request-method", "PUT"),
        ];
        let (matched, answer) = run(&[&forwarding], Method::OPTIONS, &preflight);
        assert!(matched.is_none() && answer.is_none());
        let mut strict = policy(&["https://app.test"]);
        strict.config.forward_not_matching_preflights = Some(false);
        let (_, answer) = run(&[&strict], Method::OPTIONS, &preflight);
        let answer = answer.expect("answered without the origin");
        assert!(!answer.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn simple_request_from_an_allowed_origin_gets_cors_headers() {
        let policy = policy(&["https://app.test"]);
        let (matched, answer) = run(&[&policy], Method::GET, &[("origin", "https://app.test")]);
        assert!(answer.is_none());
        let mut headers = HeaderMap::new();
        matched.expect("allowed").encode(&mut headers);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "x-trace");
    }

    #[test]
    fn route_settings_win_over_the_virtual_hosts() {
        let vhost = policy(&["https://app.test"]);
        let mut route = policy(&[]);
        route.config.allow_credentials = Some(false);
        route.config.expose_headers = None;
        let (matched, _) = run(
            &[&route, &vhost],
            Method::GET,
            &[("origin", "https://app.test")],
        );
        let matched = matched.expect("origins come from the virtual host");
        assert!(
            !matched.allow_credentials,
            "the route's explicit false wins"
        );
        assert!(matched.expose_headers.is_some(), "unset falls through");
    }
}
