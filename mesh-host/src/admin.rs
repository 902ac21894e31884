//! The admin endpoint: Prometheus metrics and readiness, on its own socket so
//! it is never exposed on the data-plane port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{ResponseBody, full};
use crate::metrics::Metrics;

/// Binds the admin endpoint and serves it until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("admin connection ended: {error}");
                }
            });
        }
    });
    Ok(local)
}

fn answer(request: &http::Request<Incoming>, metrics: &Metrics) -> http::Response<ResponseBody> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, "/ready") => (StatusCode::OK, "text/plain", "LIVE\n".to_owned()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "admin endpoints: /metrics /ready\n".to_owned(),
        ),
    };
    let mut response = http::Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
