//! Running a list of filters over one request the way Envoy's filter manager does: every
//! enabled filter decodes the request head in order and may answer in place of the upstream
//! (a local reply); then every enabled filter encodes the response head in reverse order,
//! whoever produced the response.
//!
//! A filter is enabled for a request unless the most specific `typed_per_filter_config` entry
//! naming it disables it; a filter listed with `disabled: true` runs only where such an entry
//! enables it.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use mesh_xds::config::{
    ApiKeyAuth, BasicAuth, ExtAuthzPerRoute, GlobalRateLimitPerRoute, HttpFilter, HttpFilterConfig,
    JwtPerRoute, PerFilterConfigs, PerRouteConfig, RateLimitPolicy,
};
use sync_wrapper::SyncWrapper;
use wasmtime_wasi_http::WasiBody;

use super::api_key_auth::ApiKeyFilter;
use super::basic_auth::BasicAuthFilter;
use super::cors::{CorsMatch, CorsPolicy};
use super::ext_authz::{ExtAuthzFilter, RouteSettings};
use super::fault::FaultInjector;
use super::grpc_serve::GrpcServe;
use super::header_mutation::{HeaderMutationFilter, Mutations};
use super::jwt_authn::JwtFilter;
use super::local_ratelimit::{RateLimitOutcome, RateLimiter};
use super::ratelimit::{GlobalRateLimiter, RouteLimits};
use super::rbac::RbacFilter;
use super::response_edits::{Edit, ResponseEdits};
use crate::body::ResponseBody;
use crate::egress::Egress;
use crate::shared::{Failure, RequestMeta};

/// Why a filter configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP filter {filter}: {reason}")]
pub struct FilterError {
    /// The filter's name.
    pub filter: String,
    /// What is wrong.
    pub reason: String,
}

/// What a filter sees of a request while decoding.
pub struct FilterRequest<'a> {
    /// The request head; filters may change its headers.
    pub head: &'a mut http::request::Parts,
    /// Its connection and client.
    pub meta: &'a RequestMeta,
    /// The cluster the route sends it to, if it routes to one.
    pub cluster: Option<&'a str>,
    /// Whether a route matched it (filters that need a route skip requests without one).
    pub routed: bool,
    /// Its body; a filter that reads it (ext_authz's `with_request_body`) puts back what it
    /// read. Only the filter running has it, so it is never shared between threads; the
    /// wrapper lets filters hold `&FilterRequest` across an await.
    pub body: &'a mut SyncWrapper<WasiBody>,
    /// The snapshot's upstream client, for filters that call a service.
    pub upstream: &'a Egress,
}

/// A filter answered in place of the upstream.
pub enum Halt {
    /// With the host's answer for this failure (HTTP or gRPC shaped).
    Fail(Failure),
    /// With this response (a CORS preflight).
    Answer(http::Response<ResponseBody>),
}

/// The filters of one connection manager (or one workload's policy), compiled once.
#[derive(Default)]
pub struct FilterChain {
    entries: Vec<Entry>,
}

struct Entry {
    name: String,
    disabled: bool,
    filter: Filter,
}

enum Filter {
    Rbac(RbacFilter),
    LocalRateLimit(Arc<RateLimiter>),
    Fault(Arc<FaultInjector>),
    Cors,
    HeaderMutation(HeaderMutationFilter),
    ExtAuthz(ExtAuthzFilter),
    JwtAuthn(JwtFilter),
    RateLimit(GlobalRateLimiter),
    BasicAuth(BasicAuthFilter),
    ApiKeyAuth(ApiKeyFilter),
    GrpcServe(GrpcServe),
    Telemetry,
}

/// The per-route filter configurations of one level (a route, a virtual host or a route
/// configuration), compiled once with the route table, with the level's `rate_limits`.
#[derive(Default)]
pub struct RouteFilterConfigs {
    by_name: HashMap<String, Override>,
    rate_limits: RateLimits,
}

