//! The null handler: serves nothing and denies every outbound request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::{HostError, HostHandler, OutgoingFuture, ResolvedWorkload, WorkloadId};

/// A handler that serves nothing and denies every outbound request: for hosts
/// whose components only run background work, and as the safe default.
#[derive(Debug, Default)]
pub struct NullHandler;

impl HostHandler for NullHandler {
    fn start(self: Arc<Self>) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(async { Ok(()) })
    }

    fn stop(&self, _drain: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn bound_addrs(&self) -> Vec<SocketAddr> {
        Vec::new()
    }

    fn on_workload_resolved(self: Arc<Self>, _workload: ResolvedWorkload) -> Result<(), HostError> {
        Ok(())
    }

    fn on_workload_unbind(&self, _id: &WorkloadId) -> Result<(), HostError> {
        Ok(())
    }

    fn outgoing_request(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
    ) -> OutgoingFuture {
        tracing::info!(%workload, uri = %request.uri(), "outbound request denied: the null handler allows no egress");
        Box::pin(async { Err(HttpError::HttpRequestDenied) })
    }
}
