//! A workload: a component bound to its id with its instance pool, limits and counters; it
//! serves one request at a time per P2 instance or several per P3 instance within a deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use thiserror::Error;
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::ExpirationError;

use super::component::{ComponentImage, ComponentPre};
use super::engine::Runtime;
use super::memory::{BudgetExhausted, Budgets, MemoryBudget};
use super::outbound::OutboundSender;
use super::p2::DirectInstances;
use super::p3::ConcurrentInstances;
use super::store::{DeadlineTrap, StoreSetup};
use crate::body::HoldPermit;
use crate::metrics::WorkloadCounters;
use crate::shared::{Failure, RequestTrace, WorkloadId};

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
    /// Requests one `wasi:http@0.3` instance handles at once; more go to
    /// other instances. `wasi:http@0.2` instances handle one at a time.
    pub max_instance_concurrency: usize,
    /// The workload's share of the host's memory budget: the linear memory
    /// all its instances may hold at once, in bytes (`None`: only the host's
    /// budget applies).
    pub memory_budget_bytes: Option<u64>,
}

impl WorkloadSettings {
    /// Settings from a workload policy's limits, with default reuse.
    pub fn from_limits(limits: &mesh_policies::limits::Limits) -> Self {
        Self {
            memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            max_concurrent_requests: limits.max_concurrent_requests as usize,
            max_request_timeout: limits.max_request_timeout,
            memory_budget_bytes: limits.memory_budget_bytes,
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
            max_instance_concurrency: 16,
            memory_budget_bytes: None,
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
    /// The instance serving the request needed linear memory that the host's
    /// memory budget (or the workload's share of it) did not have left.
    #[error("workload {0} is out of memory budget")]
    MemoryBudgetExhausted(WorkloadId),
}

impl From<&ServeError> for Failure {
    fn from(error: &ServeError) -> Self {
        match error {
            ServeError::Overloaded(_) => Failure::Overloaded,
            ServeError::DeadlineExceeded(..) => Failure::DeadlineExceeded,
            ServeError::Trapped { .. } | ServeError::Instantiation { .. } => Failure::Trapped,
            ServeError::MemoryBudgetExhausted(_) => Failure::MemoryBudgetExhausted,
        }
    }
}

/// How one request failed inside an instance pool, before it is told apart
/// per workload.
#[derive(Debug)]
pub(crate) enum Failed {
    Deadline,
    MemoryBudget,
    Trapped(String),
    Instantiation(String),
}

impl Failed {
    /// Sorts a failure out. Anything that fails once the deadline has passed
    /// failed for the deadline: an epoch trap, an expiry or a guest cut off
    /// mid-call may reach the caller in any order when many requests overrun
    /// at once, and each must be answered the same way.
    pub(crate) fn classify(
        error: &wasmtime::Error,
        deadline: Instant,
        budget_refused: bool,
    ) -> Self {
        if budget_refused || error.is::<BudgetExhausted>() {
            Failed::MemoryBudget
        } else if error.is::<DeadlineTrap>()
            || error.is::<ExpirationError>()
            || Instant::now() >= deadline
        {
            Failed::Deadline
        } else {
            Failed::Trapped(format!("{error:#}"))
        }
    }

    fn into_serve_error(self, workload: &WorkloadId, timeout: Duration) -> ServeError {
        let workload = workload.clone();
        match self {
            Failed::Deadline => ServeError::DeadlineExceeded(workload, timeout),
            Failed::MemoryBudget => ServeError::MemoryBudgetExhausted(workload),
            Failed::Trapped(reason) => ServeError::Trapped { workload, reason },
            Failed::Instantiation(reason) => ServeError::Instantiation { workload, reason },
        }
    }
}

/// A component bound to a workload id: its instances (served on the direct
/// path for `wasi:http@0.2`, through the component model's concurrency for
/// `wasi:http@0.3`) and the limits of that workload.
pub struct Workload {
    id: WorkloadId,
    instances: Instances,
    counters: WorkloadCounters,
    in_flight: Arc<InFlight>,
}

enum Instances {
    Direct(DirectInstances),
    Concurrent(ConcurrentInstances),
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
        let setup = StoreSetup {
            workload: id.clone(),
            outbound,
            config: Arc::new(settings.config.iter().collect::<WasiConfigVariables>()),
            memory_bytes: settings.memory_bytes,
            memory_high_water: counters.memory_high_water_bytes.clone(),
            budgets: Budgets {
                host: runtime.memory_budget().clone(),
                workload: settings
                    .memory_budget_bytes
                    .map(|limit| Arc::new(MemoryBudget::new(limit))),
            },
        };
        let in_flight = Arc::new(InFlight::new(settings.max_concurrent_requests));
        let instances = match image.pre() {
            ComponentPre::P2(pre) => Instances::Direct(DirectInstances::new(
                runtime.clone(),
                pre.clone(),
                setup,
                &settings,
                &counters,
            )),
            ComponentPre::P3(pre) => Instances::Concurrent(ConcurrentInstances::new(
                runtime.clone(),
                pre.clone(),
                setup,
                settings,
                &counters,
            )),
        };
        Self {
            id,
            instances,
            counters,
            in_flight,
        }
    }

    /// The workload's id.
    pub fn id(&self) -> &WorkloadId {
        &self.id
    }

    /// The `wasi:http` world the component exports (a span attribute).
    pub fn kind(&self) -> &'static str {
        match &self.instances {
            Instances::Direct(_) => "wasi:http/incoming-handler@0.2",
            Instances::Concurrent(_) => "wasi:http/handler@0.3",
        }
    }