/// A level's `rate_limits` for the global rate limit filter.
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    /// The descriptors' actions.
    pub policies: Vec<RateLimitPolicy>,
    /// A route's `include_vh_rate_limits`.
    pub include_vh: bool,
}

impl std::fmt::Debug for RouteFilterConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

struct Override {
    disabled: bool,
    config: Option<PerRoute>,
}

enum PerRoute {
    Rbac(RbacFilter),
    LocalRateLimit(Arc<RateLimiter>),
    Fault(Arc<FaultInjector>),
    Cors(Arc<CorsPolicy>),
    HeaderMutation(Mutations),
    ExtAuthz(Arc<ExtAuthzPerRoute>),
    JwtAuthn(JwtPerRoute),
    RateLimit(Arc<GlobalRateLimitPerRoute>),
    BasicAuth(Arc<BasicAuth>),
    ApiKeyAuth(Arc<ApiKeyAuth>),
}

/// The per-route configurations that apply to one request, most specific first: route,
/// virtual host, route configuration. Empty when no route matched.
#[derive(Clone, Copy, Default)]
pub struct Overrides<'a> {
    levels: [Option<&'a RouteFilterConfigs>; 3],
}

/// The enabled filters of a request and what each remembers from decoding, for encoding.
pub struct Decoded {
    steps: Vec<(usize, State)>,
}

enum State {
    Nothing,
    RateLimit(RateLimitOutcome),
    Cors(Option<CorsMatch>),
    Respond(ResponseEdits),
    GlobalRateLimit { edits: ResponseEdits, refused: bool },
}

impl FilterChain {
    /// Compiles a connection manager's filters, in order.
    pub fn compile(filters: &[HttpFilter]) -> Result<FilterChain, FilterError> {
        let entries = filters
            .iter()
            .map(|filter| {
                let error = |reason: String| FilterError {
                    filter: filter.name.clone(),
                    reason,
                };
                let compiled = match &filter.config {
                    HttpFilterConfig::Rbac(config) => Filter::Rbac(RbacFilter::new(config)),
                    HttpFilterConfig::LocalRateLimit(config) => {
                        Filter::LocalRateLimit(Arc::new(RateLimiter::new(config).map_err(error)?))
                    }
                    HttpFilterConfig::Fault(config) => {
                        Filter::Fault(Arc::new(FaultInjector::new(config.clone())))
                    }
                    HttpFilterConfig::Cors => Filter::Cors,
                    HttpFilterConfig::HeaderMutation(config) => {
                        Filter::HeaderMutation(HeaderMutationFilter::new(config).map_err(error)?)
                    }
                    HttpFilterConfig::ExtAuthz(config) => {
                        Filter::ExtAuthz(ExtAuthzFilter::new(config).map_err(error)?)
                    }
                    HttpFilterConfig::JwtAuthn(config) => {
                        Filter::JwtAuthn(JwtFilter::new(config).map_err(error)?)
                    }
                    HttpFilterConfig::RateLimit(config) => {
                        Filter::RateLimit(GlobalRateLimiter::new(config).map_err(error)?)
                    }
                    HttpFilterConfig::BasicAuth(config) => {
                        Filter::BasicAuth(BasicAuthFilter::new(config))
                    }
                    HttpFilterConfig::ApiKeyAuth(config) => {
                        Filter::ApiKeyAuth(ApiKeyFilter::new(config))
                    }
                    HttpFilterConfig::Telemetry => Filter::Telemetry,
                };
                Ok(Entry {
                    name: filter.name.clone(),
                    disabled: filter.disabled,
                    filter: compiled,
                })
            })
            .collect::<Result<_, FilterError>>()?;
        Ok(FilterChain { entries })
    }

    /// The chain a workload's policy compiles into: its gRPC flag, then its RBAC filter and
    /// its local rate limit (compiled by the caller with [`FilterChain::compile`]).
    pub fn for_workload(grpc_serve: bool, policy_filters: FilterChain) -> FilterChain {
        let mut entries = vec![Entry {
            name: "mesh-host.grpc".to_owned(),
            disabled: false,
            filter: Filter::GrpcServe(GrpcServe::new(grpc_serve)),
        }];
        entries.extend(policy_filters.entries);
        FilterChain { entries }
    }

