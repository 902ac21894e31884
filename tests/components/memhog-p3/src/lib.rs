//! `memhog-p3`: `memhog` as a `wasi:http@0.3` component. It allocates and
//! touches memory in 1 MiB chunks until allocation fails, which aborts
//! (traps), so the host's memory limit and budget can be tested on P3.

use std::hint::black_box;

use wasip3::http::types::{ErrorCode, Request, Response};

const CHUNK: usize = 1 << 20;

struct MemHog;

impl wasip3::exports::http::handler::Guest for MemHog {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
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

wasip3::http::service::export!(MemHog);
