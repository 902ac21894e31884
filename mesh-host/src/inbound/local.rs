//! Serving a request with a local workload: the workload's own policy (compiled into the
//! same HTTP filters a connection manager runs) decides first, then the router's rewrites
//! apply and the component answers within the request's deadline.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::BodyExt;
use mesh_policies::WorkloadPolicy;
use mesh_policies::limits::Limits;
use mesh_xds::config::{
    Fraction, HttpFilter, HttpFilterConfig, LocalRateLimit, RbacFilter, TokenBucket,
};
use sync_wrapper::SyncWrapper;
use wasmtime_wasi_http::WasiBody;

use super::answer;
use crate::body::{HoldPermit, ResponseBody, limit_body};
use crate::egress::Egress;
use crate::filters::{FilterChain, FilterError, FilterRequest, Overrides};
use crate::metrics::{Metrics, WorkloadCounters};
use crate::routing::ForwardDecision;
use crate::runtime::{ComponentImage, OutboundSender, Runtime, Workload, WorkloadSettings};
use crate::shared::{
    Failure, OpenSpan, RequestMeta, RequestTrace, ResponseDetails, ServedBy, SpanKind, WorkloadId,
};

/// A workload's policy cannot be compiled into filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workload {workload}: {error}")]
pub struct LocalWorkloadError {
    /// The workload.
    pub workload: WorkloadId,
    /// What is wrong.
    pub error: FilterError,
}

/// A component bound to a workload, with its policy's filters.
pub struct LocalWorkload {
    id: WorkloadId,
    component: Workload,
    filters: FilterChain,
    policy: Arc<WorkloadPolicy>,
    principal: Arc<str>,
}

impl LocalWorkload {
    /// Binds `image` to `id`; its instances send their outbound requests to `outbound`.
    /// `principal` is the identity its in-process requests carry (a SPIFFE id).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: &Runtime,
        id: WorkloadId,
        image: Arc<ComponentImage>,
        settings: WorkloadSettings,
        policy: Arc<WorkloadPolicy>,
        principal: Arc<str>,
        outbound: Weak<dyn OutboundSender>,
        counters: WorkloadCounters,
    ) -> Result<LocalWorkload, LocalWorkloadError> {
        let filters = policy_filters(&policy).map_err(|error| LocalWorkloadError {
            workload: id.clone(),
            error,
        })?;
        Ok(LocalWorkload {
            component: Workload::new(runtime, id.clone(), image, outbound, settings, counters),
            id,
            filters,
            policy,
            principal,
        })
    }

    /// The workload's id.
    pub fn id(&self) -> &WorkloadId {
        &self.id
    }

    /// The component's instance pool.
    pub fn component(&self) -> &Workload {
        &self.component
    }

    /// The workload's policy.
    pub fn policy(&self) -> &WorkloadPolicy {
        &self.policy
    }

    /// The identity this workload's in-process requests carry.
    pub fn principal(&self) -> &Arc<str> {
        &self.principal
    }
}

/// A workload's policy as filters: the gRPC flag, then JWT authentication and external
/// authorization (Istio's order: `RequestAuthentication`, then a CUSTOM `AuthorizationPolicy`),
/// then RBAC, then the local rate limit (so a refused request spends no token), as Envoy's
/// filters would run them.
fn policy_filters(policy: &WorkloadPolicy) -> Result<FilterChain, FilterError> {
    let mut filters = Vec::new();
    if let Some(jwt) = &policy.jwt {
        filters.push(HttpFilter {
            name: "envoy.filters.http.jwt_authn".to_owned(),
            disabled: false,
            config: HttpFilterConfig::JwtAuthn(jwt.clone()),
        });
    }
    if let Some(ext_authz) = &policy.ext_authz {
        filters.push(HttpFilter {
            name: "envoy.filters.http.ext_authz".to_owned(),
            disabled: false,
            config: HttpFilterConfig::ExtAuthz(ext_authz.clone()),
        });
    }
    if let Some(rules) = &policy.rbac {
        filters.push(HttpFilter {
            name: "envoy.filters.http.rbac".to_owned(),
            disabled: false,
            config: HttpFilterConfig::Rbac(RbacFilter {
                rules: Some(rules.clone()),
                shadow_rules: None,
            }),
        });
    }
    if let Some(bucket) = policy.rate_limit {
        filters.push(HttpFilter {
            name: "envoy.filters.http.local_ratelimit".to_owned(),
            disabled: false,
            config: HttpFilterConfig::LocalRateLimit(Arc::new(LocalRateLimit {
                stat_prefix: "workload".to_owned(),
                token_bucket: Some(TokenBucket {
                    max_tokens: bucket.max_tokens,
                    tokens_per_fill: bucket.tokens_per_fill,
                    fill_interval: bucket.fill_interval,
                }),
                filter_enabled: Fraction::ALL,
                filter_enforced: Fraction::ALL,
                status: 429,
                response_headers_to_add: Vec::new(),
                request_headers_to_add_when_not_enforced: Vec::new(),
                descriptors: Vec::new(),
                rate_limits: Vec::new(),
                vh_rate_limits: Default::default(),
                x_ratelimit_headers: false,
                always_consume_default_token_bucket: true,
                rate_limited_as_resource_exhausted: false,
            })),
        });
    }
    Ok(FilterChain::for_workload(
        policy.grpc.serve,
        FilterChain::compile(&filters)?,
    ))
}

