//! The concurrent path for `wasi:http@0.3` components: wasmtime-wasi-http's
//! `ProxyHandler` runs several requests at once on one instance (up to the
//! workload's per-instance concurrency) and starts more instances as
//! requests queue up.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, Empty, StreamBody};
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::engine::{EPOCH_TICK, Runtime};
use super::memory::BudgetExhausted;
use super::store::{StoreSetup, StoreState};
use super::workload::{Failed, WorkloadSettings};
use crate::metrics::WorkloadCounters;
use crate::shared::{RequestTrace, WorkloadId};

/// How long after a request's deadline its instance's guest is trapped. The
/// caller has already been answered at the deadline itself; the grace lets
/// that answer win the race against the trap.
const KILL_GRACE: Duration = Duration::from_millis(5 * EPOCH_TICK.as_millis() as u64);

/// How much later than the trap the instance-level backstop fires.
const BACKSTOP_MARGIN: Duration = Duration::from_secs(1);

/// The instances of one `wasi:http@0.3` workload.
pub(super) struct ConcurrentInstances {
    handler: ProxyHandler<Instances>,
}

impl ConcurrentInstances {
    pub(super) fn new(
        runtime: Runtime,
        pre: ServicePre<StoreState>,
        setup: StoreSetup,
        settings: WorkloadSettings,
        counters: &WorkloadCounters,
    ) -> Self {
        Self {
            handler: ProxyHandler::new(Instances {
                _runtime: runtime,
                engine: pre.instance_pre().engine().clone(),
                pre: ProxyPre::P3(pre),
                setup,
                settings,
                instantiations: counters.instantiations.clone(),
                reuses: counters.reuses.clone(),
            }),
        }
    }

    /// Queues `request` for an instance and waits for its response head.
    pub(super) async fn serve(
        &self,
        request: http::Request<WasiBody>,
        deadline: Instant,
        trace: Option<RequestTrace>,
    ) -> Result<http::Response<WasiBody>, Failed> {
        let instance = Arc::new(OnceLock::new());
        let data = RequestData {
            deadline,
            instance: instance.clone(),
            trace,
        };
        let handled = tokio::time::timeout_at(deadline.into(), async {
            let response = self.handler.handle(data, request).await?;
            Ok::<_, wasmtime::Error>(settle_trailers_only(response).await)
        })
        .await;
        match handled {
            Err(_) => Err(Failed::Deadline),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                if let Some(instantiation) = error.downcast_ref::<InstantiationError<RequestData>>()
                {
                    return Err(if instantiation.error.is::<BudgetExhausted>() {
                        Failed::MemoryBudget
                    } else {
                        Failed::Instantiation(format!("{:#}", instantiation.error))
                    });
                }
                // An instance that traps fails every request it holds, and
                // the error each caller sees may be a generic one: the
                // instance's own record says whether memory was the reason.
                let refused = instance
                    .get()
                    .is_some_and(|refused: &Arc<AtomicBool>| refused.load(Ordering::Relaxed));
                Err(Failed::classify(&error, deadline, refused))
            }
        }
    }
}

/// A gRPC response whose head already carries `grpc-status` is trailers-only:
/// gRPC clients need it to end with the head (HTTP/2 END_STREAM on HEADERS).
/// A P3 guest's body stays open until its trailers future resolves, which
/// hyper would send as a separate, empty DATA frame; so such a head waits for
/// the body's end and goes out with an empty one. Only a guest that broke
/// the rule and wrote data after such a head still gets it through.
async fn settle_trailers_only(response: http::Response<WasiBody>) -> http::Response<WasiBody> {
    if !response.headers().contains_key("grpc-status") {
        return response;
    }
    let (head, mut body) = response.into_parts();
    let body = match body.frame().await {
        None => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        Some(first) => {
            let rest = BodyStream::new(body);
            StreamBody::new(futures::stream::iter([first]).chain(rest)).boxed_unsync()
        }
    };
    http::Response::from_parts(head, body)
}

/// What a request carries to the instance that takes it.
struct RequestData {
    deadline: Instant,
    /// Filled with the instance's budget flag once an instance takes the
    /// request.
    instance: Arc<OnceLock<Arc<AtomicBool>>>,
    /// The trace the request's outbound requests join.
    trace: Option<RequestTrace>,
}

struct Instances {
    // The whole runtime, not just the engine: its epoch ticker must outlive
    // every store, or dropping a store whose guest is mid-loop never ends.
    _runtime: Runtime,
    engine: Engine,
    pre: ProxyPre<StoreState>,
    setup: StoreSetup,
    settings: WorkloadSettings,
    instantiations: Counter,
    reuses: Counter,
}

impl HandlerState for Instances {
    type StoreData = StoreState;
    type WorkerExpiration = InstanceExpiration;
    type WorkerState = InstanceReuse;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<StoreState, InstanceExpiration, InstanceReuse>> {
        self.instantiations.inc();
        let mut store = self.setup.new_store(&self.engine);
        let proxy = match self.pre.instantiate_async(&mut store).await {
            Ok(proxy) => proxy,
            Err(error) => {
                let refused = store.data().memory.budget_refused();
                return Err(if refused.load(Ordering::Relaxed) {
                    wasmtime::Error::from(BudgetExhausted)
                } else {
                    error
                });
            }
        };
        // A backstop only: the epoch trap ends a runaway guest shortly after
        // its deadline. Expiring the instance first would drop a store whose
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
                workload: self.setup.workload.clone(),
                started: AtomicUsize::new(0),
                reuses: self.reuses.clone(),
                max_reuse: self.settings.max_instance_reuse.max(1),
                max_concurrency: self.settings.max_instance_concurrency.max(1),
            },
        })
    }
}

struct InstanceReuse {
    workload: WorkloadId,
    /// Requests this instance has taken.
    started: AtomicUsize,
    reuses: Counter,
    max_reuse: usize,
    max_concurrency: usize,
}

impl WorkerState for InstanceReuse {
    type StoreData = StoreState;
    type RequestData = RequestData;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, StoreState>,
        request: RequestData,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        if self.started.fetch_add(1, Ordering::Relaxed) > 0 {
            self.reuses.inc();
        }
        let state = store.data_mut();
        // The instance's guest runs for every request it holds: it may be
        // stopped only once the last of their deadlines has passed.
        let kill_at = request.deadline + KILL_GRACE;
        state.deadline = Some(state.deadline.map_or(kill_at, |at| at.max(kill_at)));
        let _ = request.instance.set(state.memory.budget_refused().clone());
        state.trace_task(task, request.trace);
        Box::pin(tokio::time::sleep_until(request.deadline.into()))
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
