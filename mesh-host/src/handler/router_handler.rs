use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use http::header;
use mesh_policies::WorkloadPolicy;
use mesh_policies::grpc::is_grpc_content_type;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::{
    HostError, HostHandler, OutgoingFuture, ResolvedWorkload, RouteError, Router, WorkloadId,
    check_inbound, deny_outbound, requested_grpc_timeout,
};
use crate::body::ResponseBody;
use crate::frontend::{
    BoundFrontEnd, Dispatch, Failure, FrontEndConfig, RequestMeta, RunningFrontEnd,
};
use crate::metrics::Metrics;
use crate::runtime::{OutboundSender, Runtime, Workload};

/// Settings of a [`RouterHandler`].
#[derive(Debug, Clone)]
pub struct RouterHandlerConfig {
    /// The listening socket.
    pub frontend: FrontEndConfig,
}

struct Bound {
    workload: Arc<Workload>,
    policy: Arc<WorkloadPolicy>,
}

/// A handler built from a [`Router`]: one front end, workloads served
/// in-process, outbound requests denied (this handler has no egress path).
pub struct RouterHandler<R> {
    router: R,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    config: RouterHandlerConfig,
    workloads: ArcSwap<HashMap<WorkloadId, Arc<Bound>>>,
    // Serialises writers of `workloads`; readers only load the snapshot.
    workloads_write: Mutex<()>,
    bound: Mutex<Option<BoundFrontEnd>>,
    running: Mutex<Option<RunningFrontEnd>>,
}

impl<R: Router> RouterHandler<R> {
    /// A handler that will serve with `router` once started.
    pub fn new(
        router: R,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        config: RouterHandlerConfig,
    ) -> Self {
        Self {
            router,
            runtime,
            metrics,
            config,
            workloads: ArcSwap::default(),
            workloads_write: Mutex::new(()),
            bound: Mutex::new(None),
            running: Mutex::new(None),
        }
    }

    /// Binds the listening socket now, so a taken port is reported before
    /// slow work such as compiling components; `start` then serves it.
    pub fn bind(&self) -> Result<std::net::SocketAddr, HostError> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = bound.as_ref() {
            return Ok(existing.local_addr());
        }
        let fresh = BoundFrontEnd::bind(&self.config.frontend)?;
        let addr = fresh.local_addr();
        *bound = Some(fresh);
        Ok(addr)
    }

    /// The bound workload with this id, if any.
    pub fn workload(&self, id: &WorkloadId) -> Option<Arc<Workload>> {
        self.workloads
            .load()
            .get(id)
            .map(|bound| bound.workload.clone())
    }

    fn update_workloads(
        &self,
        change: impl FnOnce(&mut HashMap<WorkloadId, Arc<Bound>>) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let _guard = self
            .workloads_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.workloads.load());
        change(&mut next)?;
        self.workloads.store(Arc::new(next));
        Ok(())
    }

    async fn serve(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> http::Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let id = match self.router.route_incoming_request(&parts) {
            Ok(id) => id,
            Err(error) => {
                let failure = match error {
                    RouteError::NoRoute(_) => Failure::NoRoute,
                    RouteError::NoWorkload(_) => Failure::NoWorkload,
                };
                tracing::debug!(uri = %parts.uri, "{error}");
                self.metrics.failure("", failure.reason());
                return failure.response(meta.grpc);
            }
        };
        let Some(bound) = self.workloads.load().get(&id).cloned() else {
            self.metrics
                .failure(id.as_str(), Failure::NoWorkload.reason());
            return Failure::NoWorkload.response(meta.grpc);
        };
        if let Err(denied) = check_inbound(&bound.policy, &parts, &meta) {
            tracing::info!(workload = %id, uri = %parts.uri, "inbound request denied: {denied}");
            let failure = Failure::from(&denied);
            self.metrics.failure(id.as_str(), failure.reason());
            return failure.response(meta.grpc);
        }
        let asked = meta.grpc.then(|| requested_grpc_timeout(&parts)).flatten();
        let timeout = bound.policy.limits.deadline(None, asked);
        match bound
            .workload
            .serve(http::Request::from_parts(parts, body), timeout)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                let failure = Failure::from(&error);
                tracing::warn!(workload = %id, "{error}");
                self.metrics.failure(id.as_str(), failure.reason());
                failure.response(meta.grpc)
            }
        }
    }
}

impl<R: Router> Dispatch for RouterHandler<R> {
    fn dispatch(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> BoxFuture<'static, http::Response<ResponseBody>> {
        Box::pin(self.serve(request, meta))
    }
}

impl<R: Router> HostHandler for RouterHandler<R> {
    fn start(self: Arc<Self>) -> BoxFuture<'static, Result<(), HostError>> {
        Box::pin(async move {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.is_some() {
                return Err(HostError::AlreadyStarted);
            }
            let prebound = self
                .bound
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let bound = match prebound {
                Some(bound) => bound,
                None => BoundFrontEnd::bind(&self.config.frontend)?,
            };
            tracing::info!(addr = %bound.local_addr(), "serving HTTP/1.1 and HTTP/2{}", if self.config.frontend.tls.is_some() { " over TLS" } else { " (h2c)" });
            *running = Some(bound.serve(self.clone()));
            Ok(())
        })
    }

    fn stop(&self, drain: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let running = self
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(running) = running {
                running.shutdown(drain).await;
            }
        })
    }

    fn bound_addrs(&self) -> Vec<SocketAddr> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.iter().map(RunningFrontEnd::local_addr).collect()
    }

    fn on_workload_resolved(self: Arc<Self>, resolved: ResolvedWorkload) -> Result<(), HostError> {
        let outbound: Weak<dyn OutboundSender> = Arc::downgrade(&self) as Weak<Self>;
        let workload = Workload::new(
            &self.runtime,
            resolved.id.clone(),
            resolved.image.clone(),
            outbound,
            resolved.settings.clone(),
            self.metrics.workload(&resolved.id),
        );
        let bound = Arc::new(Bound {
            workload: Arc::new(workload),
            policy: resolved.policy.clone(),
        });
        self.update_workloads(|workloads| {
            if workloads.contains_key(&resolved.id) {
                return Err(HostError::DuplicateWorkload(resolved.id.clone()));
            }
            workloads.insert(resolved.id.clone(), bound);
            Ok(())
        })?;
        self.router.on_workload_resolved(&resolved);
        tracing::debug!(workload = %resolved.id, component = %resolved.image.path().display(), "workload bound");
        Ok(())
    }

    fn on_workload_unbind(&self, id: &WorkloadId) -> Result<(), HostError> {
        self.router.on_workload_unbind(id);
        self.update_workloads(|workloads| {
            workloads
                .remove(id)
                .map(drop)
                .ok_or_else(|| HostError::UnknownWorkload(id.clone()))
        })
    }

    fn outgoing_request(
        &self,
        workload: &WorkloadId,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
    ) -> OutgoingFuture {
        let (parts, _body) = request.into_parts();
        let grpc = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(is_grpc_content_type);
        let flags = self
            .workloads
            .load()
            .get(workload)
            .map(|bound| bound.policy.grpc)
            .unwrap_or_default();
        let why = match flags
            .check_outbound(grpc)
            .map_err(|denied| denied.to_string())
            .and_then(|()| {
                self.router
                    .allow_outgoing_request(workload, &parts)
                    .map_err(|error| error.to_string())
            }) {
            Err(why) => why,
            Ok(()) => "this handler has no egress path".to_owned(),
        };
        deny_outbound(&self.metrics, workload, &parts.uri, &why)
    }
}