    /// Whether the chain has no filter.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs every enabled filter's decode step in order. The first filter that answers stops
    /// the chain; what each enabled filter decoded (nothing, for those after the one that
    /// answered) is returned for [`FilterChain::encode`].
    pub async fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        overrides: Overrides<'_>,
    ) -> (Decoded, Option<Halt>) {
        let mut decoded = Decoded {
            steps: Vec::with_capacity(self.entries.len()),
        };
        let mut halt = None;
        for (index, entry) in self.entries.iter().enumerate() {
            if !overrides.enabled(&entry.name, entry.disabled) {
                continue;
            }
            if halt.is_some() {
                decoded.steps.push((index, State::Nothing));
                continue;
            }
            let (state, stop) = self.decode_one(entry, request, &overrides).await;
            decoded.steps.push((index, state));
            halt = stop;
        }
        (decoded, halt)
    }

    /// One filter's decode step. The filters that wait on a service or a timer (fault,
    /// ext_authz, jwt_authn, rate limit) run in a box of their own: every request's pipeline
    /// future is moved into a box when it starts, and carrying their futures' size inline cost
    /// each request a 15 KiB copy whether or not it crossed one of them.
    async fn decode_one(
        &self,
        entry: &Entry,
        request: &mut FilterRequest<'_>,
        overrides: &Overrides<'_>,
    ) -> (State, Option<Halt>) {
        let per_route = overrides.config(&entry.name);
        match &entry.filter {
            Filter::Rbac(own) => {
                let filter = match per_route {
                    Some(PerRoute::Rbac(route)) => route,
                    _ => own,
                };
                (State::Nothing, filter.decode(request).err().map(Halt::Fail))
            }
            Filter::LocalRateLimit(own) => {
                let limiter = match per_route {
                    Some(PerRoute::LocalRateLimit(route)) => route,
                    _ => own,
                };
                let outcome =
                    limiter.decode(request, overrides.rate_limits(0), overrides.rate_limits(1));
                let halt = outcome.refusal().map(Halt::Fail);
                (State::RateLimit(outcome), halt)
            }
            Filter::Fault(own) => {
                let injector = match per_route {
                    Some(PerRoute::Fault(route)) => route,
                    _ => own,
                };
                (
                    State::Nothing,
                    Box::pin(injector.decode(request)).await.map(Halt::Fail),
                )
            }
            Filter::Cors => {
                let policies = overrides
                    .all(&entry.name)
                    .filter_map(|config| match config {
                        PerRoute::Cors(policy) => Some(policy.as_ref()),
                        _ => None,
                    });
                let (matched, halt) = CorsPolicy::decode(policies, request);
                (State::Cors(matched), halt.map(Halt::Answer))
            }
            Filter::HeaderMutation(filter) => {
                filter.decode(request.head, route_mutations(overrides, &entry.name));
                (State::Nothing, None)
            }
            Filter::ExtAuthz(filter) => {
                let levels: Vec<&ExtAuthzPerRoute> = overrides
                    .all(&entry.name)
                    .filter_map(|config| match config {
                        PerRoute::ExtAuthz(settings) => Some(settings.as_ref()),
                        _ => None,
                    })
                    .collect();
                let settings = RouteSettings::merge(levels.into_iter());
                let (edits, refusal) = Box::pin(filter.decode(request, settings)).await;
                (State::Respond(edits), refusal.map(Halt::Fail))
            }
            Filter::JwtAuthn(filter) => {
                let route = match per_route {
                    Some(PerRoute::JwtAuthn(route)) => Some(route),
                    _ => None,
                };
                match Box::pin(filter.decode(request, route)).await {
                    Some((failure, challenge)) => {
                        let mut edits = ResponseEdits::default();
                        edits.push(Edit::Set, "www-authenticate", &challenge);
                        (State::Respond(edits), Some(Halt::Fail(failure)))
                    }
                    None => (State::Nothing, None),
                }
            }
            Filter::RateLimit(filter) => {
                let limits = RouteLimits {
                    route: overrides.rate_limits(0),
                    virtual_host: overrides.rate_limits(1),
                    per_route: match per_route {
                        Some(PerRoute::RateLimit(route)) => Some(route),
                        _ => None,
                    },
                };
                let (edits, refusal) = Box::pin(filter.decode(request, limits)).await;
                let refused = refusal.is_some();
                (
                    State::GlobalRateLimit { edits, refused },
                    refusal.map(Halt::Fail),
                )
            }
            Filter::BasicAuth(filter) => {
                let users = match per_route {
                    Some(PerRoute::BasicAuth(users)) => Some(users.as_ref()),
                    _ => None,
                };
                match filter.decode(request, users) {
                    Some((failure, challenge)) => {
                        let mut edits = ResponseEdits::default();
                        edits.push(Edit::Set, "www-authenticate", &challenge);
                        (State::Respond(edits), Some(Halt::Fail(failure)))
                    }
                    None => (State::Nothing, None),
                }
            }
            Filter::ApiKeyAuth(filter) => {
                let route = match per_route {
                    Some(PerRoute::ApiKeyAuth(route)) => Some(route.as_ref()),
                    _ => None,
                };
                (
                    State::Nothing,
                    filter.decode(request, route).map(Halt::Fail),
                )
            }
            Filter::GrpcServe(filter) => {
                (State::Nothing, filter.decode(request).err().map(Halt::Fail))
            }
            Filter::Telemetry => (State::Nothing, None),
        }
    }

    /// Runs the encode step of every enabled filter, in reverse order, on the response head
    /// (from a component, an upstream, the router or a filter's local reply). As in Envoy, a
    /// local reply passes through the filters after the one that sent it too: those that keep
    /// no state from decoding (header mutation) act on it.
    pub fn encode(&self, decoded: &Decoded, overrides: Overrides<'_>, headers: &mut HeaderMap) {
        for (index, state) in decoded.steps.iter().rev() {
            let Some(entry) = self.entries.get(*index) else {
                continue;
            };
            match (&entry.filter, state) {
                (Filter::LocalRateLimit(_), State::RateLimit(outcome)) => outcome.encode(headers),
                (Filter::Cors, State::Cors(Some(matched))) => matched.encode(headers),
                (_, State::Respond(edits)) => edits.apply(headers),
                (Filter::RateLimit(filter), State::GlobalRateLimit { edits, refused }) => {
                    edits.apply(headers);
                    if *refused {
                        filter.refusal_headers().apply(headers);
                    }
                }
                (Filter::HeaderMutation(filter), _) => {
                    filter.encode(headers, route_mutations(&overrides, &entry.name));
                }
                _ => {}
            }
        }
    }
}

