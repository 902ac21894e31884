//! Envoy route matching: a [`RouteTable`] compiled once from a [`RouteConfig`] answers, for
//! each request, what Envoy's router would do with it ([`Decision`]).
//!
//! - [`domains`]: virtual host by authority (exact, `*.suffix`, `prefix.*`, `*`).
//! - [`matching`]: routes in first-match order (path, case, headers, query, gRPC).
//! - [`actions`]: path rewrites, redirect locations, weighted clusters.
//! - [`headers`]: header mutations, in Envoy's order of levels.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use mesh_host::routing::{Decision, RouteTable};
//! use mesh_xds::config::{
//!     ClusterSpecifier, ForwardAction, HeaderMutations, PathMatch, Route, RouteAction,
//!     RouteConfig, RouteMatch, VirtualHost,
//! };
//!
//! let forward = ForwardAction {
//!     cluster: ClusterSpecifier::Cluster("hello".into()),
//!     prefix_rewrite: None,
//!     regex_rewrite: None,
//!     host_rewrite_literal: None,
//!     timeout: None,
//!     timeout_configured: false,
//!     idle_timeout: None,
//!     max_stream_duration: None,
//!     grpc_timeout_header_max: None,
//!     retry_policy: None,
//!     rate_limits: Vec::new(),
//!     include_vh_rate_limits: false,
//!     hash_policy: vec![],
//!     attempt_count: Default::default(),
//! };
//! let config = RouteConfig {
//!     name: "local".into(),
//!     ignore_port_in_host_matching: false,
//!     virtual_hosts: vec![VirtualHost {
//!         name: "all".into(),
//!         domains: vec!["*".into()],
//!         routes: vec![Route {
//!             name: "root".into(),
//!             r#match: RouteMatch {
//!                 path: PathMatch::Prefix("/".into()),
//!                 case_sensitive: true,
//!                 headers: vec![],
//!                 query_parameters: vec![],
//!                 grpc: false,
//!             },
//!             action: RouteAction::Forward(Box::new(forward)),
//!             headers: HeaderMutations::default(),
//!             typed_per_filter_config: Default::default(),
//!             tracing: Default::default(),
//!         }],
//!         headers: HeaderMutations::default(),
//!         retry_policy: None,
//!         typed_per_filter_config: Default::default(),
//!         rate_limits: Vec::new(),
//!     }],
//!     headers: HeaderMutations::default(),
//!     typed_per_filter_config: Default::default(),
//! };
//! let table = RouteTable::new(Arc::new(config))?;
//! let (parts, ()) = http::Request::get("/greet").body(())?.into_parts();
//! match table.select(&parts, 0) {
//!     Decision::Forward(forward) => assert_eq!(forward.cluster, "hello"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod actions;
mod domains;
mod forward;
mod headers;
mod matching;

use std::sync::Arc;

use mesh_xds::config::{
    PerFilterConfigs, RedirectAction, RouteAction, RouteConfig, RouteTracing, VirtualHost,
};

use self::actions::redirect_location;
use self::domains::DomainIndex;
use self::forward::CompiledForward;
use self::matching::RouteMatcher;
use crate::filters::{FilterError, Overrides, RateLimits, RouteFilterConfigs};
use crate::shared::RequestView;

pub use self::forward::ForwardDecision;
pub use self::headers::{HeaderEdits, HeaderMutationChain};

/// Why a route configuration cannot be compiled. Envoy rejects the same configurations.
#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    /// Two virtual hosts (or one, twice) list the same domain, or two list `*`.
    #[error(
        "route configuration {route_config}: domain \"{domain}\" appears more than once; \
         list each domain in exactly one virtual host"
    )]
    DuplicateDomain {
        /// The route configuration.
        route_config: String,
        /// The domain, lower-cased.
        domain: String,
    },
    /// A header mutation names a header that cannot be added or removed.
    #[error("route configuration {route_config}: header \"{header}\": {reason}")]
    InvalidHeader {
        /// The route configuration.
        route_config: String,
        /// The header name as configured.
        header: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `host_rewrite_literal` is not a valid authority.
    #[error(
        "route configuration {route_config}: host_rewrite_literal \"{host}\" is not a valid \
         authority"
    )]
    InvalidHostRewrite {
        /// The route configuration.
        route_config: String,
        /// The configured value.
        host: String,
    },
    /// A `typed_per_filter_config` entry cannot be used.
    #[error("route configuration {route_config}: typed_per_filter_config: {error}")]
    FilterConfig {
        /// The route configuration.
        route_config: String,
        /// What is wrong.
        error: FilterError,
    },
    /// `weighted_clusters` weights do not add up to `total_weight`, or add up to 0.
    #[error(
        "route configuration {route_config}: route \"{route}\": weighted cluster weights must \
         add up to total_weight and to more than 0"
    )]
    InvalidWeights {
        /// The route configuration.
        route_config: String,
        /// The route's name or index.
        route: String,
    },
}

