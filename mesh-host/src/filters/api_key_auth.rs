//! `envoy.filters.http.api_key_auth`: an API key from a header, a query parameter or a
//! cookie must be one of the configured credentials; a route may replace the credentials
//! and sources and allow only some clients.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};
use mesh_xds::config::{ApiKeyAuth, KeySource};

use super::chain::FilterRequest;
use super::credentials::{remove_cookie, remove_query_parameter};
use crate::shared::{Failure, RequestView};

/// A compiled api_key_auth filter.
pub(super) struct ApiKeyFilter {
    config: Arc<ApiKeyAuth>,
}

impl ApiKeyFilter {
    pub(super) fn new(config: &Arc<ApiKeyAuth>) -> ApiKeyFilter {
        ApiKeyFilter {
            config: config.clone(),
        }
    }

    /// Checks the key; `route` is the most specific per-route configuration.
    pub(super) fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        route: Option<&ApiKeyAuth>,
    ) -> Option<Failure> {
        let own = &*self.config;
        let credentials = &pick(own, route, |r| r.credentials.is_empty()).credentials;
        let sources = &pick(own, route, |r| r.key_sources.is_empty()).key_sources;
        // A route's configuration replaces the forwarding settings even when it has none.
        let forwarding = route.unwrap_or(own);
        let allowed_clients = route.map_or(&[][..], |r| &r.allowed_clients[..]);
        let rejected = |status, reason| Some(Failure::CredentialsRejected { status, reason });
        let Some((key, source)) = find_key(request.head, sources) else {
            return rejected(StatusCode::UNAUTHORIZED, "Client authentication failed.");
        };
        let Some((_, client)) = credentials.iter().find(|(k, _)| *k == key) else {
            return rejected(StatusCode::UNAUTHORIZED, "Client authentication failed.");
        };
        if !allowed_clients.is_empty() && !allowed_clients.contains(client) {
            return rejected(StatusCode::FORBIDDEN, "Client is forbidden.");
        }
        if let Some(header) = &forwarding.forward_client_header
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.as_bytes()),
                HeaderValue::from_str(client),
            )
        {
            request.head.headers.insert(name, value);
        }
        if forwarding.hide_credentials {
            match source {
                KeySource::Header(name) => {
                    request.head.headers.remove(name.as_str());
                }
                KeySource::Query(name) => remove_query_parameter(request.head, name),
                KeySource::Cookie(name) => remove_cookie(request.head, name),
            }
        }
        None
    }
}

/// The route's setting unless it leaves it `empty`, then the filter's.
fn pick<'a>(
    own: &'a ApiKeyAuth,
    route: Option<&'a ApiKeyAuth>,
    empty: fn(&ApiKeyAuth) -> bool,
) -> &'a ApiKeyAuth {
    match route {
        Some(route) if !empty(route) => route,
        _ => own,
    }
}

/// The first key the sources find, and where.
fn find_key<'s>(
    head: &http::request::Parts,
    sources: &'s [KeySource],
) -> Option<(String, &'s KeySource)> {
    let view = RequestView::new(head);
    sources.iter().find_map(|source| {
        let key = match source {
            KeySource::Header(name) => {
                let value = view.header_values(name).into_iter().next()?;
                value
                    .strip_prefix("Bearer ")
                    .map_or_else(|| value.to_string(), str::to_owned)
            }
            KeySource::Query(name) => view.query_parameter(name)?.to_owned(),
            KeySource::Cookie(name) => head
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k == name).then(|| v.to_owned())
                })?,
        };
        (!key.is_empty()).then_some((key, source))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        filter: &ApiKeyFilter,
        uri: &str,
        headers: &[(&str, &str)],
        route: Option<&ApiKeyAuth>,
    ) -> Option<Failure> {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = crate::shared::RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        filter.decode(
            &mut FilterRequest {
                head: &mut head,
                meta: &meta,
                cluster: None,
                routed: true,
                body: &mut body,
                upstream: &upstream,
            },
            route,
        )
    }

    #[test]
    fn keys_from_headers_queries_and_cookies_identify_clients() {
        let filter = ApiKeyFilter::new(&Arc::new(ApiKeyAuth {
            credentials: vec![("k1".into(), "one".into()), ("k2".into(), "two".into())],
            key_sources: vec![
                KeySource::Header("x-api-key".into()),
                KeySource::Query("key".into()),
                KeySource::Cookie("key".into()),
            ],
            ..ApiKeyAuth::default()
        }));
        assert_eq!(check(&filter, "/", &[("x-api-key", "k1")], None), None);
        assert_eq!(check(&filter, "/?key=k2", &[], None), None);
        assert_eq!(check(&filter, "/", &[("cookie", "key=k1")], None), None);
        let status = |f: Option<Failure>| f.map(|f| f.status().as_u16());
        assert_eq!(status(check(&filter, "/", &[], None)), Some(401));
        assert_eq!(
            status(check(&filter, "/", &[("x-api-key", "bad")], None)),
            Some(401)
        );
        let only_two = ApiKeyAuth {
            allowed_clients: vec!["two".into()],
            ..ApiKeyAuth::default()
        };
        assert_eq!(
            status(check(&filter, "/", &[("x-api-key", "k1")], Some(&only_two))),
            Some(403)
        );
    }
}
