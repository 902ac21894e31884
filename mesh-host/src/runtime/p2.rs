//! The direct path for `wasi:http@0.2` components: a pool of idle instances
//! on an engine without the component model's concurrency, and one plain
//! `call_handle` per request, driven by the caller's own task until the
//! response head is set. Only a guest still writing its body after that
//! moves to a task of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::engine::Runtime;
use super::memory::ReclaimIdle;
use super::store::{StoreSetup, StoreState};
use super::workload::{Failed, WorkloadSettings};
use crate::metrics::WorkloadCounters;
use crate::shared::RequestTrace;

type Response = http::Response<WasiBody>;

/// The instances of one `wasi:http@0.2` workload.
pub(super) struct DirectInstances {
    pool: Arc<Pool>,
}

struct Pool {
    // The whole runtime, not just the engine: its epoch ticker must outlive
    // every store, or dropping a store whose guest is mid-loop never ends.
    _runtime: Runtime,
    pre: ProxyPre<StoreState>,
    setup: StoreSetup,
    max_reuse: usize,
    idle_timeout: Duration,
    /// Most recently used last; expired ones therefore lead.
    idle: Mutex<Vec<Idle>>,
    instantiations: Counter,
    reuses: Counter,
}

struct Instance {
    store: Store<StoreState>,
    proxy: Proxy,
    served: usize,
}

struct Idle {
    instance: Instance,
    since: Instant,
}

/// How the guest's call ended: `Ok` when it returned (the instance went back
/// to the pool or was retired).
type CallEnd = Result<(), Failed>;

impl DirectInstances {
    pub(super) fn new(
        runtime: Runtime,
        pre: ProxyPre<StoreState>,
        setup: StoreSetup,
        settings: &WorkloadSettings,
        counters: &WorkloadCounters,
    ) -> Self {
        let pool = Arc::new(Pool {
            _runtime: runtime,
            pre,
            setup,
            max_reuse: settings.max_instance_reuse.max(1),
            idle_timeout: settings.idle_instance_timeout,
            idle: Mutex::new(Vec::new()),
            instantiations: counters.instantiations.clone(),
            reuses: counters.reuses.clone(),
        });
        let reclaim: Arc<dyn ReclaimIdle> = pool.clone();
        pool.setup.budgets.register_idle(Arc::downgrade(&reclaim));
        spawn_idle_sweeper(Arc::downgrade(&pool));
        Self { pool }
    }

    /// Serves `request` on an idle instance (or a new one) and returns once
    /// the guest has set the response head.
    pub(super) async fn serve(
        &self,
        request: http::Request<WasiBody>,
        deadline: Instant,
        trace: Option<RequestTrace>,
    ) -> Result<Response, Failed> {
        tokio::time::timeout_at(deadline.into(), self.call(request, deadline, trace))
            .await
            // Dropping the call stops the guest where it was suspended; its
            // instance is discarded with it.
            .unwrap_or(Err(Failed::Deadline))
    }

    async fn call(
        &self,
        request: http::Request<WasiBody>,
        deadline: Instant,
        trace: Option<RequestTrace>,
    ) -> Result<Response, Failed> {
        let mut instance = match self.pool.take_idle() {
            Some(instance) => {
                self.pool.reuses.inc();
                instance
            }
            // Boxed: instantiation is rare, and its future is large.
            None => Box::pin(self.pool.instantiate(deadline)).await?,
        };
        let (head_tx, mut head) = oneshot::channel();
        let resources = {
            let mut http = instance.store.data_mut().http();
            http.new_incoming_request(Scheme::Http, request)
                .and_then(|request| Ok((request, http.new_response_outparam(head_tx)?)))
        };
        let (request, outparam) = match resources {
            Ok(resources) => resources,
            Err(error) => {
                // The request never reached the guest: its instance is as good as before.
                self.pool.keep(instance);
                return Err(Failed::classify(&error, deadline, false));
            }
        };
        instance.store.data_mut().deadline = Some(deadline);
        // One request at a time per instance: whatever it sends belongs to this request.
        instance.store.data_mut().serve_trace(trace);
        let pool = self.pool.clone();
        let mut call: Pin<Box<dyn Future<Output = CallEnd> + Send>> = Box::pin(async move {
            let result = instance
                .proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut instance.store, request, outparam)
                .await;
            pool.finish(instance, result)
        });

