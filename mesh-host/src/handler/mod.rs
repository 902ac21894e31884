//! The `HostHandler` contract: how a host binds sockets, learns about
//! workloads and lets their outbound requests leave; and the `Router` trait for
//! users who only want to supply the routing decisions.
//!
//! Implementations: [`NullHandler`] (serves nothing, denies everything),
//! [`RouterHandler`] with [`HostHeaderRouter`] (the canonical handler) or
//! [`DevRouter`] (always the latest workload). The mesh handler, configured over
//! xDS, implements the same trait.

mod null;
mod router_handler;
mod routers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use thiserror::Error;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

pub use crate::runtime::OutgoingFuture;
pub use crate::shared::{InvalidWorkloadId, WorkloadId};
pub use null::NullHandler;
pub use router_handler::{RouterHandler, RouterHandlerConfig};
pub use routers::{DevRouter, HostHeaderRouter};

use crate::frontend::FrontEndError;
use crate::inbound::{AlreadyBound, LocalWorkloadError};
use crate::runtime::{ComponentImage, OutboundSender, WorkloadSettings};

/// A component that has been compiled, linked and pre-instantiated, with what
/// the handler needs to serve it.
pub struct ResolvedWorkload {
    /// The workload's identity.
    pub id: WorkloadId,
    /// The pre-instantiated component.
    pub image: Arc<ComponentImage>,
    /// Reuse and limits of its instances.
    pub settings: WorkloadSettings,
    /// Host names (`Host`/`:authority` without port) the workload answers,
    /// for routers that route by host.
    pub hosts: Vec<String>,
    /// xDS clusters the workload serves (for example `inbound|8080||hello`);
    /// the mesh handler routes those clusters to it.
    pub clusters: Vec<String>,
    /// Its policy: gRPC flags, egress rules, authorization, limits.
    pub policy: Arc<mesh_policies::WorkloadPolicy>,
    /// The identity its requests to other local workloads carry as their authenticated
    /// principal (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`).
    pub principal: Arc<str>,
}

/// Errors of the handler lifecycle.
#[derive(Debug, Error)]
pub enum HostError {
    /// The front end could not bind or serve.
    #[error(transparent)]
    FrontEnd(#[from] FrontEndError),
    /// `start` was called twice.
    #[error("the handler is already started")]
    AlreadyStarted,
    /// A workload with this id is already bound.
    #[error(transparent)]
    DuplicateWorkload(#[from] AlreadyBound),
    /// A workload's policy cannot be compiled.
    #[error(transparent)]
    Policy(#[from] LocalWorkloadError),
    /// No workload with this id is bound.
    #[error("workload {0} is not bound")]
    UnknownWorkload(WorkloadId),
}

/// What a host does with HTTP: serve inbound requests to workloads and be the
/// single exit for their outbound requests.
pub trait HostHandler: Send + Sync + 'static {
    /// Binds the handler's sockets and starts serving.
    fn start(self: Arc<Self>) -> BoxFuture<'static, Result<(), HostError>>;

    /// Stops accepting, tells HTTP/2 clients to go away, lets in-flight
    /// requests finish for up to `drain`, then returns.
    fn stop(&self, drain: Duration) -> BoxFuture<'_, ()>;

    /// The addresses the handler is listening on (empty before `start`).
    fn bound_addrs(&self) -> Vec<SocketAddr>;

    /// Registers a workload whose component is ready to serve.
    fn on_workload_resolved(self: Arc<Self>, workload: ResolvedWorkload) -> Result<(), HostError>;

    /// Unregisters a workload: it receives no new requests; requests already
    /// in flight finish.
    fn on_workload_unbind(&self, id: &WorkloadId) -> Result<(), HostError>;

    /// The single exit for an outbound request made by `workload`. Whatever
    /// is refused fails with [`HttpError::HttpRequestDenied`] before any
    /// connection is made.
    fn outgoing_request(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutgoingFuture;
}

/// A handler's outbound exit is what its workloads' instances send through.
impl<H: HostHandler> OutboundSender for H {
    fn send(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutgoingFuture {
        self.outgoing_request(workload, request, options)
    }
}

/// Why no workload was chosen for a request.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RouteError {
    /// No route matches the request.
    #[error("no route for {0}")]
    NoRoute(String),
    /// A route matched but its workload is not bound.
    #[error("workload {0} is not available")]
    NoWorkload(WorkloadId),
}

/// The routing decisions of a host, without the serving machinery:
/// implement this and wrap it in a [`RouterHandler`].
pub trait Router: Send + Sync + 'static {
    /// Chooses the workload for an inbound request.
    fn route_incoming_request(
        &self,
        request: &http::request::Parts,
    ) -> Result<WorkloadId, RouteError>;

    /// Decides whether `workload` may send `request`; the default denies
    /// everything.
    fn allow_outgoing_request(
        &self,
        workload: &WorkloadId,
        request: &http::request::Parts,
    ) -> Result<(), HttpError> {
        let _ = (workload, request);
        Err(HttpError::HttpRequestDenied)
    }

    /// A workload became available.
    fn on_workload_resolved(&self, workload: &ResolvedWorkload);

    /// A workload went away.
    fn on_workload_unbind(&self, workload: &WorkloadId);
}
