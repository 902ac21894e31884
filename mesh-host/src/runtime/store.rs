//! What each wasmtime store holds for one instance: WASI and WASI HTTP contexts, limits, the
//! request deadline, and the egress hooks through which every outbound request leaves.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Weak};

use prometheus_client::metrics::gauge::Gauge;
use std::time::Instant;

use thiserror::Error;
use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::{
    Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpCtx,
    WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::memory::{Budgets, InstanceMemory};
use super::outbound::OutboundSender;
use crate::shared::{RequestTrace, WorkloadId};

/// Raised from the epoch callback when a guest runs past its deadline.
#[derive(Debug, Error)]
#[error("request deadline exceeded")]
pub(crate) struct DeadlineTrap;

/// What every store of one workload is made from, whichever kind of
/// component it runs.
pub(crate) struct StoreSetup {
    pub(crate) workload: WorkloadId,
    pub(crate) outbound: Weak<dyn OutboundSender>,
    /// Built once per workload; every store shares it.
    pub(crate) config: Arc<WasiConfigVariables>,
    /// Largest linear memory of one instance, in bytes.
    pub(crate) memory_bytes: usize,
    /// Raised to the largest linear memory any instance reaches.
    pub(crate) memory_high_water: Gauge<u64, AtomicU64>,
    pub(crate) budgets: Budgets,
}

impl StoreSetup {
    /// A store on `engine` with the workload's limits and hooks, whose guest
    /// yields on every epoch tick and traps once `deadline` has passed.
    pub(crate) fn new_store(&self, engine: &Engine) -> Store<StoreState> {
        let state = StoreState {
            config: self.config.clone(),
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks: EgressHooks::new(self.workload.clone(), self.outbound.clone()),
            memory: InstanceMemory::new(self.memory_bytes, self.budgets.clone())
                .reporting_high_water(self.memory_high_water.clone()),
            deadline: None,
            task_traces: HashMap::new(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|context| match context.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(DeadlineTrap.into()),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        store.set_epoch_deadline(1);
        store
    }
}

/// Per-instance state kept in each wasmtime `Store`.
pub struct StoreState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) memory: InstanceMemory,
    /// When the guest must be stopped; checked on every epoch tick so a guest
    /// that never yields is still stopped.
    pub(crate) deadline: Option<Instant>,
    /// The workload's `wasi:config` values.
    pub(crate) config: Arc<WasiConfigVariables>,
    /// The trace of each request a concurrent (P3) instance has taken, by the
    /// guest task that serves it. Entries are overwritten rather than removed:
    /// a task id is reused only by a later request, which records its own, so
    /// the map stays as large as the most tasks the instance ever held at once.
    task_traces: HashMap<GuestTaskId, RequestTrace>,
}

impl StoreState {
    /// The trace of the request the instance serves, which its outbound requests join
    /// (`None`: they join none).
    pub(crate) fn serve_trace(&mut self, trace: Option<RequestTrace>) {
        self.hooks.trace = trace;
    }

    /// Records the trace of the request that guest task `task` serves on a
    /// concurrent instance (`None`: it belongs to none).
    pub(crate) fn trace_task(&mut self, task: GuestTaskId, trace: Option<RequestTrace>) {
        match trace {
            Some(trace) => self.task_traces.insert(task, trace),
            None => self.task_traces.remove(&task),
        };
    }

    /// Outbound requests from now on join the trace of the request that the
    /// root task `task` serves (`None`: they join none).
    pub(crate) fn send_for_task(&mut self, task: Option<GuestTaskId>) {
        self.hooks.trace = task.and_then(|task| self.task_traces.get(&task).cloned());
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
    /// The trace of the request being served, handed to each outbound request in its
    /// extensions (set per request on a P2 instance, per `send` call on a P3 one).
    trace: Option<RequestTrace>,
}

impl EgressHooks {
    fn new(workload: WorkloadId, outbound: Weak<dyn OutboundSender>) -> Self {
        Self {
            workload,
            outbound,
            trace: None,
        }
    }
}

impl WasiHttpHooks for EgressHooks {
    /// The default set, checked directly: the trait's default builds an `Arc`
    /// closure for every header it checks, several allocations per request.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    /// One closure for the whole process, shared: the default allocates a
    /// new one on every call.
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        static FILTER: LazyLock<ForbiddenHeaderFilter> = LazyLock::new(|| {
            Arc::new(|name| wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name))
        });
        FILTER.clone()
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_result: IoFuture,
    ) -> SendFuture {
        let Some(outbound) = self.outbound.upgrade() else {
            // The host is shutting down: nothing may leave any more.
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        if let Some(trace) = &self.trace {
            request.extensions_mut().insert(trace.clone());
        }
        let response = outbound.send(&self.workload, request, options);
        Box::new(async move {
            let response = response.await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
