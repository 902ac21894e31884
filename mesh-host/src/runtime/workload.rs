use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::component::ComponentImage;
use super::engine::{EPOCH_TICK, Runtime};
use super::outbound::OutboundSender;
use super::store::{EgressHooks, StoreState};
use crate::body::HoldPermit;
use crate::metrics::WorkloadCounters;
use crate::shared::{Failure, WorkloadId};

/// How long after a request's deadline its instance is forcibly stopped. The
/// caller has already been answered at the deadline itself; the grace only
/// guarantees that answer wins the race against the trap.
const KILL_GRACE: Duration = Duration::from_millis(5 * EPOCH_TICK.as_millis() as u64);

/// How much later than the trap the instance-level backstop fires.
const BACKSTOP_MARGIN: Duration = Duration::from_secs(1);

/// Limits and reuse settings of one workload.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// How many requests one instance serves before it is replaced.
    pub max_instance_reuse: usize,
    /// How long an idle instance is kept for reuse.
    pub idle_instance_timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: usize,
    /// Requests in flight at once (including streaming responses); more are
    /// refused as overloaded.
    pub max_concurrent_requests: usize,
    /// The longest deadline a request may be given; it bounds how long a
    /// busy instance is kept at all.
    pub max_request_timeout: Duration,
    /// The values the component reads through `wasi:config/store`.
    pub config: Arc<BTreeMap<String, String>>,
}

impl WorkloadSettings {
    /// Settings from a workload policy's limits, with default reuse.
    pub fn from_limits(limits: &mesh_policies::limits::Limits) -> Self {
        Self {
            memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            max_concurrent_requests: limits.max_concurrent_requests as usize,
            max_request_timeout: limits.max_request_timeout,
            ..Self::default()
        }
    }
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            max_instance_reuse: 1024,
            idle_instance_timeout: Duration::from_secs(10),
            memory_bytes: 128 * 1024 * 1024,
            max_concurrent_requests: 1000,
            max_request_timeout: Duration::from_secs(300),
            config: Arc::default(),
        }
    }
}

/// Why a workload failed a request (the component did not produce a response).
#[derive(Debug, Error)]
pub enum ServeError {
    /// The workload already has its maximum number of requests in flight.
    #[error("workload {0} is overloaded")]
    Overloaded(WorkloadId),
    /// The component did not answer before the request's deadline.
    #[error("workload {0} did not answer within {1:?}")]
    DeadlineExceeded(WorkloadId, Duration),
    /// The component trapped (or exceeded its memory) before answering.
    #[error("workload {workload} failed: {reason}")]
    Trapped {
        /// The failing workload.
        workload: WorkloadId,
        /// wasmtime's account of the failure.
        reason: String,
    },
    /// No instance could be created.
    #[error("workload {workload} could not be instantiated: {reason}")]
    Instantiation {
        /// The failing workload.
        workload: WorkloadId,
        /// wasmtime's account of the failure.
        reason: String,
    },
}

/// A component bound to a workload id: it owns the instance pool
/// (`ProxyHandler`) and the limits of that workload.
pub struct Workload {
    id: WorkloadId,
    proxy: ProxyHandler<WorkloadState>,
    counters: WorkloadCounters,
    in_flight: Arc<Semaphore>,
}

impl Workload {
    /// Binds `image` to `id`. Outbound requests of its instances are handed
    /// to `outbound`; once it is gone they are denied.
    pub fn new(
        runtime: &Runtime,
        id: WorkloadId,
        image: Arc<ComponentImage>,
        outbound: Weak<dyn OutboundSender>,
        settings: WorkloadSettings,
        counters: WorkloadCounters,
    ) -> Self {
        let in_flight = Arc::new(Semaphore::new(settings.max_concurrent_requests));
        let config = Arc::new(settings.config.iter().collect::<WasiConfigVariables>());
        let proxy = ProxyHandler::new(WorkloadState {
            id: id.clone(),
            runtime: runtime.clone(),
            image,
            outbound,
            config,
            settings,
            instantiations: counters.instantiations.clone(),
        });
        Self {
            id,
            proxy,
            counters,
            in_flight,
        }
    }

    /// The workload's id.
    pub fn id(&self) -> &WorkloadId {
        &self.id
    }

    /// The workload's counters.
    pub fn counters(&self) -> &WorkloadCounters {
        &self.counters
    }

