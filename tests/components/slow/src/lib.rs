//! `slow`: streams a response in timed chunks, so tests can observe graceful
//! drain during a long response and per-request deadlines.
//!
//! Query parameters: `sleep_ms` (wait before responding, default 0), `chunks`
//! (default 10), `delay_ms` (pause between chunks, default 200) and `chunk`
//! (the text of each chunk, default `chunk\n`).

use std::str::FromStr;
use std::thread;
use std::time::Duration;

use guest_support::body::{self, BodyError};
use guest_support::{query, response};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, OutgoingBody, ResponseOutparam};

/// The response plan, read from the query string.
struct Plan {
    sleep: Duration,
    chunks: u64,
    delay: Duration,
    chunk: String,
}

impl Plan {
    fn from_target(path_with_query: &str) -> Result<Self, String> {
        Ok(Plan {
            sleep: Duration::from_millis(number(path_with_query, "sleep_ms", 0)?),
            chunks: number(path_with_query, "chunks", 10)?,
            delay: Duration::from_millis(number(path_with_query, "delay_ms", 200)?),
            chunk: query::param(path_with_query, "chunk").unwrap_or_else(|| "chunk\n".into()),
        })
    }
}

/// Parses the numeric parameter `name`, or returns `default` when it is absent.
fn number<T: FromStr>(path_with_query: &str, name: &str, default: T) -> Result<T, String> {
    match query::param(path_with_query, name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            format!("query parameter {name}={text:?} is not a non-negative integer\n")
        }),
    }
}

struct Slow;

impl Guest for Slow {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let plan = match Plan::from_target(&request.path_with_query().unwrap_or_default()) {
            Ok(plan) => plan,
            Err(message) => return response::text(out, 400, &message),
        };
        thread::sleep(plan.sleep);
        let headers = response::fields([("content-type", b"text/plain".as_slice())]);
        let (response, body) = match headers.and_then(|headers| response::start(200, headers)) {
            Ok(parts) => parts,
            Err(code) => return ResponseOutparam::set(out, Err(code)),
        };
        ResponseOutparam::set(out, Ok(response));
        if let Err(err) = stream_chunks(&plan, body) {
            // A client that hangs up mid-stream lands here; nothing to answer.
            eprintln!("slow: {err}");
        }
    }
}

/// Writes each chunk and flushes it before pausing, so the client receives
/// chunks one by one instead of all at the end.
fn stream_chunks(plan: &Plan, outgoing: OutgoingBody) -> Result<(), BodyError> {
    let output = outgoing.write().map_err(|()| BodyError::Claim)?;
    for index in 0..plan.chunks {
        if index > 0 {
            thread::sleep(plan.delay);
        }
        body::write_all(&output, plan.chunk.as_bytes())?;
    }
    drop(output);
    OutgoingBody::finish(outgoing, None).map_err(BodyError::Finish)
}

wasi::http::proxy::export!(Slow);
