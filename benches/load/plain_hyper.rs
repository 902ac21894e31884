//! `plain-hyper`: the native baseline of the load harness. A hyper 1 server
//! (hyper-util auto builder: HTTP/1.1 and h2c on one port, tokio multi-thread)
//! that answers like `hello.wasm` (`200 text/plain`, `Hello from mesh-host!\n`)
//! and, for `POST`/`PUT`, streams the request body back like `echo.wasm`.
//!
//! Usage: `plain-hyper --listen 127.0.0.1:PORT`. Prints
//! `Serving HTTP on http://ADDR/` on stderr once it accepts connections.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The body `hello.wasm` sends, byte for byte.
const GREETING: &[u8] = b"Hello from mesh-host!\n";

type Body = BoxBody<Bytes, hyper::Error>;

async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut builder = Response::builder().status(200);
    let body = if matches!(*request.method(), Method::POST | Method::PUT) {
        if let Some(kind) = request.headers().get(header::CONTENT_TYPE) {
            builder = builder.header(header::CONTENT_TYPE, kind);
        }
        request.into_body().boxed()
    } else {
        builder = builder.header(header::CONTENT_TYPE, "text/plain");
        Full::new(Bytes::from_static(GREETING))
            .map_err(|never| match never {})
            .boxed()
    };
    // A builder with only a status and a valid header cannot fail.
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| Response::new(empty())))
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn listen_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8080".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().ok_or("--listen needs an address")?,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: plain-hyper --listen ADDR"
                ));
            }
        }
    }
    addr.parse()
        .map_err(|err| format!("bad --listen address {addr:?}: {err}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen_addr()?).await?;
    eprintln!("Serving HTTP on http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // Nagle would add up to 40 ms to small pipelined writes.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
            drop(served);
        });
    }
}