/// What to do with a request: Envoy's router outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward to a cluster.
    Forward(ForwardDecision),
    /// Answer with this status and body (`direct_response`).
    DirectResponse {
        /// HTTP status.
        status: u16,
        /// Body, if any.
        body: Option<Arc<[u8]>>,
        /// The route's response header mutations, which Envoy applies to its local replies too.
        headers: Arc<HeaderMutationChain>,
    },
    /// Answer with a redirect.
    Redirect {
        /// The `Location` header value.
        location: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The route's response header mutations.
        headers: Arc<HeaderMutationChain>,
    },
    /// No virtual host or no route matches: Envoy answers 404.
    NoRoute,
    /// A route matched but names no cluster (`cluster_header` absent or empty): Envoy answers
    /// 503 (`cluster_not_found_response_code`'s default), with the route's response header
    /// mutations.
    NoCluster {
        /// The route's response header mutations.
        headers: Arc<HeaderMutationChain>,
    },
}

/// A route configuration compiled for lookups: immutable, shared between requests.
#[derive(Debug)]
pub struct RouteTable {
    domains: DomainIndex,
    vhosts: Vec<CompiledVhost>,
    filters: Option<Arc<RouteFilterConfigs>>,
}

#[derive(Debug)]
struct CompiledVhost {
    name: Arc<str>,
    routes: Vec<CompiledRoute>,
    filters: Option<Arc<RouteFilterConfigs>>,
}

#[derive(Debug)]
struct CompiledRoute {
    name: Arc<str>,
    matcher: RouteMatcher,
    action: CompiledAction,
    filters: Option<Arc<RouteFilterConfigs>>,
    /// The route's decorator and tracing overrides, when it has any.
    tracing: Option<Arc<RouteTracing>>,
}

#[derive(Debug)]
enum CompiledAction {
    Forward(Box<CompiledForward>),
    DirectResponse {
        status: u16,
        body: Option<Arc<[u8]>>,
        headers: Arc<HeaderMutationChain>,
    },
    Redirect {
        redirect: RedirectAction,
        headers: Arc<HeaderMutationChain>,
    },
}

impl RouteTable {
    /// Compiles `config`: domain maps, route matchers, parsed header names and values.
    ///
    /// `most_specific_header_mutations_wins` is not carried by the xds layer and is taken as
    /// `false`, Envoy's default.
    pub fn new(config: Arc<RouteConfig>) -> Result<Self, RouteTableError> {
        let config_headers = Arc::new(HeaderEdits::compile(&config.headers, &config.name)?);
        let filters = per_filter(
            &config.typed_per_filter_config,
            RateLimits::default(),
            &config.name,
        )?;
        let mut domains = DomainIndex::new(config.ignore_port_in_host_matching);
        let mut vhosts = Vec::with_capacity(config.virtual_hosts.len());
        for (index, vhost) in config.virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                domains.insert(domain, index, &config.name)?;
            }
            vhosts.push(compile_vhost(vhost, &config.name, &config_headers)?);
        }
        Ok(Self {
            domains,
            vhosts,
            filters,
        })
    }

    /// Routes one request.
    ///
    /// `random` picks among weighted clusters: the bucket is `random % total_weight`, as in
    /// Envoy (which uses the stream's random value); callers pass `rand::random()`.
    pub fn select(&self, request: &http::request::Parts, random: u64) -> Decision {
        self.route(request, random).0
    }

    /// Routes one request, with the per-route HTTP filter configurations of the route that
    /// matched (none when no route matched, as in Envoy).
    pub fn route(&self, request: &http::request::Parts, random: u64) -> (Decision, Overrides<'_>) {
        let view = RequestView::new(request);
        let Some(vhost) = self
            .domains
            .find(view.authority.map(str::as_bytes))
            .and_then(|index| self.vhosts.get(index))
        else {
            return (Decision::NoRoute, Overrides::default());
        };
        let Some((index, route, matched)) = vhost
            .routes
            .iter()
            .enumerate()
            .find_map(|(i, route)| route.matcher.matches(&view).map(|m| (i, route, m)))
        else {
            return (Decision::NoRoute, Overrides::default());
        };
        let overrides = Overrides::new(
            route.filters.as_deref(),
            vhost.filters.as_deref(),
            self.filters.as_deref(),
        );
        let decision = match &route.action {
            CompiledAction::Forward(forward) => forward
                .decide(
                    &view,
                    matched,
                    random,
                    &vhost.name,
                    &route.name,
                    index,
                    route.tracing.as_ref(),
                )
                .map_or_else(
                    || Decision::NoCluster {
                        headers: forward.local_reply_headers(),
                    },
                    Decision::Forward,
                ),
            CompiledAction::DirectResponse {
                status,
                body,
                headers,
            } => Decision::DirectResponse {
                status: *status,
                body: body.clone(),
                headers: headers.clone(),
            },
            CompiledAction::Redirect { redirect, headers } => Decision::Redirect {
                location: redirect_location(redirect, &view, matched),
                status: redirect.response_code,
                headers: headers.clone(),
            },
        };
        (decision, overrides)
    }
}

