//! `trap`: executes `unreachable` on every request before a response exists,
//! so the host's trap-to-error mapping can be tested.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Trap;

impl Guest for Trap {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        // The raw instruction rather than a panic: the trap is the same, but
        // nothing is printed first, so the test sees only the host's handling.
        core::arch::wasm32::unreachable()
    }
}

wasi::http::proxy::export!(Trap);