/// The per-route mutations of a header mutation filter, most specific first.
fn route_mutations<'a>(
    overrides: &Overrides<'a>,
    name: &'a str,
) -> impl DoubleEndedIterator<Item = &'a Mutations> + 'a {
    let levels = overrides.levels;
    levels.into_iter().flatten().filter_map(move |level| {
        match level.by_name.get(name)?.config.as_ref()? {
            PerRoute::HeaderMutation(mutations) => Some(mutations),
            _ => None,
        }
    })
}

impl RouteFilterConfigs {
    /// Compiles one level's `typed_per_filter_config` and `rate_limits`.
    pub fn compile(
        configs: &PerFilterConfigs,
        rate_limits: RateLimits,
    ) -> Result<Option<Arc<RouteFilterConfigs>>, FilterError> {
        if configs.is_empty() && rate_limits.policies.is_empty() && !rate_limits.include_vh {
            return Ok(None);
        }
        let by_name = configs
            .iter()
            .map(|(name, entry)| {
                let error = |reason: String| FilterError {
                    filter: name.clone(),
                    reason,
                };
                let config = match &entry.config {
                    None => None,
                    Some(PerRouteConfig::Rbac(config)) => {
                        Some(PerRoute::Rbac(RbacFilter::new(config)))
                    }
                    Some(PerRouteConfig::LocalRateLimit(config)) => Some(PerRoute::LocalRateLimit(
                        Arc::new(RateLimiter::new(config).map_err(error)?),
                    )),
                    Some(PerRouteConfig::Fault(config)) => Some(PerRoute::Fault(Arc::new(
                        FaultInjector::new(config.clone()),
                    ))),
                    Some(PerRouteConfig::Cors(config)) => {
                        Some(PerRoute::Cors(Arc::new(CorsPolicy::new(config))))
                    }
                    Some(PerRouteConfig::HeaderMutation(config)) => Some(PerRoute::HeaderMutation(
                        Mutations::new(config).map_err(error)?,
                    )),
                    Some(PerRouteConfig::ExtAuthz(config)) => {
                        Some(PerRoute::ExtAuthz(config.clone()))
                    }
                    Some(PerRouteConfig::JwtAuthn(config)) => {
                        Some(PerRoute::JwtAuthn(config.clone()))
                    }
                    Some(PerRouteConfig::RateLimit(config)) => {
                        Some(PerRoute::RateLimit(config.clone()))
                    }
                    Some(PerRouteConfig::BasicAuth(config)) => {
                        Some(PerRoute::BasicAuth(config.clone()))
                    }
                    Some(PerRouteConfig::ApiKeyAuth(config)) => {
                        Some(PerRoute::ApiKeyAuth(config.clone()))
                    }
                };
                Ok((
                    name.clone(),
                    Override {
                        disabled: entry.disabled,
                        config,
                    },
                ))
            })
            .collect::<Result<_, FilterError>>()?;
        Ok(Some(Arc::new(RouteFilterConfigs {
            by_name,
            rate_limits,
        })))
    }
}

