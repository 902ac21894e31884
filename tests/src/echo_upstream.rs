//! Native HTTP/1.1 and h2c upstreams that say which cluster they are and echo the
//! request they received, so a test can see what a proxy (Envoy or
//! mesh-host) forwarded: the cluster it picked, the path after rewrites, the
//! `Host` after `host_rewrite_literal` and the headers after mutations.
//!
//! Every answer is `200` with a JSON body ([`Echo`]) and the response headers
//! [`CLUSTER_HEADER`] and [`SECRET_HEADER`], which route configurations can
//! overwrite or remove on the way back.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Response header naming the cluster that answered.
pub const CLUSTER_HEADER: &str = "x-upstream";

/// Response header every echo answer carries, for `response_headers_to_remove`.
pub const SECRET_HEADER: &str = "x-upstream-secret";

/// The value of [`SECRET_HEADER`].
pub const SECRET_VALUE: &str = "from-upstream";

/// One echo server on 127.0.0.1, standing for one cluster; stops on drop.
pub struct EchoUpstream {
    /// The cluster it answers as.
    pub cluster: String,
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoUpstream {
    /// Binds a free loopback port and serves HTTP/1.1 (keep-alive) and h2c
    /// (prior knowledge) on it, answering every request as `cluster`.
    pub async fn start(cluster: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let name = cluster.to_owned();
        let task = tokio::spawn(async move {
            // Accept errors (e.g. too many open files) end this upstream only;
            // the test then sees a 503 from the proxy and reports the case.
            while let Ok((stream, _)) = listener.accept().await {
                let name = name.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let name = name.clone();
                        async move {
                            // The body is read before the answer, as a real service does:
                            // answering first lets the connection close while the proxy is
                            // still writing the body, a race these tests are not about.
                            let (head, body) = request.into_parts();
                            let _ = body.collect().await;
                            Ok::<_, Infallible>(answer(&name, &head))
                        }
                    });
                    // A peer closing mid-request is not this server's problem.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            cluster: cluster.to_owned(),
            addr,
            task,
        })
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(cluster: &str, request: &http::request::Parts) -> Response<Full<Bytes>> {
    let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let host = request
        .headers
        .get(header::HOST)
        .map(text)
        .or_else(|| request.uri.authority().map(|a| a.as_str().to_owned()));
    let headers: Vec<Value> = request
        .headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), text(value)]))
        .collect();
    let path = request.uri.path_and_query().map_or_else(
        || request.uri.path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let body = json!({
        "cluster": cluster,
        "method": request.method.as_str(),
        "path": path,
        "host": host,
        "headers": headers,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(cluster) {
        headers.insert(CLUSTER_HEADER, value);
    }
    headers.insert(SECRET_HEADER, HeaderValue::from_static(SECRET_VALUE));
    response
}

/// What an echo upstream received, decoded from its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    /// The cluster that answered.
    pub cluster: String,
    /// The request method.
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// The `Host` header (or the request target's authority), if any.
    pub host: Option<String>,
    /// Every request header in the order received (names lower-case;
    /// a repeated header appears once per line).
    pub headers: Vec<(String, String)>,
}

impl Echo {
    /// Decodes an echo upstream's JSON body; `None` when `body` is not one
    /// (the proxy answered by itself, or something else did).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let string = |key: &str| value.get(key)?.as_str().map(str::to_owned);
        let headers = value
            .get("headers")?
            .as_array()?
            .iter()
            .map(|pair| {
                let name = pair.get(0)?.as_str()?;
                let value = pair.get(1)?.as_str()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            cluster: string("cluster")?,
            method: string("method")?,
            path: string("path")?,
            host: string("host"),
            headers,
        })
    }

    /// All values of the request header `name`, joined with `,` in the order
    /// received (how a repeated header reads as one); `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_body_round_trips_and_anything_else_is_none() {
        let body = json!({
            "cluster": "a", "method": "GET", "path": "/p?q", "host": "h",
            "headers": [["x-one", "1"], ["x-one", "2"], ["host", "h"]],
        })
        .to_string();
        let echo = Echo::parse(body.as_bytes()).expect("an echo body");
        assert_eq!(echo.cluster, "a");
        assert_eq!(echo.path, "/p?q");
        assert_eq!(echo.host.as_deref(), Some("h"));
        assert_eq!(echo.header("X-One").as_deref(), Some("1,2"));
        assert_eq!(echo.header("x-two"), None);
        assert_eq!(Echo::parse(b"no route"), None);
        assert_eq!(Echo::parse(br#"{"cluster": "a"}"#), None);
    }
}
