//! The workload's `grpc.serve` flag as a filter: a component that does not serve gRPC never
//! sees a gRPC request; the client gets a gRPC answer (`PERMISSION_DENIED`), not an HTML page.

use super::chain::FilterRequest;
use crate::shared::Failure;

/// Refuses gRPC requests unless the workload serves gRPC.
pub(super) struct GrpcServe {
    serve: bool,
}

impl GrpcServe {
    pub(super) fn new(serve: bool) -> GrpcServe {
        GrpcServe { serve }
    }

    pub(super) fn decode(&self, request: &FilterRequest<'_>) -> Result<(), Failure> {
        if request.meta.grpc && !self.serve {
            tracing::info!(uri = %request.head.uri, "gRPC request to a workload that does not serve gRPC");
            return Err(Failure::Denied);
        }
        Ok(())
    }
}
