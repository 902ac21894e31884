//! What `echo` reports about a request, as header and trailer lists.

use wasi::http::types::{IncomingRequest, Method, Scheme};

/// A field name with its raw value.
pub type Field = (String, Vec<u8>);

/// Response headers: the request line parts, every request header under an
/// `x-echo-req-` prefix (repeated names stay repeated) and the request's
/// `content-type`, if any, unchanged.
pub fn response_headers(request: &IncomingRequest) -> Vec<Field> {
    let mut fields = vec![
        field("x-echo-method", method_name(&request.method())),
        field(
            "x-echo-path",
            &request.path_with_query().unwrap_or_default(),
        ),
        field("x-echo-authority", &request.authority().unwrap_or_default()),
        field("x-echo-scheme", &scheme_name(request.scheme())),
    ];
    let headers = request.headers().entries();
    for (name, value) in &headers {
        if name == "content-type" {
            fields.push((name.clone(), value.clone()));
        }
    }
    fields.extend(prefixed("x-echo-req-", headers));
    fields
}

/// Response trailers: the request body's length and every request trailer
/// under an `x-echo-trailer-` prefix.
pub fn response_trailers(body_bytes: u64, request_trailers: &[Field]) -> Vec<Field> {
    let mut fields = vec![field("x-echo-bytes", &body_bytes.to_string())];
    fields.extend(prefixed(
        "x-echo-trailer-",
        request_trailers.iter().cloned(),
    ));
    fields
}

fn prefixed(prefix: &str, fields: impl IntoIterator<Item = Field>) -> impl Iterator<Item = Field> {
    fields
        .into_iter()
        .map(move |(name, value)| (format!("{prefix}{name}"), value))
}

fn field(name: &str, value: &str) -> Field {
    (name.to_owned(), value.as_bytes().to_vec())
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// `http` or `https`, the scheme's own text for any other, empty if absent.
fn scheme_name(scheme: Option<Scheme>) -> String {
    match scheme {
        Some(Scheme::Http) => "http".to_owned(),
        Some(Scheme::Https) => "https".to_owned(),
        Some(Scheme::Other(other)) => other,
        None => String::new(),
    }
}
