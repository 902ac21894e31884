//! `memhog`: allocates and touches memory in 1 MiB chunks until allocation
//! fails, which aborts (traps), so the host's memory limit can be tested.

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const CHUNK: usize = 1 << 20;

struct MemHog;

impl Guest for MemHog {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // A non-zero fill writes every page, so the memory is really
            // committed rather than left as fresh zeroed pages.
            let chunk = vec![0xA5u8; CHUNK];
            hoard.push(black_box(chunk));
            black_box(&hoard);
        }
    }
}

wasi::http::proxy::export!(MemHog);
