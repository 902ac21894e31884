//! A handler built from a [`Router`]: one listener, the router's choice of workload, the
//! inbound pipeline to serve it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use http::header;
use mesh_policies::grpc::is_grpc_content_type;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::{
    HostError, HostHandler, OutgoingFuture, ResolvedWorkload, RouteError, Router, WorkloadId,
};
use crate::body::ResponseBody;
use crate::frontend::{BoundFrontEnd, Dispatch, DrainPlan, FrontEndConfig, RunningFrontEnd};
use crate::inbound::{LocalWorkload, LocalWorkloads, serve_workload};
use crate::metrics::Metrics;
use crate::runtime::{OutboundSender, Runtime};
use crate::shared::{Failure, RequestMeta};

/// Settings of a [`RouterHandler`].
#[derive(Debug, Clone)]
pub struct RouterHandlerConfig {
    /// The listening socket.
    pub frontend: FrontEndConfig,
}

/// A handler built from a [`Router`]: one front end, workloads served
/// in-process, outbound requests denied (this handler has no egress path).
pub struct RouterHandler<R> {
    router: R,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    config: RouterHandlerConfig,
    workloads: LocalWorkloads,
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
            workloads: LocalWorkloads::default(),
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
    pub fn workload(&self, id: &WorkloadId) -> Option<Arc<LocalWorkload>> {
        self.workloads.by_id(id)
    }

    /// The workload the router chooses, or why there is none.
    fn choose(&self, request: &http::request::Parts) -> Result<Arc<LocalWorkload>, Failure> {
        match self.router.route_incoming_request(request) {
            Ok(id) => self.workloads.by_id(&id).ok_or(Failure::NoWorkload),
            Err(error) => {
                tracing::debug!(uri = %request.uri, "{error}");
                Err(match error {
                    RouteError::NoRoute(_) => Failure::NoRoute,
                    RouteError::NoWorkload(_) => Failure::NoWorkload,
                })
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
        Box::pin(async move {
            let (head, body) = request.into_parts();
            let workload = self.choose(&head);
            serve_workload(
                &self.metrics,
                workload,
                http::Request::from_parts(head, body),
                meta,
            )
            .await
        })
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
                running
                    .shutdown(DrainPlan {
                        keep_accepting: true,
                        discourage_for: self.config.frontend.drain_time,
                        finish_within: drain,
                    })
                    .await;
            }
        })
    }

    fn bound_addrs(&self) -> Vec<SocketAddr> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.iter().map(RunningFrontEnd::local_addr).collect()
    }

    fn on_workload_resolved(self: Arc<Self>, resolved: ResolvedWorkload) -> Result<(), HostError> {
        let outbound: Weak<dyn OutboundSender> = Arc::downgrade(&self) as Weak<Self>;
        let workload = LocalWorkload::new(
            &self.runtime,
            resolved.id.clone(),
            resolved.image.clone(),
            resolved.settings.clone(),
            resolved.policy.clone(),
            resolved.principal.clone(),
            outbound,
            self.metrics.workload(&resolved.id),
        )?;
        self.workloads.bind(Arc::new(workload), &[])?;
        self.router.on_workload_resolved(&resolved);
        tracing::debug!(workload = %resolved.id, component = %resolved.image.path().display(), "workload bound");
        Ok(())
    }

    fn on_workload_unbind(&self, id: &WorkloadId) -> Result<(), HostError> {
        self.router.on_workload_unbind(id);
        if self.workloads.unbind(id) {
            Ok(())
        } else {
            Err(HostError::UnknownWorkload(id.clone()))
        }
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
            .by_id(workload)
            .map(|bound| bound.policy().grpc)
            .unwrap_or_default();
        let (reason, why) = match flags
            .check_outbound(grpc)
            .map_err(|denied| denied.to_string())
            .and_then(|()| {
                self.router
                    .allow_outgoing_request(workload, &parts)
                    .map_err(|error| error.to_string())
            }) {
            Err(why) => ("policy", why),
            Ok(()) => (
                "no_egress_path",
                "this handler has no egress path".to_owned(),
            ),
        };
        crate::outbound::deny(&self.metrics, workload, &parts.uri, reason, &why)
    }
}
