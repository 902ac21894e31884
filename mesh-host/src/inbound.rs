//! The inbound area: every request a listener accepts runs one pipeline, whichever handler
//! serves it.
//!
//! 1. admit: the front end (`frontend`) checks the request and records its connection
//!    (`RequestMeta`);
//! 2. normalise the request as the connection manager says (`normalize_path`,
//!    `merge_slashes`, escaped slashes, header names with underscores), then select the
//!    route: the listener's route table (mesh handler) or a [`Router`] (Host-header
//!    and development handlers);
//! 3. run the listener's HTTP filters (`filters`) with the route's per-filter configuration;
//! 4. serve it: with a local workload ([`LocalWorkload`], whose own policy compiles into
//!    filters that run next), with the upstream client for a remote cluster, or with the
//!    router's own answer (direct response, redirect, no route);
//! 5. one place ([`answer`]) turns a failure into an HTTP or gRPC answer and counts it.
//!
//! [`Router`]: crate::handler::Router

mod answer;
mod local;
mod mesh;
mod normalize;
mod upstream;
mod workloads;

pub use answer::router_reply;
pub use local::{LocalWorkload, LocalWorkloadError, serve_workload};
pub use mesh::{ListenerInbound, MeshInbound};
pub use workloads::{AlreadyBound, LocalWorkloads};

/// The deadline a gRPC client asked for with `grpc-timeout`, if the request is gRPC and the
/// header is well-formed.
fn requested_grpc_timeout(head: &http::request::Parts, grpc: bool) -> Option<std::time::Duration> {
    let value = head.headers.get("grpc-timeout")?.to_str().ok()?;
    grpc.then(|| mesh_policies::limits::parse_grpc_timeout(value).ok())
        .flatten()
}