    /// Hands `request` to an instance and waits for its response head; the
    /// body streams afterwards. `timeout` is the request's deadline.
    pub async fn serve(
        &self,
        request: http::Request<WasiBody>,
        timeout: Duration,
    ) -> Result<http::Response<WasiBody>, ServeError> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServeError::Overloaded(self.id.clone()))?;
        self.counters.requests.inc();
        let deadline = Instant::now() + timeout;
        let handled = tokio::time::timeout_at(
            deadline.into(),
            self.proxy.handle(RequestDeadline(deadline), request),
        )
        .await;
        match handled {
            Err(_) => Err(ServeError::DeadlineExceeded(self.id.clone(), timeout)),
            Ok(Ok(response)) => Ok(response.map(|body| hold(body, permit))),
            Ok(Err(error)) => Err(self.classify(error, timeout)),
        }
    }

    fn classify(&self, error: wasmtime::Error, timeout: Duration) -> ServeError {
        let workload = self.id.clone();
        if error.is::<ExpirationError>() || error.is::<DeadlineTrap>() {
            return ServeError::DeadlineExceeded(workload, timeout);
        }
        if let Some(instantiation) = error.downcast_ref::<InstantiationError<RequestDeadline>>() {
            return ServeError::Instantiation {
                workload,
                reason: format!("{:#}", instantiation.error),
            };
        }
        ServeError::Trapped {
            workload,
            reason: format!("{error:#}"),
        }
    }
}

impl From<&ServeError> for Failure {
    fn from(error: &ServeError) -> Self {
        match error {
            ServeError::Overloaded(_) => Failure::Overloaded,
            ServeError::DeadlineExceeded(..) => Failure::DeadlineExceeded,
            ServeError::Trapped { .. } | ServeError::Instantiation { .. } => Failure::Trapped,
        }
    }
}

fn hold(body: WasiBody, permit: OwnedSemaphorePermit) -> WasiBody {
    HoldPermit::new(body, permit).boxed_unsync()
}

/// The instant by which a request must be answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestDeadline(Instant);

/// Raised from the epoch callback when a guest runs past its deadline.
#[derive(Debug, Error)]
#[error("request deadline exceeded")]
struct DeadlineTrap;

struct WorkloadState {
    id: WorkloadId,
    // The whole runtime, not just the engine: its epoch ticker must outlive
    // every store, or dropping a store whose guest is mid-loop never ends.
    runtime: Runtime,
    image: Arc<ComponentImage>,
    outbound: Weak<dyn OutboundSender>,
    // Built once per workload; every store shares it.
    config: Arc<WasiConfigVariables>,
    settings: WorkloadSettings,
    instantiations: prometheus_client::metrics::counter::Counter,
}

impl HandlerState for WorkloadState {
    type StoreData = StoreState;
    type WorkerExpiration = InstanceExpiration;
    type WorkerState = InstanceReuse;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<StoreState, InstanceExpiration, InstanceReuse>> {
        self.instantiations.inc();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.settings.memory_bytes)
            .build();
        let hooks = EgressHooks::new(self.id.clone(), self.outbound.clone());
        let mut store = Store::new(
            self.runtime.engine(),
            StoreState::new(hooks, limits, self.config.clone()),
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|context| match context.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(DeadlineTrap.into()),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        store.set_epoch_deadline(1);
        let proxy = self.image.pre().instantiate_async(&mut store).await?;
        // A backstop only: the epoch trap ends a runaway request at its own
        // deadline. Expiring the instance first would drop a store whose
        // guest is suspended mid-loop, which must not race the trap.
        let busy_limit = self.settings.max_request_timeout + KILL_GRACE + BACKSTOP_MARGIN;
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: InstanceExpiration {
                idle: self.settings.idle_instance_timeout,
                busy: busy_limit,
                sleep: tokio::time::sleep(Duration::MAX),
            },
            state: InstanceReuse {
                workload: self.id.clone(),
                max_reuse: self.settings.max_instance_reuse,
            },
        })
    }
}

struct InstanceReuse {
    workload: WorkloadId,
    max_reuse: usize,
}

impl WorkerState for InstanceReuse {
    type StoreData = StoreState;
    type RequestData = RequestDeadline;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        // A wasi:http@0.2 instance handles one request at a time.
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= 1 {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, StoreState>,
        RequestDeadline(deadline): RequestDeadline,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let kill_at = deadline + KILL_GRACE;
        store.data_mut().deadline = Some(kill_at);
        Box::pin(tokio::time::sleep_until(kill_at.into()))
    }

    fn drop(&self, store: Store<StoreState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::debug!(workload = %self.workload, "instance discarded: {error:#}");
        }
        drop(store);
    }
}

pin_project! {
    /// Ends an instance that stayed idle too long, or busy past the longest
    /// deadline any request may have.
    struct InstanceExpiration {
        idle: Duration,
        busy: Duration,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl WorkerExpiration for InstanceExpiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        let mut this = self.project();
        let limit = match status {
            WorkerStatus::Idle => *this.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => *this.busy,
        };
        let Some(deadline) = since.checked_add(limit) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from(deadline);
        if this.sleep.deadline() != deadline {
            this.sleep.as_mut().reset(deadline);
        }
        this.sleep.poll(cx)
    }
}
