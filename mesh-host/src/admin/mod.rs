//! The admin endpoint, Envoy's admin surface on its own socket (loopback unless told
//! otherwise) so it is never exposed on the data-plane port: `/config_dump`, `/clusters`,
//! `/listeners`, `/server_info`, `/ready`, `/logging`, `/stats`, `/stats/prometheus`.
//! Reads answer GET; whatever changes state (`/logging`) answers POST only, as Envoy's.

mod clusters;
mod logging;
mod server_info;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use mesh_xds::bootstrap::NodeIdentity;
use mesh_xds::config::ResourceKind;
use mesh_xds::dump::{DumpError, DumpQuery};
use mesh_xds::store::ConfigStore;
use tokio::net::TcpListener;

pub use logging::{LogLevels, LoggingError};

use crate::body::{ResponseBody, full};
use crate::mesh::MeshHandler;
use crate::metrics::Metrics;

/// The mesh handler's state the admin shows, when the host runs one.
pub struct MeshView {
    /// The handler: listeners, clusters, readiness.
    pub handler: Arc<MeshHandler>,
    /// The configuration store: config dump, xDS update counts.
    pub store: Arc<ConfigStore>,
    /// Whether a control plane configures the host (readiness then waits for its first
    /// listeners and clusters).
    pub ads: bool,
}

/// Everything the admin endpoint reads and changes.
pub struct Admin {
    /// The host's counters.
    pub metrics: Arc<Metrics>,
    /// The mesh handler's state; `None` for the router handlers.
    pub mesh: Option<MeshView>,
    /// The workloads section of `/config_dump`, one JSON object per workload.
    pub workloads: Vec<serde_json::Value>,
    /// The log levels `/logging` changes.
    pub logging: LogLevels,
    /// The node the host presents to its control plane.
    pub node: NodeIdentity,
    /// When the process started, for `/server_info`'s uptime.
    pub started: SystemTime,
}

impl Admin {
    /// Whether the host serves: the first configuration applied (with a control plane: its
    /// first listeners and clusters accepted) and every listener bound.
    pub fn is_ready(&self) -> bool {
        match &self.mesh {
            None => true,
            Some(mesh) => {
                let first_config = !mesh.ads
                    || (mesh.store.has_accepted(ResourceKind::Listener)
                        && mesh.store.has_accepted(ResourceKind::Cluster));
                first_config && mesh.handler.is_serving()
            }
        }
    }
}

/// Binds the admin endpoint and serves it until the process ends.
pub async fn serve(addr: SocketAddr, admin: Arc<Admin>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = admin.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &admin)) }
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

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";
/// Prometheus text format 0.0.4, what Envoy's `/stats/prometheus` serves.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

const INDEX: &str = "admin endpoints:
  GET  /config_dump[?resource=FIELD][&mask=PATHS]
  GET  /clusters
  GET  /listeners[?format=json]
  GET  /server_info
  GET  /ready
  POST /logging[?level=LEVEL | ?paths=TARGET:LEVEL,...]
  GET  /stats
  GET  /stats/prometheus (also /metrics)
";

/// One admin answer: status, content type, body.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn ok(content_type: &'static str, body: String) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            body,
        }
    }

    fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }

    fn json(value: &serde_json::Value) -> Self {
        // A serde_json::Value always serialises.
        Self::ok(
            JSON,
            serde_json::to_string_pretty(value).unwrap_or_default(),
        )
    }
}

fn answer(request: &http::Request<Incoming>, admin: &Admin) -> http::Response<ResponseBody> {
    let query = query_pairs(request.uri().query());
    let path = request.uri().path();
    let method = request.method();
    let reply = match (path, method) {
        ("/logging", &Method::POST) => set_logging(admin, &query),
        ("/logging", _) => Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "/logging changes state: use POST\n",
        ),
        (_, &Method::GET | &Method::HEAD) => read(path, &query, admin),
        _ => Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} is read with GET\n"),
        ),
    };
    let mut response = http::Response::new(full(reply.body));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(reply.content_type),
    );
    response
}

