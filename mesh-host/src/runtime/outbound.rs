//! The one thing the runtime knows about the world outside a component: a
//! sender that takes every outbound request the component makes.

use futures::future::BoxFuture;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::shared::WorkloadId;

/// The future of an outbound request: the response head, or the `wasi:http`
/// error the component sees.
pub type OutgoingFuture = BoxFuture<'static, Result<http::Response<WasiBody>, HttpError>>;

/// Where a workload's outbound requests go. The host gives each workload one
/// (the mesh egress path, or a sender that denies everything); the runtime
/// never opens a connection itself.
pub trait OutboundSender: Send + Sync + 'static {
    /// Sends `request`, made by `workload`. Whatever is refused fails with
    /// `HTTP-request-denied` before any connection is made.
    fn send(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutgoingFuture;
}