impl<'a> Overrides<'a> {
    /// The levels that apply to a routed request, most specific first.
    pub fn new(
        route: Option<&'a RouteFilterConfigs>,
        virtual_host: Option<&'a RouteFilterConfigs>,
        route_config: Option<&'a RouteFilterConfigs>,
    ) -> Overrides<'a> {
        Overrides {
            levels: [route, virtual_host, route_config],
        }
    }

    fn find(&self, name: &str) -> Option<&'a Override> {
        self.levels
            .into_iter()
            .flatten()
            .find_map(|level| level.by_name.get(name))
    }

    /// Envoy's `filterDisabled`: the most specific entry decides; without one, the filter's
    /// own `disabled` flag does.
    fn enabled(&self, name: &str, disabled_by_default: bool) -> bool {
        match self.find(name) {
            Some(entry) => !entry.disabled,
            None => !disabled_by_default,
        }
    }

    /// The `rate_limits` of a level (0: route, 1: virtual host, 2: route configuration).
    fn rate_limits(&self, level: usize) -> Option<&'a RateLimits> {
        Some(&self.levels.get(level).copied().flatten()?.rate_limits)
    }

    /// The most specific per-route configuration of a filter.
    fn config(&self, name: &str) -> Option<&'a PerRoute> {
        self.all(name).next()
    }

    /// Every level's configuration of a filter, most specific first.
    fn all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a PerRoute> + 'n
    where
        'a: 'n,
    {
        self.levels
            .into_iter()
            .flatten()
            .filter_map(move |level| level.by_name.get(name)?.config.as_ref())
    }
}