fn per_filter(
    configs: &PerFilterConfigs,
    rate_limits: RateLimits,
    route_config: &str,
) -> Result<Option<Arc<RouteFilterConfigs>>, RouteTableError> {
    RouteFilterConfigs::compile(configs, rate_limits).map_err(|error| {
        RouteTableError::FilterConfig {
            route_config: route_config.to_owned(),
            error,
        }
    })
}

/// A route's name for error messages: its name, or `#<index>` when it has none.
fn route_label(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("#{index}")
    } else {
        name.to_owned()
    }
}

fn compile_vhost(
    vhost: &VirtualHost,
    route_config: &str,
    config_headers: &Arc<HeaderEdits>,
) -> Result<CompiledVhost, RouteTableError> {
    let vhost_headers = Arc::new(HeaderEdits::compile(&vhost.headers, route_config)?);
    let routes = vhost
        .routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let route_headers = Arc::new(HeaderEdits::compile(&route.headers, route_config)?);
            // Most specific first: Envoy evaluates route, then virtual host, then configuration.
            let levels = [route_headers, vhost_headers.clone(), config_headers.clone()];
            let name = route.name.clone();
            let chain = || Arc::new(HeaderMutationChain::new(levels.iter().cloned()));
            let action = match &route.action {
                RouteAction::DirectResponse { status, body } => CompiledAction::DirectResponse {
                    status: *status,
                    body: body.clone(),
                    headers: chain(),
                },
                RouteAction::Redirect(redirect) => CompiledAction::Redirect {
                    redirect: redirect.clone(),
                    headers: chain(),
                },
                RouteAction::Forward(forward) => {
                    CompiledAction::Forward(Box::new(CompiledForward::new(
                        forward,
                        levels,
                        route_config,
                        &route_label(&name, index),
                    )?))
                }
            };
            Ok(CompiledRoute {
                tracing: (!route.tracing.is_empty()).then(|| Arc::new(route.tracing.clone())),
                name: name.into(),
                matcher: RouteMatcher::new(&route.r#match),
                action,
                filters: per_filter(
                    &route.typed_per_filter_config,
                    match &route.action {
                        RouteAction::Forward(forward) => RateLimits {
                            policies: forward.rate_limits.clone(),
                            include_vh: forward.include_vh_rate_limits,
                        },
                        _ => RateLimits::default(),
                    },
                    route_config,
                )?,
            })
        })
        .collect::<Result<_, RouteTableError>>()?;
    Ok(CompiledVhost {
        name: vhost.name.as_str().into(),
        routes,
        filters: per_filter(
            &vhost.typed_per_filter_config,
            RateLimits {
                policies: vhost.rate_limits.clone(),
                include_vh: false,
            },
            route_config,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RouteTable>();
        assert_send_sync::<Decision>();
    }
}
