//! A native upstream server for egress tests: HTTP/1.1 and h2c on one
//! port, answering every request with its own name and what it received,
//! and counting the connections and requests it saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How an upstream answers: after `delay`, with `status` (the body and
/// headers are the same as a healthy upstream's).
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// The response status.
    pub status: http::StatusCode,
    /// Waited before answering.
    pub delay: std::time::Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            status: http::StatusCode::OK,
            delay: std::time::Duration::ZERO,
        }
    }
}

/// A running upstream. Dropping it (or [`Upstream::stop`]) closes the
/// listener and every connection.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    name: String,
    counters: Arc<Counters>,
    tasks: Arc<std::sync::Mutex<JoinSet<()>>>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
}

impl Upstream {
    /// Starts an upstream named `name` on a free loopback port.
    pub async fn start(name: &str) -> Self {
        Self::start_behaving(name, Behaviour::default()).await
    }

    /// Starts an upstream named `name` that answers as `behaviour` says (a
    /// failing or slow endpoint).
    pub async fn start_behaving(name: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(name, listener, behaviour)
    }

    /// Starts an upstream named `name` on `addr` (for restarting on a known
    /// port).
    pub async fn start_on(name: &str, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        Self::serve(name, listener, Behaviour::default())
    }

    fn serve(name: &str, listener: TcpListener, behaviour: Behaviour) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let counters = Arc::new(Counters::default());
        let tasks = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let accept = {
            let name = name.to_owned();
            let counters = counters.clone();
            let tasks = tasks.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    counters.connections.fetch_add(1, Ordering::SeqCst);
                    let name = name.clone();
                    let counters = counters.clone();
                    let connection = async move {
                        let service = service_fn(move |request| {
                            counters.requests.fetch_add(1, Ordering::SeqCst);
                            answer(name.clone(), behaviour, request)
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    };
                    tasks.lock().expect("tasks").spawn(connection);
                }
            }
        };
        tasks.lock().expect("tasks").spawn(accept);
        Self {
            addr,
            name: name.to_owned(),
            counters,
            tasks,
        }
    }

    /// Its name, as it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection.
    pub fn stop(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `200` (or the behaviour's status, after its delay), headers `x-upstream-name`, `x-upstream-version`,
/// `x-upstream-authority` (the `Host` header or `:authority`) and
/// `x-upstream-path`; body `<name> <method> <path>` followed by the request
/// body; trailer `x-upstream-trailer: done` when the request asked for
/// trailers (`te: trailers`).
async fn answer(
    name: String,
    behaviour: Behaviour,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.to_string())
        .unwrap_or_default();
    let version = format!("{:?}", request.version());
    let method = request.method().to_string();
    let wants_trailers = request
        .headers()
        .get(http::header::TE)
        .is_some_and(|te| te == "trailers");
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut text = format!("{name} {method} {path}").into_bytes();
    text.extend_from_slice(&body);
    let body: http_body_util::combinators::BoxBody<Bytes, Infallible> = if wants_trailers {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-upstream-trailer", http::HeaderValue::from_static("done"));
        let frames = vec![
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(text))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed()
    } else {
        Full::new(Bytes::from(text)).boxed()
    };
    tokio::time::sleep(behaviour.delay).await;
    let response = hyper::Response::builder()
        .status(behaviour.status)
        .header("x-upstream-name", name)
        .header("x-upstream-version", version)
        .header("x-upstream-authority", authority)
        .header("x-upstream-path", path)
        .body(body)
        .expect("static response");
    Ok(response)
}
