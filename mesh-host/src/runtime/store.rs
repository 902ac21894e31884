use std::sync::{Arc, Weak};
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use super::outbound::OutboundSender;
use crate::shared::WorkloadId;

/// Per-instance state kept in each wasmtime `Store`.
pub struct StoreState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) limits: StoreLimits,
    /// When the request the instance is handling must be abandoned; checked
    /// on every epoch tick so a guest that never yields is still stopped.
    pub(crate) deadline: Option<Instant>,
    /// The workload's `wasi:config` values.
    pub(crate) config: Arc<WasiConfigVariables>,
}

impl StoreState {
    pub(crate) fn new(
        hooks: EgressHooks,
        limits: StoreLimits,
        config: Arc<WasiConfigVariables>,
    ) -> Self {
        Self {
            config,
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks,
            limits,
            deadline: None,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The `wasi:http` hooks of a workload's stores: every outbound request a
/// component makes is handed to an [`OutboundSender`], the single
/// exit, tagged with the workload that made it. There is no direct path to a
/// socket.
pub struct EgressHooks {
    workload: WorkloadId,
    outbound: Weak<dyn OutboundSender>,
}

impl EgressHooks {
    pub(crate) fn new(workload: WorkloadId, outbound: Weak<dyn OutboundSender>) -> Self {
        Self { workload, outbound }
    }
}

impl WasiHttpHooks for EgressHooks {
    /// The default set, checked directly: the trait's default builds an `Arc`
    /// closure for every header it checks, several allocations per request.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_result: IoFuture,
    ) -> SendFuture {
        let Some(outbound) = self.outbound.upgrade() else {
            // The host is shutting down: nothing may leave any more.
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let response = outbound.send(&self.workload, request, options);
        Box::new(async move {
            let response = response.await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