fn read(path: &str, query: &HashMap<String, String>, admin: &Admin) -> Reply {
    match path {
        "/stats/prometheus" | "/metrics" => Reply::ok(PROMETHEUS, admin.metrics.encode()),
        "/stats" => Reply::ok(TEXT, admin.metrics.encode_plain()),
        "/ready" => {
            if admin.is_ready() {
                Reply::text(StatusCode::OK, "LIVE\n")
            } else {
                Reply::text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
            }
        }
        "/server_info" => Reply::json(&server_info::render(admin)),
        "/clusters" => Reply::ok(TEXT, clusters::render(admin)),
        "/listeners" => listeners(admin, query.get("format").map(String::as_str)),
        "/config_dump" => config_dump(admin, query),
        _ => Reply::text(StatusCode::NOT_FOUND, INDEX),
    }
}

/// Envoy's `/listeners`: `name::address` per line, or `?format=json` as
/// `envoy.admin.v3.Listeners`.
fn listeners(admin: &Admin, format: Option<&str>) -> Reply {
    let listeners = admin
        .mesh
        .as_ref()
        .map(|mesh| mesh.handler.listeners())
        .unwrap_or_default();
    if format == Some("json") {
        let statuses: Vec<serde_json::Value> = listeners
            .iter()
            .map(|(name, addr)| {
                let mut status = serde_json::json!({ "name": name });
                if let Some(addr) = addr {
                    status["local_address"] = serde_json::json!({
                        "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() }
                    });
                }
                status
            })
            .collect();
        return Reply::json(&serde_json::json!({ "listener_statuses": statuses }));
    }
    let text: String = listeners
        .iter()
        .map(|(name, addr)| match addr {
            Some(addr) => format!("{name}::{addr}\n"),
            None => format!("{name}::\n"),
        })
        .collect();
    Reply::ok(TEXT, text)
}

fn config_dump(admin: &Admin, query: &HashMap<String, String>) -> Reply {
    let Some(mesh) = &admin.mesh else {
        return Reply::json(&serde_json::json!({
            "configs": [workloads_section(&admin.workloads)]
        }));
    };
    let dump_query = DumpQuery {
        resource: query.get("resource").cloned(),
        mask: query
            .get("mask")
            .map(|mask| mask.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    match mesh
        .store
        .config_dump(&dump_query, vec![workloads_section(&admin.workloads)])
    {
        Ok(dump) => Reply::json(&dump),
        Err(error @ DumpError::ResourceNotFound(_)) => {
            Reply::text(StatusCode::NOT_FOUND, format!("{error}\n"))
        }
        Err(error) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

/// The workloads as one more entry of `configs`: a `google.protobuf.Struct`, the type Envoy's
/// JSON parser reads without knowing mesh-host, so the dump still parses as a `ConfigDump`.
fn workloads_section(workloads: &[serde_json::Value]) -> serde_json::Value {
    serde_json::json!({
        "@type": "type.googleapis.com/google.protobuf.Struct",
        "value": { "workloads": workloads }
    })
}

fn set_logging(admin: &Admin, query: &HashMap<String, String>) -> Reply {
    let directives = match (query.get("level"), query.get("paths")) {
        (Some(level), _) => admin.logging.set_all(level),
        (None, Some(paths)) => admin.logging.set_paths(paths),
        (None, None) => {
            return Reply::text(
                StatusCode::OK,
                format!("active loggers: {}\n", admin.logging.current()),
            );
        }
    };
    match directives {
        Ok(current) => Reply::text(StatusCode::OK, format!("active loggers: {current}\n")),
        Err(error) => Reply::text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    }
}

/// The query string's pairs, percent-decoded; a repeated key keeps its last value.
fn query_pairs(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_percent_decoded() {
        let pairs = query_pairs(Some(
            "resource=dynamic_active_clusters&mask=cluster.name%2Cversion_info",
        ));
        assert_eq!(pairs["resource"], "dynamic_active_clusters");
        assert_eq!(pairs["mask"], "cluster.name,version_info");
    }
}