/// Serves a request the handler's router sent to `workload`, or answers why it could not.
/// Without a mesh configuration there are no clusters: a policy filter that calls a service
/// finds none and fails as Envoy fails for an unknown cluster.
pub async fn serve_workload(
    metrics: &Metrics,
    workload: Result<Arc<LocalWorkload>, Failure>,
    request: http::Request<WasiBody>,
    meta: RequestMeta,
) -> http::Response<ResponseBody> {
    match workload {
        Ok(workload) => {
            let (head, body) = request.into_parts();
            let no_clusters = Egress::new();
            let served = Served {
                forward: None,
                upstream: &no_clusters,
                trace: None,
            };
            serve_local(metrics, &workload, head, body, &meta, served).await
        }
        Err(failure) => answer::fail(metrics, &failure, "", meta.grpc),
    }
}

/// How a request reached a local workload.
pub(super) struct Served<'a> {
    /// The route's rewrites, header mutations and timeouts, when a route table chose the
    /// workload.
    pub forward: Option<&'a ForwardDecision>,
    /// The upstream client of the snapshot the request runs on: filters that call a service
    /// reach it through this.
    pub upstream: &'a Egress,
    /// The trace the request belongs to, if its connection manager traces.
    pub trace: Option<&'a RequestTrace>,
}

/// Runs the workload's filters, then the component.
pub(super) async fn serve_local(
    metrics: &Metrics,
    workload: &LocalWorkload,
    mut head: http::request::Parts,
    body: WasiBody,
    meta: &RequestMeta,
    served: Served<'_>,
) -> http::Response<ResponseBody> {
    let Served {
        forward,
        upstream,
        trace,
    } = served;
    let label = workload.id.as_str();
    let limits = &workload.policy.limits;
    if let Some(failure) = over_limits(&head, limits) {
        return answer::fail(metrics, &failure, label, meta.grpc);
    }
    let mut body = SyncWrapper::new(limit_body(body, limits.max_request_body_bytes));
    let (decoded, halt) = workload
        .filters
        .decode(
            &mut FilterRequest {
                head: &mut head,
                meta,
                cluster: forward.map(|f| f.cluster.as_str()),
                routed: true,
                body: &mut body,
                upstream,
            },
            Overrides::default(),
        )
        .await;
    let body = body.into_inner();
    let mut component_span = None;
    let mut response = match halt {
        Some(halt) => answer::halted(metrics, halt, label, meta.grpc),
        None => {
            if let Some(forward) = forward {
                forward.apply_to_request(&mut head);
            }
            let timeout = deadline(forward, &workload.policy.limits, &head, meta.grpc);
            let (span, trace) = open_component_span(workload, trace);
            component_span = span;
            match workload
                .component
                .serve(http::Request::from_parts(head, body), timeout, trace)
                .await
            {
                Ok(mut response) => {
                    if let Some(forward) = forward {
                        forward.apply_to_response(response.headers_mut());
                    }
                    response
                        .extensions_mut()
                        .insert(ResponseDetails("via_upstream"));
                    response
                }
                Err(error) => {
                    tracing::warn!(workload = %workload.id, "{error}");
                    answer::fail(metrics, &Failure::from(&error), label, meta.grpc)
                }
            }
        }
    };
    workload
        .filters
        .encode(&decoded, Overrides::default(), response.headers_mut());
    response
        .extensions_mut()
        .insert(ServedBy(workload.id.clone()));
    match component_span {
        Some(mut span) => {
            span.set_status(response.status().as_u16());
            response.map(|body| HoldPermit::new(body, span).boxed_unsync())
        }
        None => response,
    }
}

