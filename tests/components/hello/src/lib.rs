//! `hello`: answers every request with `200 text/plain` and a fixed body, the
//! smallest possible component for smoke, routing and load tests.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

/// The exact body every test compares against.
const GREETING: &[u8] = b"Hello from mesh-host!\n";

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        guest_support::response::send(out, 200, &[("content-type", "text/plain")], GREETING);
    }
}

wasi::http::proxy::export!(Hello);