    /// The workload's counters.
    pub fn counters(&self) -> &WorkloadCounters {
        &self.counters
    }

    /// Hands `request` to an instance and waits for its response head; the
    /// body streams afterwards. `timeout` is the request's deadline; `trace`, the
    /// trace the component's outbound requests join.
    pub async fn serve(
        &self,
        request: http::Request<WasiBody>,
        timeout: Duration,
        trace: Option<RequestTrace>,
    ) -> Result<http::Response<WasiBody>, ServeError> {
        let permit = InFlight::enter(&self.in_flight)
            .ok_or_else(|| ServeError::Overloaded(self.id.clone()))?;
        self.counters.requests.inc();
        let deadline = Instant::now() + timeout;
        // P3's future (wasmtime's `ProxyHandler`) is boxed: inline, its size would be carried
        // by every request's pipeline future, P2's included, and copied with it into the box
        // each request starts in.
        let served = match &self.instances {
            Instances::Direct(instances) => instances.serve(request, deadline, trace).await,
            Instances::Concurrent(instances) => {
                Box::pin(instances.serve(request, deadline, trace)).await
            }
        };
        match served {
            Ok(response) => Ok(response.map(|body| HoldPermit::new(body, permit).boxed_unsync())),
            Err(failed) => {
                match &failed {
                    Failed::Deadline => self.counters.deadline_interruptions.inc(),
                    Failed::Trapped(_) => self.counters.traps.inc(),
                    Failed::MemoryBudget | Failed::Instantiation(_) => 0,
                };
                Err(failed.into_serve_error(&self.id, timeout))
            }
        }
    }
}

/// The requests of a workload in flight, counted without a lock: taking and
/// giving back a slot is one atomic operation each.
struct InFlight {
    count: AtomicUsize,
    limit: usize,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            limit,
        }
    }

    fn enter(this: &Arc<Self>) -> Option<InFlightPermit> {
        this.count
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |count| {
                (count < this.limit).then_some(count + 1)
            })
            .ok()
            .map(|_| InFlightPermit(this.clone()))
    }
}

/// One request's slot, held until its response body is done.
struct InFlightPermit(Arc<InFlight>);

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_refuses_past_its_limit_and_frees_a_slot_when_a_permit_drops() {
        let in_flight = Arc::new(InFlight::new(2));
        let first = InFlight::enter(&in_flight).expect("first");
        let _second = InFlight::enter(&in_flight).expect("second");
        assert!(InFlight::enter(&in_flight).is_none());
        drop(first);
        assert!(InFlight::enter(&in_flight).is_some());
    }

    #[test]
    fn any_failure_after_the_deadline_is_the_deadline() {
        let past = Instant::now() - Duration::from_millis(1);
        let trap = wasmtime::format_err!("wasm trap: unreachable");
        assert!(matches!(
            Failed::classify(&trap, past, false),
            Failed::Deadline
        ));
        let future = Instant::now() + Duration::from_secs(60);
        assert!(matches!(
            Failed::classify(&trap, future, false),
            Failed::Trapped(_)
        ));
        assert!(matches!(
            Failed::classify(&DeadlineTrap.into(), future, false),
            Failed::Deadline
        ));
        assert!(matches!(
            Failed::classify(&trap, past, true),
            Failed::MemoryBudget
        ));
    }
}
