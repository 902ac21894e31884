//! `outbound`: makes one request through `wasi:http/outgoing-handler` and
//! reports the result, so tests can exercise the host's egress path and its
//! error codes from inside a guest.
//!
//! The caller names the target with the `url` query parameter (or the
//! `x-target-url` header) and shapes it with `x-target-*` headers; the incoming
//! body, if any, is streamed out as the outbound body. Success is a 200 that
//! wraps the upstream response; an egress failure is a 502 naming the
//! `error-code`; a malformed target is a 400.

mod target;

use guest_support::body::{self, BodyError};
use guest_support::response;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureTrailers, IncomingBody, IncomingRequest, IncomingResponse, InputStream,
    OutgoingBody, OutgoingRequest, RequestOptions, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct Outbound;

impl Guest for Outbound {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = target::from_request(&request)
            .and_then(|target| Ok((target::to_request(&target)?, target::options(&target)?)));
        let (outgoing, options) = match target {
            Ok(parts) => parts,
            Err(message) => return response::text(out, 400, &message),
        };
        let Ok(incoming) = request.consume() else {
            return response::text(out, 500, "request body already consumed\n");
        };
        match send(outgoing, options, incoming) {
            Ok(upstream) => relay(out, upstream),
            Err(code) => report_error(out, &code),
        }
    }
}

/// Sends `outgoing` with the incoming request's body and waits for the
/// upstream response head.
fn send(
    outgoing: OutgoingRequest,
    options: Option<RequestOptions>,
    incoming: IncomingBody,
) -> Result<IncomingResponse, ErrorCode> {
    let input = incoming
        .stream()
        .map_err(|()| internal("request body stream already claimed"))?;
    // Only a non-empty body is attached: a request whose body was never
    // claimed goes out without one, which upstreams expect for a plain GET.
    let upload = match first_chunk(&input).map_err(|err| internal(&err.to_string()))? {
        Some(chunk) => {
            let body = outgoing
                .body()
                .map_err(|()| internal("outgoing body already claimed"))?;
            Some((chunk, body))
        }
        None => None,
    };
    let future = outgoing_handler::handle(outgoing, options)?;
    if let Some((chunk, body)) = upload {
        // A failed upload still leaves a response (or an error) to report, so
        // it is only logged; dropping the unfinished body aborts the upload.
        if let Err(err) = forward_body(&chunk, &input, body) {
            eprintln!("outbound: forwarding request body: {err}");
        }
    }
    future.subscribe().block();
    match future.get() {
        Some(Ok(result)) => result,
        // `get` after a completed `block` only fails if called twice.
        Some(Err(())) | None => Err(internal("outgoing response not available")),
    }
}

/// Reads the first non-empty chunk of the request body; `None` if it is empty.
fn first_chunk(input: &InputStream) -> Result<Option<Vec<u8>>, BodyError> {
    loop {
        match input.blocking_read(body::MAX_WRITE as u64) {
            Ok(chunk) if chunk.is_empty() => continue,
            Ok(chunk) => return Ok(Some(chunk)),
            Err(StreamError::Closed) => return Ok(None),
            Err(err) => return Err(BodyError::Read(err)),
        }
    }
}

/// Streams the rest of the request body, after `first_chunk`, into `body`.
fn forward_body(
    first_chunk: &[u8],
    input: &InputStream,
    body: OutgoingBody,
) -> Result<(), BodyError> {
    let output = body.write().map_err(|()| BodyError::Claim)?;
    body::write_all(&output, first_chunk)?;
    body::copy(input, &output)?;
    drop(output);
    OutgoingBody::finish(body, None).map_err(BodyError::Finish)
}

/// Wraps the upstream response: its status and headers become `x-upstream-*`
/// headers, its body is streamed through and its trailers come back as
/// `x-upstream-t-<name>` trailers.
fn relay(out: ResponseOutparam, upstream: IncomingResponse) {
    let status = upstream.status().to_string();
    let mut headers = vec![("x-upstream-status".to_owned(), status.into_bytes())];
    headers.extend(
        upstream
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (format!("x-upstream-h-{name}"), value)),
    );
    let started = response::fields(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
        .and_then(|headers| response::start(200, headers));
    let (response, body) = match started {
        Ok(parts) => parts,
        Err(code) => return ResponseOutparam::set(out, Err(code)),
    };
    let Ok(upstream_body) = upstream.consume() else {
        return ResponseOutparam::set(out, Err(internal("upstream body already consumed")));
    };
    ResponseOutparam::set(out, Ok(response));
    if let Err(err) = relay_body(upstream_body, body) {
        eprintln!("outbound: relaying upstream body: {err}");
    }
}

fn relay_body(upstream: IncomingBody, outgoing: OutgoingBody) -> Result<(), BodyError> {
    let input = upstream.stream().map_err(|()| BodyError::Claim)?;
    let output = outgoing.write().map_err(|()| BodyError::Claim)?;
    body::copy(&input, &output)?;
    drop(input);
    drop(output);
    let trailers = upstream_trailers(IncomingBody::finish(upstream))?;
    let trailers = if trailers.is_empty() {
        None
    } else {
        let fields = response::fields(trailers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        Some(fields.map_err(BodyError::Finish)?)
    };
    OutgoingBody::finish(outgoing, trailers).map_err(BodyError::Finish)
}

/// The upstream trailers renamed to `x-upstream-t-<name>`.
fn upstream_trailers(future: FutureTrailers) -> Result<Vec<(String, Vec<u8>)>, BodyError> {
    future.subscribe().block();
    let entries = match future.get() {
        Some(Ok(Ok(Some(trailers)))) => trailers.entries(),
        Some(Ok(Ok(None))) => Vec::new(),
        Some(Ok(Err(code))) => return Err(BodyError::Finish(code)),
        Some(Err(())) | None => {
            return Err(BodyError::Finish(internal(
                "upstream trailers not available",
            )));
        }
    };
    Ok(entries
        .into_iter()
        .map(|(name, value)| (format!("x-upstream-t-{name}"), value))
        .collect())
}

/// Answers 502 naming the egress error, with its full form in the body.
fn report_error(out: ResponseOutparam, code: &ErrorCode) {
    response::send(
        out,
        502,
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("x-outbound-error", wit_name(code)),
        ],
        format!("{code:?}\n").as_bytes(),
    );
}

guest_support::wit_error_names!(ErrorCode);

fn internal(message: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_owned()))
}

wasi::http::proxy::export!(Outbound);