/// Opens the span of the component's execution, a child of the request's span, and returns
/// it with the trace the component's outbound requests join (the runtime carries it). An
/// unsampled trace gets no span, only a context to propagate.
fn open_component_span(
    workload: &LocalWorkload,
    trace: Option<&RequestTrace>,
) -> (Option<OpenSpan>, Option<RequestTrace>) {
    let Some(trace) = trace else {
        return (None, None);
    };
    let (span, child) =
        trace.child_span(|| format!("component {}", workload.id), SpanKind::Internal);
    let span = span.map(|mut span| {
        span.set_text("mesh.workload", workload.id.to_string());
        span.set_text("mesh.component.kind", workload.component.kind());
        span
    });
    (span, Some(child))
}

/// The workload's own size limits: a declared body or a header section larger than it allows.
fn over_limits(head: &http::request::Parts, limits: &Limits) -> Option<Failure> {
    let declared = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_request_body_bytes) {
        return Some(Failure::PayloadTooLarge);
    }
    let header_bytes: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes as u64 > limits.max_request_header_bytes).then_some(Failure::HeadersTooLarge)
}

/// The deadline of a request to a local component. A gRPC client's `grpc-timeout` is
/// honoured (Envoy only does so with `grpc_timeout_header_max`), capped by the route's
/// `grpc_timeout_header_max` when set, else the workload's `max_request_timeout`. Otherwise
/// the route's own timeout when it sets one (0: none, so the workload's maximum), else the
/// workload's `request_timeout`; never more than its `max_request_timeout`.
fn deadline(
    forward: Option<&ForwardDecision>,
    limits: &Limits,
    head: &http::request::Parts,
    grpc: bool,
) -> Duration {
    let cap = limits.max_request_timeout;
    if let Some(asked) = super::requested_grpc_timeout(head, grpc) {
        let grpc_cap = forward
            .and_then(|f| f.grpc_timeout_header_max)
            .filter(|max| !max.is_zero())
            .unwrap_or(cap);
        return if asked.is_zero() {
            grpc_cap
        } else {
            asked.min(grpc_cap)
        };
    }
    match forward.filter(|f| f.timeout_configured) {
        Some(forward) => forward.timeout.map_or(cap, |timeout| timeout.min(cap)),
        None => limits.request_timeout.min(cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(grpc_timeout: Option<&str>) -> http::request::Parts {
        let mut builder = http::Request::post("http://svc.test/pkg.Svc/Call");
        if let Some(value) = grpc_timeout {
            builder = builder.header("grpc-timeout", value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn limits(request: u64, max: u64) -> Limits {
        Limits {
            request_timeout: Duration::from_secs(request),
            max_request_timeout: Duration::from_secs(max),
            ..Limits::default()
        }
    }

    #[test]
    fn a_workloads_size_limits_refuse_large_bodies_and_headers() {
        let limits = Limits {
            max_request_body_bytes: 10,
            max_request_header_bytes: 40,
            ..Limits::default()
        };
        let sized = |length: &str, header: usize| {
            http::Request::post("http://svc.test/")
                .header("content-length", length)
                .header("x-pad", "p".repeat(header))
                .body(())
                .expect("request")
                .into_parts()
                .0
        };
        assert_eq!(over_limits(&sized("10", 1), &limits), None);
        assert_eq!(
            over_limits(&sized("11", 1), &limits),
            Some(Failure::PayloadTooLarge)
        );
        assert_eq!(
            over_limits(&sized("1", 30), &limits),
            Some(Failure::HeadersTooLarge)
        );
    }

    #[test]
    fn without_a_route_timeout_the_workloads_request_timeout_applies() {
        assert_eq!(
            deadline(None, &limits(7, 60), &request(None), false),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn grpc_timeout_is_honoured_up_to_the_workloads_maximum() {
        let limits = limits(7, 60);
        assert_eq!(
            deadline(None, &limits, &request(Some("2S")), true),
            Duration::from_secs(2)
        );
        assert_eq!(
            deadline(None, &limits, &request(Some("5M")), true),
            Duration::from_secs(60)
        );
        assert_eq!(
            deadline(None, &limits, &request(Some("2S")), false),
            Duration::from_secs(7),
            "grpc-timeout means nothing on a plain HTTP request"
        );
    }
}
