//! The pipeline of the mesh handler's listeners: the snapshot in force when a request arrives
//! selects its route and filters, and serves it to the end.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use http::header;
use http_body_util::BodyExt;
use mesh_policies::grpc::is_grpc_content_type;
use sync_wrapper::SyncWrapper;
use wasmtime_wasi_http::WasiBody;

use super::answer;
use super::local::{LocalWorkload, Served, serve_local};
use super::normalize::{REDIRECT_STATUS, Refusal, normalize};
use super::upstream::forward_upstream;
use super::workloads::LocalWorkloads;
use crate::access_log::RequestLog;
use crate::body::{HoldPermit, ResponseBody};
use crate::filters::{FilterChain, FilterRequest, Overrides};
use crate::frontend::Dispatch;
use crate::metrics::Metrics;
use crate::routing::Decision;
use crate::shared::{
    Failure, OpenSpan, RequestMeta, RequestTrace, ResponseFlag, ServedBy, UpstreamHost,
};
use crate::snapshot::{ListenerChain, Snapshot};

/// What the listeners of a mesh handler, and the components' in-process requests, share.
pub struct MeshInbound {
    /// The configuration in force (shared with the span exporters, which send through it).
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The bound workloads.
    pub workloads: LocalWorkloads,
    /// Where failures are counted.
    pub metrics: Arc<Metrics>,
    /// The listener that carries components' outbound requests (not an inbound one).
    pub egress_listener: Option<String>,
}

/// One listener's requests, handed over by its front end.
pub struct ListenerInbound {
    listener: String,
    mesh: Arc<MeshInbound>,
}

impl ListenerInbound {
    /// The pipeline of listener `listener`.
    pub fn new(listener: String, mesh: Arc<MeshInbound>) -> ListenerInbound {
        ListenerInbound { listener, mesh }
    }
}

impl Dispatch for ListenerInbound {
    fn dispatch(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        meta: RequestMeta,
    ) -> BoxFuture<'static, http::Response<ResponseBody>> {
        Box::pin(async move {
            let snapshot = self.mesh.snapshot.load_full();
            let Some(chain) = snapshot.chain(&self.listener, meta.filter_chain) else {
                return answer::fail(&self.mesh.metrics, &Failure::NoRoute, "", meta.grpc);
            };
            let (head, body) = request.into_parts();
            let mut log = (!chain.access_logs.is_empty()).then(|| {
                RequestLog::start(
                    chain.access_logs.clone(),
                    self.mesh.metrics.clone(),
                    &head,
                    &meta,
                )
            });
            let body = match &log {
                Some(log) => log.count_request_body(body),
                None => body,
            };
            let response = self
                .serve_chain(&snapshot, chain, head, body, meta, log.as_mut())
                .await;
            self.mesh
                .metrics
                .downstream_response(&chain.stat_prefix, response.status().as_u16());
            match log {
                Some(log) => log.finish(response),
                None => response,
            }
        })
    }
}

impl ListenerInbound {
    /// Normalises and routes a request on one filter chain, and serves it.
    async fn serve_chain(
        &self,
        snapshot: &Snapshot,
        chain: &ListenerChain,
        mut head: http::request::Parts,
        body: WasiBody,
        meta: RequestMeta,
        log: Option<&mut RequestLog>,
    ) -> http::Response<ResponseBody> {
        match normalize(&chain.normalization, &mut head) {
            Ok(()) => {}
            Err(Refusal::Fail(failure)) => {
                return answer::fail(&self.mesh.metrics, &failure, "", meta.grpc);
            }
            Err(Refusal::Redirect(location)) => {
                return answer::redirect(&self.mesh.metrics, REDIRECT_STATUS, &location, meta.grpc);
            }
        }
        let (mut decision, overrides) = chain.routes.route(&head, rand::random());
        if let Decision::Forward(forward) = &mut decision {
            forward.suppress_envoy_headers = chain.suppress_envoy_headers;
        }
        if let (Some(log), Decision::Forward(forward)) = (log, &decision) {
            log.routed(&forward.route_name, &forward.cluster);
        }
        let forward = match &decision {
            Decision::Forward(forward) => Some(forward),
            _ => None,
        };
        // The trace travels beside the request, not in its extensions: an extension costs
        // every request three allocations, and most requests are not sampled.
        let (server_span, trace) = match &chain.tracer {
            Some(tracer) => {
                let started = tracer.start(
                    &head,
                    &meta,
                    forward.and_then(|f| f.tracing.as_deref()),
                    forward.map(|f| &*f.route_name),
                );
                let span = started
                    .span
                    .map(|span| (span, forward.map(|f| f.cluster.clone())));
                (span, Some(started.trace))
            }
            None => (None, None),
        };
        let response = self
            .mesh
            .serve(
                snapshot,
                &chain.filters,
                overrides,
                decision,
                head,
                body,
                meta,
                trace.as_ref(),
            )
            .await;
        match server_span {
            Some((span, cluster)) => end_server_span(span, cluster, response),
            None => response,
        }
    }
}

