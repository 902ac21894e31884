//! The outbound request as `wasi:http@0.2` resources.

use guest_support::target::Target;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingRequest, RequestOptions, Scheme};

/// Reads the target the caller asks for from `request`.
pub fn from_request(request: &IncomingRequest) -> Result<Target, String> {
    let path_with_query = request.path_with_query().unwrap_or_default();
    Target::from_parts(&path_with_query, &request.headers().entries())
}

/// The request options the caller asked for, if any.
pub fn options(target: &Target) -> Result<Option<RequestOptions>, String> {
    let Some(ms) = target.between_bytes_ms else {
        return Ok(None);
    };
    let options = RequestOptions::new();
    options
        .set_between_bytes_timeout(Some(ms * 1_000_000))
        .map_err(|()| "between-bytes-timeout rejected by the host\n".to_owned())?;
    Ok(Some(options))
}

/// Builds the `wasi:http` request. The host may still refuse a header (a
/// forbidden name such as `host`), which is reported as the caller's error.
pub fn to_request(target: &Target) -> Result<OutgoingRequest, String> {
    let fields = Fields::new();
    for (name, value) in &target.headers {
        fields
            .append(name, value)
            .map_err(|err| format!("header {name:?} rejected: {err:?}\n"))?;
    }
    let request = OutgoingRequest::new(fields);
    let rejected = |what: &str| format!("{what} rejected by the host\n");
    request
        .set_method(&method(&target.method))
        .map_err(|()| rejected(&format!("method {:?}", target.method)))?;
    request
        .set_scheme(Some(&scheme(&target.url.scheme)))
        .map_err(|()| rejected(&format!("scheme {:?}", target.url.scheme)))?;
    request
        .set_authority(Some(&target.url.authority))
        .map_err(|()| rejected(&format!("authority {:?}", target.url.authority)))?;
    request
        .set_path_with_query(Some(&target.url.path_with_query))
        .map_err(|()| rejected(&format!("path {:?}", target.url.path_with_query)))?;
    Ok(request)
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn scheme(name: &str) -> Scheme {
    match name {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    }
}
