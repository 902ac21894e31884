//! `loop`: spins forever on every request without responding, so the host's
//! CPU deadline (epoch or fuel interruption) can be tested.

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Loop;

impl Guest for Loop {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut spins = 0u64;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless
            // and shrinking it to a bare branch the host might never see.
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

wasi::http::proxy::export!(Loop);
