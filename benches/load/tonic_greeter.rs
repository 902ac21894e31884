//! `tonic-greeter`: the native gRPC baseline of the load harness, a tonic
//! `helloworld.Greeter` that replies like `greeter.wasm` (`Hello <name>`).
//!
//! Usage: `tonic-greeter --listen 127.0.0.1:PORT`. Prints
//! `Serving gRPC on http://ADDR/` on stderr once it accepts connections.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Code generated from `tests/protos/helloworld.proto` by `load/build.rs`.
mod helloworld {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("helloworld");
}

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// Replies `Hello <name>`, the answer `greeter.wasm` gives.
#[derive(Default)]
struct HelloGreeter;

#[tonic::async_trait]
impl Greeter for HelloGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}"),
        }))
    }
}

fn listen_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:50051".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().ok_or("--listen needs an address")?,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: tonic-greeter --listen ADDR"
                ));
            }
        }
    }
    addr.parse()
        .map_err(|err| format!("bad --listen address {addr:?}: {err}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind(listen_addr()?).await?;
    let addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    eprintln!("Serving gRPC on http://{addr}/");
    Server::builder()
        .add_service(GreeterServer::new(HelloGreeter))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
