//! `outbound-p3`: `outbound` as a `wasi:http@0.3` component. It makes one
//! request through `wasi:http/client.send` and answers exactly as `outbound`
//! does (see the README): the upstream response wrapped in a 200, an egress
//! error as a 502 naming its `error-code`, a malformed target as a 400.
//! Bodies are copied chunk by chunk, never held whole.

use guest_support::target::Target;
use wasip3::http::types::{
    ErrorCode, Fields, Method, Request, RequestOptions, Response, Scheme, Trailers,
};
use wasip3::wit_bindgen::rt::async_support::{FutureReader, StreamReader, StreamResult};
use wasip3::{wit_bindgen, wit_future, wit_stream};

/// Bytes asked for per read of the request body.
const READ_SIZE: usize = 4096;

struct Outbound;

impl wasip3::exports::http::handler::Guest for Outbound {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_with_query = request.get_path_with_query().unwrap_or_default();
        let target = match Target::from_parts(&path_with_query, &request.get_headers().copy_all())
        {
            Ok(target) => target,
            Err(message) => return text(400, &[], &message),
        };
        let (_consumed, consumed_rx) = wit_future::new(|| Ok(()));
        let (body, _trailers) = Request::consume_body(request, consumed_rx);
        let outgoing = match to_request(&target, upload(body).await) {
            Ok(outgoing) => outgoing,
            Err(message) => return text(400, &[], &message),
        };
        match wasip3::http::client::send(outgoing).await {
            Ok(upstream) => relay(upstream),
            Err(code) => text(502, &[("x-outbound-error", wit_name(&code))], &format!("{code:?}\n")),
        }
    }
}

/// The incoming body as the outbound body, or `None` when it is empty: a
/// request whose body never had a byte goes out without one, as a plain GET.
async fn upload(mut body: StreamReader<u8>) -> Option<StreamReader<u8>> {
    let first = loop {
        let (result, chunk) = body.read(Vec::with_capacity(READ_SIZE)).await;
        if !chunk.is_empty() {
            break chunk;
        }
        if !matches!(result, StreamResult::Complete(_)) {
            return None;
        }
    };
    let (mut forward, contents) = wit_stream::new();
    wit_bindgen::spawn_local(async move {
        let mut chunk = first;
        loop {
            if !forward.write_all(chunk).await.is_empty() {
                // The upstream stopped reading; dropping both ends aborts.
                return;
            }
            let (result, next) = body.read(Vec::with_capacity(READ_SIZE)).await;
            if next.is_empty() && !matches!(result, StreamResult::Complete(_)) {
                return;
            }
            chunk = next;
        }
    });
    Some(contents)
}

fn to_request(target: &Target, body: Option<StreamReader<u8>>) -> Result<Request, String> {
    let headers = Fields::from_list(&target.headers)
        .map_err(|error| format!("headers rejected: {error:?}\n"))?;
    let options = match target.between_bytes_ms {
        Some(ms) => {
            let options = RequestOptions::new();
            options
                .set_between_bytes_timeout(Some(ms * 1_000_000))
                .map_err(|error| format!("between-bytes-timeout rejected: {error:?}\n"))?;
            Some(options)
        }
        None => None,
    };
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers);
    let (request, _sent) = Request::new(headers, body, trailers_rx, options);
    let rejected = |what: String| format!("{what} rejected by the host\n");
    request
        .set_method(&method(&target.method))
        .map_err(|()| rejected(format!("method {:?}", target.method)))?;
    request
        .set_scheme(Some(&scheme(&target.url.scheme)))
        .map_err(|()| rejected(format!("scheme {:?}", target.url.scheme)))?;
    request
        .set_authority(Some(&target.url.authority))
        .map_err(|()| rejected(format!("authority {:?}", target.url.authority)))?;
    request
        .set_path_with_query(Some(&target.url.path_with_query))
        .map_err(|()| rejected(format!("path {:?}", target.url.path_with_query)))?;
    Ok(request)
}

/// Wraps the upstream response: status and headers as `x-upstream-*`
/// headers, the body passed through as it streams, and the upstream
/// trailers renamed to `x-upstream-t-<name>`.
fn relay(upstream: Response) -> Result<Response, ErrorCode> {
    let mut headers = vec![(
        "x-upstream-status".to_owned(),
        upstream.get_status_code().to_string().into_bytes(),
    )];
    headers.extend(
        upstream
            .get_headers()
            .copy_all()
            .into_iter()
            .map(|(name, value)| (format!("x-upstream-h-{name}"), value)),
    );
    let headers = Fields::from_list(&headers).map_err(|error| internal(&format!("{error:?}")))?;
    let (_consumed, consumed_rx) = wit_future::new(|| Ok(()));
    let (mut upstream_body, upstream_trailers) = Response::consume_body(upstream, consumed_rx);
    // Copied rather than handed on: the host would pass a stream of its own
    // through with the upstream's trailers, not the renamed ones.
    let (mut body, contents) = wit_stream::new();
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    wit_bindgen::spawn_local(async move {
        loop {
            let (result, chunk) = upstream_body.read(Vec::with_capacity(READ_SIZE)).await;
            if !chunk.is_empty() && !body.write_all(chunk).await.is_empty() {
                eprintln!("outbound-p3: the client stopped reading the body");
                return;
            }
            if !matches!(result, StreamResult::Complete(_)) {
                break;
            }
        }
        drop(body);
        let renamed = rename_trailers(upstream_trailers).await;
        if trailers.write(renamed).await.is_err() {
            eprintln!("outbound-p3: the client left before the trailers");
        }
    });
    let (response, _sent) = Response::new(headers, Some(contents), trailers_rx);
    Ok(response)
}

async fn rename_trailers(
    upstream: FutureReader<Result<Option<Trailers>, ErrorCode>>,
) -> Result<Option<Trailers>, ErrorCode> {
    let Some(trailers) = upstream.await? else {
        return Ok(None);
    };
    let renamed: Vec<(String, Vec<u8>)> = trailers
        .copy_all()
        .into_iter()
        .map(|(name, value)| (format!("x-upstream-t-{name}"), value))
        .collect();
    Fields::from_list(&renamed)
        .map(Some)
        .map_err(|error| internal(&format!("{error:?}")))
}

/// A plain-text response.
fn text(status: u16, extra: &[(&str, &str)], message: &str) -> Result<Response, ErrorCode> {
    let mut headers = vec![(
        "content-type".to_owned(),
        b"text/plain; charset=utf-8".to_vec(),
    )];
    headers.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec())),
    );
    let headers = Fields::from_list(&headers).map_err(|error| internal(&format!("{error:?}")))?;
    let (mut body, contents) = wit_stream::new();
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers);
    let (response, _sent) = Response::new(headers, Some(contents), trailers_rx);
    response
        .set_status_code(status)
        .map_err(|()| internal("status rejected"))?;
    let message = message.as_bytes().to_vec();
    wit_bindgen::spawn_local(async move {
        if !body.write_all(message).await.is_empty() {
            eprintln!("outbound-p3: the client left before the body was written");
        }
    });
    Ok(response)
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

guest_support::wit_error_names!(ErrorCode);

fn internal(message: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_owned()))
}

wasip3::http::service::export!(Outbound);