/// Records what served the response on the request's server span, which then ends with the
/// response body.
fn end_server_span(
    mut span: OpenSpan,
    cluster: Option<String>,
    response: http::Response<ResponseBody>,
) -> http::Response<ResponseBody> {
    span.set_status(response.status().as_u16());
    if let Some(cluster) = cluster {
        span.set_text("upstream_cluster", cluster);
    }
    let extensions = response.extensions();
    if let Some(ServedBy(workload)) = extensions.get::<ServedBy>() {
        span.set_text("mesh.workload", workload.to_string());
    }
    if let Some(UpstreamHost(host)) = extensions.get::<UpstreamHost>() {
        span.set_text("upstream_address", host.to_string());
    }
    if let Some(ResponseFlag(flag)) = extensions.get::<ResponseFlag>() {
        span.set_text("response_flags", *flag);
    }
    response.map(|body| HoldPermit::new(body, span).boxed_unsync())
}

impl MeshInbound {
    /// Steps 3 to 5 of the pipeline: the listener's filters, then the local workload, the
    /// upstream cluster or the router's own answer.
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        snapshot: &Snapshot,
        filters: &FilterChain,
        overrides: Overrides<'_>,
        decision: Decision,
        mut head: http::request::Parts,
        body: WasiBody,
        meta: RequestMeta,
        trace: Option<&RequestTrace>,
    ) -> http::Response<ResponseBody> {
        let mut body = SyncWrapper::new(body);
        let cluster = match &decision {
            Decision::Forward(forward) => Some(forward.cluster.as_str()),
            _ => None,
        };
        let (decoded, halt) = filters
            .decode(
                &mut FilterRequest {
                    head: &mut head,
                    meta: &meta,
                    cluster,
                    routed: !matches!(decision, Decision::NoRoute),
                    body: &mut body,
                    upstream: &snapshot.upstream,
                },
                overrides,
            )
            .await;
        let body = body.into_inner();
        let mut response = match halt {
            Some(halt) => answer::halted(&self.metrics, halt, "", meta.grpc),
            None => match decision {
                Decision::Forward(forward) => {
                    if let Some(workload) = self.workloads.by_cluster(&forward.cluster) {
                        let served = Served {
                            forward: Some(&forward),
                            upstream: &snapshot.upstream,
                            trace,
                        };
                        serve_local(&self.metrics, &workload, head, body, &meta, served).await
                    } else if snapshot.config.clusters.contains_key(&forward.cluster) {
                        forward_upstream(
                            &self.metrics,
                            &snapshot.upstream,
                            head,
                            body,
                            &forward,
                            &meta,
                            trace,
                        )
                        .await
                    } else {
                        tracing::warn!(cluster = %forward.cluster, "the route's cluster is neither a local workload nor configured");
                        answer::router_reply(&self.metrics, Decision::Forward(forward), meta.grpc)
                    }
                }
                other => answer::router_reply(&self.metrics, other, meta.grpc),
            },
        };
        filters.encode(&decoded, overrides, response.headers_mut());
        response
    }

    /// A component's request to a cluster `target` serves, delivered in-process: it enters the
    /// pipeline as if it had arrived on the inbound listener chain whose routes send it to that
    /// cluster (that chain's filters and per-route configuration apply), with `caller`'s
    /// identity as its authenticated principal. Without such a chain only the workload's own
    /// policy applies. No socket, no serialisation. `trace` is the caller's client span's
    /// context, which the callee's component span joins.
    pub async fn serve_in_process(
        &self,
        snapshot: &Snapshot,
        target: Arc<LocalWorkload>,
        cluster: &str,
        caller: &LocalWorkload,
        request: http::Request<WasiBody>,
        trace: Option<RequestTrace>,
    ) -> http::Response<ResponseBody> {
        let (head, body) = request.into_parts();
        let serving = snapshot
            .inbound_chains(self.egress_listener.as_deref())
            .find_map(|chain| match chain.routes.route(&head, rand::random()) {
                (Decision::Forward(mut forward), overrides) if forward.cluster == cluster => {
                    forward.suppress_envoy_headers = chain.suppress_envoy_headers;
                    Some((chain, overrides, forward))
                }
                _ => None,
            });
        let meta = RequestMeta {
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            remote_ip: Ipv4Addr::LOCALHOST.into(),
            local: serving.as_ref().map_or_else(
                || SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                |(chain, ..)| chain.address,
            ),
            tls: true,
            server_name: None,
            peer_principal: Some(caller.principal().clone()),
            peer_certificate: None,
            grpc: head
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(is_grpc_content_type),
            filter_chain: 0,
        };
        match serving {
            Some((chain, overrides, forward)) => {
                let decision = Decision::Forward(forward);
                self.serve(
                    snapshot,
                    &chain.filters,
                    overrides,
                    decision,
                    head,
                    body,
                    meta,
                    trace.as_ref(),
                )
                .await
            }
            None => {
                let served = Served {
                    forward: None,
                    upstream: &snapshot.upstream,
                    trace: trace.as_ref(),
                };
                serve_local(&self.metrics, &target, head, body, &meta, served).await
            }
        }
    }
}