        let mut head_closed = false;
        let first = std::future::poll_fn(|cx| {
            if let Poll::Ready(end) = call.as_mut().poll(cx) {
                return Poll::Ready(Err(end));
            }
            if !head_closed {
                match Pin::new(&mut head).poll(cx) {
                    Poll::Ready(Ok(head)) => return Poll::Ready(Ok(head)),
                    // The guest dropped its outparam unset: only the end of
                    // the call can say why.
                    Poll::Ready(Err(_)) => head_closed = true,
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await;
        match first {
            Ok(head) => {
                // The guest is still running (writing its body, or finishing
                // up after an error response): let it finish on its own task.
                tokio::spawn(call);
                response_or_failure(head)
            }
            Err(end) => match head.try_recv() {
                Ok(head) => response_or_failure(head),
                Err(_) => {
                    end?;
                    Err(Failed::Trapped(
                        "the component returned without setting a response".to_owned(),
                    ))
                }
            },
        }
    }
}

fn response_or_failure(head: Result<Response, ErrorCode>) -> Result<Response, Failed> {
    head.map_err(|code| Failed::Trapped(format!("the component answered with {code:?}")))
}

impl Pool {
    fn take_idle(&self) -> Option<Instance> {
        self.lock_idle().pop().map(|idle| idle.instance)
    }

    async fn instantiate(&self, deadline: Instant) -> Result<Instance, Failed> {
        self.instantiations.inc();
        let mut store = self.setup.new_store(self.pre.instance_pre().engine());
        match self.pre.instantiate_async(&mut store).await {
            Ok(proxy) => Ok(Instance {
                store,
                proxy,
                served: 0,
            }),
            Err(error) => {
                let refused = is_refused(&store);
                Err(match Failed::classify(&error, deadline, refused) {
                    Failed::Trapped(reason) => Failed::Instantiation(reason),
                    other => other,
                })
            }
        }
    }

    /// Puts an instance whose call returned back in the pool, or discards it
    /// with the reason its call failed. A trap leaves an instance in an
    /// unknown state, so it never serves again.
    fn finish(&self, mut instance: Instance, result: wasmtime::Result<()>) -> CallEnd {
        let deadline = instance.store.data_mut().deadline.take();
        match result {
            Ok(()) => {
                instance.served += 1;
                self.keep(instance);
                Ok(())
            }
            Err(error) => {
                let refused = is_refused(&instance.store);
                tracing::debug!(workload = %self.setup.workload, "instance discarded: {error:#}");
                let deadline = deadline.unwrap_or_else(Instant::now);
                Err(Failed::classify(&error, deadline, refused))
            }
        }
    }

    /// Puts `instance` back for reuse, unless it has served its share.
    fn keep(&self, instance: Instance) {
        if instance.served < self.max_reuse {
            self.lock_idle().push(Idle {
                instance,
                since: Instant::now(),
            });
        }
    }

    /// Drops the instances idle for longer than the idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut idle = self.lock_idle();
            let stale = idle.partition_point(|idle| now - idle.since >= self.idle_timeout);
            idle.drain(..stale).collect()
        };
        // Dropped outside the lock: dropping a store is not cheap.
        drop(expired);
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The vector stays consistent even if a holder panicked.
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl ReclaimIdle for Pool {
    fn reclaim_idle(&self) {
        let idle = std::mem::take(&mut *self.lock_idle());
        drop(idle);
    }
}

fn is_refused(store: &Store<StoreState>) -> bool {
    store
        .data()
        .memory
        .budget_refused()
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Retires idle instances past their timeout, even when no request comes to
/// notice them; ends with the pool.
fn spawn_idle_sweeper(pool: Weak<Pool>) {
    let Ok(tokio) = tokio::runtime::Handle::try_current() else {
        // Without an executor there is nothing to serve requests either.
        return;
    };
    let Some(period) = pool.upgrade().map(|pool| pool.idle_timeout / 2) else {
        return;
    };
    let period = period.max(Duration::from_millis(100));
    tokio.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match pool.upgrade() {
                Some(pool) => pool.sweep(),
                None => return,
            }
        }
    });
}
