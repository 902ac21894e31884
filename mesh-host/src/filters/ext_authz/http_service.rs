//! The HTTP authorization service: the client's request head (the allowed headers only, path
//! prefixed) goes to the service; a 200 allows, a 5xx is a failure, any other status denies
//! with the service's status, headers and body (Envoy's `RawHttpClientImpl`).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use mesh_xds::config::{HttpAuthzService, StringMatcher};

use super::body::Buffered;
use super::{Allowed, Verdict};
use crate::egress::Egress;
use crate::filters::chain::FilterRequest;
use crate::filters::response_edits::{Edit, ResponseEdits};
use crate::filters::upstream_call::http_call;
use crate::shared::RequestView;

/// Headers the service names, comma-separated, for removal from the request on success.
const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Always sent, besides the configured ones.
const ALWAYS_SENT: [&str; 3] = ["authorization", ":method", ":path"];

/// Passed to the client with a denial when `allowed_client_headers` names others.
const ALWAYS_TO_CLIENT: [&str; 3] = ["content-length", "www-authenticate", "location"];

/// The check: the client's head with the allowed headers, path prefixed, and the body.
pub(super) fn check_request(
    service: &HttpAuthzService,
    request: &FilterRequest<'_>,
    body: Option<&Buffered>,
) -> Result<http::Request<Bytes>, String> {
    let head = &*request.head;
    let view = RequestView::new(head);
    let authority = view
        .authority
        .map(str::to_owned)
        .or_else(|| {
            service
                .uri
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.to_string()))
        })
        .unwrap_or_default();
    let path = format!("{}{}", service.path_prefix, view.path_and_query);
    let uri = match http::Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(path.as_str())
        .build()
    {
        Ok(uri) => uri,
        Err(error) => return Err(format!("check URI: {error}")),
    };
    let bytes = body.map_or_else(Bytes::new, |b| b.bytes.clone());
    let mut check = http::Request::new(bytes.clone());
    *check.method_mut() = head.method.clone();
    *check.uri_mut() = uri;
    let sent = check.headers_mut();
    for (name, value) in &head.headers {
        let name_str = name.as_str();
        if name == header::CONTENT_LENGTH || name == header::HOST {
            continue;
        }
        if ALWAYS_SENT.contains(&name_str) || any(&service.allowed_headers, name_str) {
            sent.append(name.clone(), value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&authority) {
        sent.insert(header::HOST, host);
    }
    sent.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    for (name, value) in &service.headers_to_add {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            sent.insert(name, value);
        }
    }
    Ok(check)
}

/// Asks the service.
pub(super) async fn call(
    service: &HttpAuthzService,
    upstream: &Egress,
    check: http::Request<Bytes>,
) -> Verdict {
    match http_call(upstream, &service.cluster, check, service.timeout).await {
        Ok(response) => verdict(service, response),
        Err(error) => Verdict::Error(error.to_string()),
    }
}

fn any(matchers: &[StringMatcher], name: &str) -> bool {
    matchers.iter().any(|m| m.matches(name))
}

fn verdict(service: &HttpAuthzService, response: http::Response<Bytes>) -> Verdict {
    let (head, body) = response.into_parts();
    if head.status.is_server_error() {
        return Verdict::Error(format!("the service answered {}", head.status));
    }
    let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    if head.status == StatusCode::OK {
        let mut allowed = Allowed::default();
        for value in head.headers.get_all(HEADERS_TO_REMOVE) {
            allowed.remove.extend(
                text(value)
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
            );
        }
        for (name, value) in &head.headers {
            let name = name.as_str();
            if name == HEADERS_TO_REMOVE {
                continue;
            }
            if any(&service.allowed_upstream_headers, name) {
                allowed.set.push((name.to_owned(), text(value)));
            }
            if any(&service.allowed_upstream_headers_to_append, name) {
                allowed.add.push((name.to_owned(), text(value)));
            }
            if any(&service.allowed_client_headers_on_success, name) {
                allowed.response.push(Edit::Add, name, &text(value));
            }
        }
        return Verdict::Allowed(allowed);
    }
    let mut headers = ResponseEdits::default();
    for (name, value) in &head.headers {
        let name = name.as_str();
        let passed = if service.allowed_client_headers.is_empty() {
            // Framing is the local reply's own.
            !matches!(
                name,
                "host" | "content-length" | "transfer-encoding" | "connection"
            )
        } else {
            name != "content-length"
                && (ALWAYS_TO_CLIENT.contains(&name) || any(&service.allowed_client_headers, name))
        };
        if passed {
            headers.push(Edit::Set, name, &text(value));
        }
    }
    Verdict::Denied {
        status: head.status,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
    }
}
