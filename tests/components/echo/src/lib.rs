//! `echo`: streams the request body back while reporting the request's
//! metadata, so tests can see exactly what the host delivered to a guest.
//!
//! Headers describe the request head; trailers (sent after the body) carry the
//! body's byte count and the request's trailers, which only exist once the
//! whole request body has been read.

mod metadata;

use guest_support::body::{self, BodyError};
use guest_support::response;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    ErrorCode, FutureTrailers, IncomingBody, IncomingRequest, OutgoingBody, ResponseOutparam,
};

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let started = response::fields(
            metadata::response_headers(&request)
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_slice())),
        )
        .and_then(|headers| response::start(200, headers));
        let (response, body) = match started {
            Ok(parts) => parts,
            Err(code) => return ResponseOutparam::set(out, Err(code)),
        };
        let Ok(incoming) = request.consume() else {
            let message = "request body already consumed".to_owned();
            return ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(message))));
        };
        // Send the head before reading: a client streaming a large body can
        // then read the echo concurrently instead of waiting for its end.
        ResponseOutparam::set(out, Ok(response));
        if let Err(err) = echo_body(incoming, body) {
            // Dropping the unfinished body tells the host the response is
            // incomplete; stderr is the only place left to say why.
            eprintln!("echo: {err}");
        }
    }
}

/// Copies the request body into the response body, then finishes the response
/// with trailers describing what was read.
fn echo_body(incoming: IncomingBody, outgoing: OutgoingBody) -> Result<(), BodyError> {
    let input = incoming.stream().map_err(|()| BodyError::Claim)?;
    let output = outgoing.write().map_err(|()| BodyError::Claim)?;
    let bytes = body::copy(&input, &output)?;
    // Streams are children of their bodies and must be dropped first.
    drop(input);
    drop(output);

    let request_trailers = read_trailers(IncomingBody::finish(incoming))?;
    let trailers = metadata::response_trailers(bytes, &request_trailers);
    let trailers = response::fields(
        trailers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice())),
    )
    .map_err(BodyError::Finish)?;
    OutgoingBody::finish(outgoing, Some(trailers)).map_err(BodyError::Finish)
}

/// Waits for the request's trailers; an absent trailer section is empty.
fn read_trailers(future: FutureTrailers) -> Result<Vec<(String, Vec<u8>)>, BodyError> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(Some(trailers)))) => Ok(trailers.entries()),
        Some(Ok(Ok(None))) => Ok(Vec::new()),
        Some(Ok(Err(code))) => Err(BodyError::Finish(code)),
        // `get` after a completed `block` only fails if called twice.
        Some(Err(())) | None => Err(BodyError::Finish(ErrorCode::InternalError(Some(
            "request trailers not available".into(),
        )))),
    }
}

wasi::http::proxy::export!(Echo);