/// An empty request body, for filter tests.
#[cfg(test)]
pub(super) fn test_body() -> SyncWrapper<WasiBody> {
    use http_body_util::BodyExt;
    SyncWrapper::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::FutureExt;
    use mesh_xds::config::{
        FilterOverride, HeaderAppendAction, HeaderEdit, HeaderMutation, HeaderMutationRules,
        HeaderValueOption, Permission, Principal, RbacAction, RbacFilter as RbacConfig, RbacPolicy,
        RbacRules,
    };

    use super::*;

    fn deny_all() -> HttpFilterConfig {
        HttpFilterConfig::Rbac(RbacConfig {
            rules: Some(Arc::new(RbacRules {
                action: RbacAction::Deny,
                policies: BTreeMap::from([(
                    "all".to_owned(),
                    RbacPolicy {
                        permissions: vec![Permission::Any],
                        principals: vec![Principal::Any],
                    },
                )]),
            })),
            shadow_rules: None,
        })
    }

    fn response_header(name: &str, value: &str) -> HttpFilterConfig {
        HttpFilterConfig::HeaderMutation(Arc::new(HeaderMutation {
            mutations: Arc::new(HeaderMutationRules {
                request: Vec::new(),
                response: vec![HeaderEdit::Append(HeaderValueOption {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    append: HeaderAppendAction::AppendIfExistsOrAdd,
                })],
            }),
            most_specific_header_mutations_wins: false,
        }))
    }

    fn filter(name: &str, disabled: bool, config: HttpFilterConfig) -> HttpFilter {
        HttpFilter {
            name: name.to_owned(),
            disabled,
            config,
        }
    }

    /// Runs `chain` with `overrides`: whether a filter refused, and the response headers
    /// after encoding (a 200 when none refused).
    fn run(chain: &FilterChain, overrides: Overrides<'_>) -> (bool, Vec<String>) {
        let (mut head, ()) = http::Request::get("http://a.test/")
            .body(())
            .expect("request")
            .into_parts();
        let meta = RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = Egress::new();
        let mut body = test_body();
        let (decoded, halt) = chain
            .decode(
                &mut FilterRequest {
                    head: &mut head,
                    meta: &meta,
                    cluster: None,
                    routed: true,
                    body: &mut body,
                    upstream: &upstream,
                },
                overrides,
            )
            .now_or_never()
            .expect("no filter here waits");
        let mut headers = HeaderMap::new();
        chain.encode(&decoded, overrides, &mut headers);
        let order = headers
            .get_all("x-order")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect();
        (halt.is_some(), order)
    }

    fn overrides_with(name: &str, disabled: bool) -> RouteFilterConfigs {
        let configs = PerFilterConfigs::from([(
            name.to_owned(),
            FilterOverride {
                disabled,
                config: None,
            },
        )]);
        match RouteFilterConfigs::compile(&configs, RateLimits::default()) {
            Ok(Some(compiled)) => Arc::into_inner(compiled).unwrap_or_default(),
            _ => RouteFilterConfigs::default(),
        }
    }

    #[test]
    fn encoders_run_in_reverse_order_even_after_a_local_reply() {
        let chain = FilterChain::compile(&[
            filter("first", false, response_header("x-order", "first")),
            filter("rbac", false, deny_all()),
            filter("last", false, response_header("x-order", "last")),
        ])
        .expect("valid");
        let (refused, order) = run(&chain, Overrides::default());
        assert!(refused);
        assert_eq!(order, ["last", "first"]);
    }

    #[test]
    fn a_route_disables_a_filter_and_enables_a_disabled_one() {
        let chain = FilterChain::compile(&[filter("rbac", false, deny_all())]).expect("valid");
        assert!(run(&chain, Overrides::default()).0);
        let off = overrides_with("rbac", true);
        assert!(!run(&chain, Overrides::new(Some(&off), None, None)).0);

        let opt_in = FilterChain::compile(&[filter("rbac", true, deny_all())]).expect("valid");
        assert!(!run(&opt_in, Overrides::default()).0, "disabled by default");
        let on = overrides_with("rbac", false);
        assert!(run(&opt_in, Overrides::new(None, Some(&on), None)).0);
    }

    #[test]
    fn the_most_specific_level_decides() {
        let chain = FilterChain::compile(&[filter("rbac", false, deny_all())]).expect("valid");
        let off = overrides_with("rbac", true);
        let on = overrides_with("rbac", false);
        assert!(run(&chain, Overrides::new(Some(&on), Some(&off), None)).0);
        assert!(!run(&chain, Overrides::new(None, Some(&off), Some(&on))).0);
    }
}
