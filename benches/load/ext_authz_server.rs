//! `ext-authz-server`: the authorization service of the ext_authz benchmark
//! (`benches/load/ext_authz.py`). A tonic `envoy.service.auth.v3.Authorization`
//! server that allows every check with one request header (`x-authz: ok`), so a
//! proxy does the whole OK path: call, answer, header mutation.
//!
//! Usage: `ext-authz-server --listen 127.0.0.1:PORT`. Prints
//! `Serving ext_authz on ADDR` on stderr once it accepts connections.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status;

struct AllowAll;

#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "x-authz".into(),
                        value: "ok".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr.parse()?,
        _ => return Err("usage: ext-authz-server --listen 127.0.0.1:PORT".into()),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("Serving ext_authz on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(AllowAll))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
