//! `HttpConnectionManager.tracing` with the OpenTelemetry provider, and a route's
//! `decorator` and `tracing`: which requests are traced, what their spans say, and where the
//! spans go.

use super::ext_authz::GrpcServiceTarget;
use super::filters::Fraction;

/// A connection manager's tracing (`HttpConnectionManager.Tracing`) whose provider is
/// `envoy.tracers.opentelemetry`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracing {
    /// `client_sampling`: share of requests carrying `x-client-trace-id` that are traced
    /// (Envoy default 100 %).
    pub client_sampling: Fraction,
    /// `random_sampling`: share of the other requests that are traced (Envoy default 100 %).
    pub random_sampling: Fraction,
    /// `overall_sampling`: applied after the two above (Envoy default 100 %).
    pub overall_sampling: Fraction,
    /// `max_path_tag_length`: the `http.url` attribute is cut to this many bytes (default 256).
    pub max_path_tag_length: u32,
    /// `custom_tags`: attributes added to every span of the connection manager.
    pub custom_tags: Vec<CustomTag>,
    /// `operation`: the name of every server span, over the route's decorator (a literal).
    pub operation: Option<String>,
    /// `no_context_propagation` unset: `traceparent`/`tracestate` are written into the
    /// requests sent upstream.
    pub propagate_context: bool,
    /// Where finished spans go.
    pub provider: OpenTelemetry,
}

/// `envoy.config.trace.v3.OpenTelemetryConfig`: spans exported with OTLP over gRPC.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenTelemetry {
    /// The OTLP collector (`grpc_service.envoy_grpc`), reached through a cluster.
    pub collector: GrpcServiceTarget,
    /// The `service.name` resource attribute (`service_name`, default `unknown_service:envoy`).
    pub service_name: String,
    /// Spans kept while the collector is slow or away (`max_cache_size`, default 1024); more
    /// are dropped and counted.
    pub max_cache_size: u32,
}

/// `envoy.type.tracing.v3.CustomTag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTag {
    /// The attribute's name.
    pub tag: String,
    /// Where its value comes from.
    pub value: CustomTagValue,
}

/// Where a custom tag's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomTagValue {
    /// A fixed value.
    Literal(String),
    /// A request header; without it, `default_value` (no attribute when that is empty).
    RequestHeader {
        /// The header name, lower case.
        name: String,
        /// The value when the header is absent.
        default_value: String,
    },
    /// An environment variable of the host process, read when the configuration is
    /// compiled; without it, `default_value`.
    Environment {
        /// The variable.
        name: String,
        /// The value when it is unset.
        default_value: String,
    },
}

/// A route's tracing settings: its `decorator` and its `tracing` overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTracing {
    /// `decorator.operation`: the server span's name for requests on this route.
    pub operation: Option<String>,
    /// `tracing.client_sampling`, over the connection manager's.
    pub client_sampling: Option<Fraction>,
    /// `tracing.random_sampling`, over the connection manager's.
    pub random_sampling: Option<Fraction>,
    /// `tracing.overall_sampling`, over the connection manager's.
    pub overall_sampling: Option<Fraction>,
    /// `tracing.custom_tags`: added to the connection manager's; a tag of the same name
    /// replaces its.
    pub custom_tags: Vec<CustomTag>,
}

impl RouteTracing {
    /// Whether the route changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == RouteTracing::default()
    }
}
