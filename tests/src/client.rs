//! Minimal hyper clients: HTTP/1.1 and h2c with prior knowledge over a fresh
//! connection, so each test controls exactly which protocol it speaks.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// A request body for the test clients.
pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// An empty body.
pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body with fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body the test writes as it goes: each chunk sent is one DATA frame, and
/// dropping the sender ends the body.
pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, TestBody) {
    let (sender, chunks) = tokio::sync::mpsc::channel(capacity);
    let frames = futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok(http_body::Frame::data(chunk)), chunks))
    });
    (sender, http_body_util::StreamBody::new(frames).boxed())
}

/// Sends `request` over a new HTTP/1.1 connection to `addr`.
pub async fn http1(addr: SocketAddr, request: Request<TestBody>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .expect("HTTP/1.1 request")
}

/// Sends `request` over a new h2c (prior knowledge) connection to `addr`.
pub async fn h2c(addr: SocketAddr, request: Request<TestBody>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("h2c request")
}

/// GET `url` (http://host:port/path) over HTTP/1.1 and read the whole answer.
pub async fn get(url: &str) -> (StatusCode, HeaderMap, Bytes) {
    let uri: http::Uri = url.parse().expect("url");
    let authority = uri.authority().expect("authority").clone();
    let addr: SocketAddr = authority.as_str().parse().expect("socket address in url");
    let request = Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", authority.as_str())
        .body(empty())
        .expect("request");
    let response = http1(addr, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

/// Reads a whole response: status, headers, body and trailers.
pub async fn read_all(
    response: Response<Incoming>,
) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
    let status = response.status();
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    (status, headers, collected.to_bytes(), trailers)
}
