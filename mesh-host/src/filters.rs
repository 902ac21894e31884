//! Envoy's HTTP filters, as an inbound request runs them (Envoy's
//! `source/extensions/filters/http`): each filter is a module that owns its
//! compiled configuration, what it does to a request head on the way in and
//! to a response head on the way out, and its tests. [`FilterChain`] runs a
//! list of them, with each filter's per-route configuration looked up most
//! specific first (route, virtual host, route configuration).
//!
//! A chain comes from a connection manager's `http_filters` (xDS or a
//! bootstrap) or from a workload's policy in the mesh config, which compiles
//! into the same filters, so the two sources behave the same.

mod api_key_auth;
mod basic_auth;
mod chain;
mod cors;
mod credentials;
mod descriptors;
mod ext_authz;
mod fault;
mod grpc_serve;
mod header_mutation;
mod jwt_authn;
mod local_ratelimit;
mod ratelimit;
mod rbac;
mod response_edits;
mod upstream_call;

pub use chain::{
    Decoded, FilterChain, FilterError, FilterRequest, Halt, Overrides, RateLimits,
    RouteFilterConfigs,
};
pub(crate) use upstream_call::ClusterChannel;
