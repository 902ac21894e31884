//! `loop-p3`: `loop` as a `wasi:http@0.3` component. It spins forever inside
//! `handle`, never yielding to the host, so the host's CPU deadline (epoch
//! interruption) is what ends it, as for the P2 `loop`.

use std::hint::black_box;

use wasip3::http::types::{ErrorCode, Request, Response};

struct Loop;

impl wasip3::exports::http::handler::Guest for Loop {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let mut spins = 0u64;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless
            // and shrinking it to a bare branch the host might never see.
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

wasip3::http::service::export!(Loop);
