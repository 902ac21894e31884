//! `HttpConnectionManager.tracing` (OpenTelemetry provider) -> [`Tracing`]; a route's
//! `decorator` and `tracing` -> [`RouteTracing`].

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::config::trace::v3 as trace;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager as hcm;
use envoy_types::pb::envoy::r#type::tracing::v3 as tags;
use envoy_types::pb::envoy::r#type::v3 as types;

use super::common::u32_or;
use super::error::{FieldError, FieldResult};
use super::ext_authz::grpc_service;
use super::extensions::decode_any;
use super::filters::fraction;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{CustomTag, CustomTagValue, Fraction, OpenTelemetry, RouteTracing, Tracing};
use crate::field_policy::{ignored, tolerate_fields};

/// The OpenTelemetry tracer's type URL.
const OPENTELEMETRY_TYPE_URL: &str =
    "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";

/// Envoy's `max_path_tag_length` default.
const DEFAULT_MAX_PATH_TAG_LENGTH: u32 = 256;

/// Envoy's `service_name` default.
const DEFAULT_SERVICE_NAME: &str = "unknown_service:envoy";

/// Envoy's `max_cache_size` default.
const DEFAULT_MAX_CACHE_SIZE: u32 = 1024;

/// A `Percent` (0 to 100, a double) as a share out of a million.
fn percent(value: Option<types::Percent>, path: &FieldPath<'_>) -> FieldResult<Fraction> {
    let Some(value) = value.map(|p| p.value) else {
        return Ok(Fraction::ALL);
    };
    if !(0.0..=100.0).contains(&value) {
        return Err(FieldError::invalid(
            &path.field("value"),
            format!("{value} is not a percentage between 0 and 100"),
        ));
    }
    Ok(Fraction {
        numerator: (value * 10_000.0).round() as u32,
        denominator: 1_000_000,
    })
}

/// Translates a connection manager's `tracing`. `None` when nothing would be exported: no
/// provider (Envoy's bootstrap-level tracers are not read), a provider other than
/// OpenTelemetry (it has no effect here, logged once), or an OpenTelemetry provider with
/// neither `grpc_service` nor `http_service` (Envoy then reports nothing).
pub(super) fn tracing(mut t: hcm::Tracing, path: &FieldPath<'_>) -> FieldResult<Option<Tracing>> {
    let client_sampling = percent(t.client_sampling.take(), &path.field("client_sampling"))?;
    let random_sampling = percent(t.random_sampling.take(), &path.field("random_sampling"))?;
    let overall_sampling = percent(t.overall_sampling.take(), &path.field("overall_sampling"))?;
    let max_path_tag_length = u32_or(t.max_path_tag_length.take(), DEFAULT_MAX_PATH_TAG_LENGTH);
    let custom_tags = custom_tags(
        std::mem::take(&mut t.custom_tags),
        &path.field("custom_tags"),
    )?;
    let operation = std::mem::take(&mut t.operation);
    if operation.contains('%') {
        return Err(FieldError::invalid(
            &path.field("operation"),
            "command operators in the operation name are not expanded; use a literal name",
        ));
    }
    let propagate_context = !std::mem::take(&mut t.no_context_propagation);
    let provider = t.provider.take();
    tolerate_fields!(t, "HttpConnectionManager.Tracing": verbose, spawn_upstream_span, upstream_operation);
    reject_unsupported(&t, path)?;
    let Some(provider) = provider else {
        return Ok(None);
    };
    let provider = match opentelemetry(provider, &path.field("provider"))? {
        Some(provider) => provider,
        None => return Ok(None),
    };
    Ok(Some(Tracing {
        client_sampling,
        random_sampling,
        overall_sampling,
        max_path_tag_length,
        custom_tags,
        operation: Some(operation).filter(|o| !o.is_empty()),
        propagate_context,
        provider,
    }))
}

/// The provider, when it is OpenTelemetry with a gRPC collector.
fn opentelemetry(
    provider: trace::tracing::Http,
    path: &FieldPath<'_>,
) -> FieldResult<Option<OpenTelemetry>> {
    let Some(trace::tracing::http::ConfigType::TypedConfig(any)) = provider.config_type else {
        return Err(FieldError::missing(&path.field("typed_config")));
    };
    if any.type_url != OPENTELEMETRY_TYPE_URL {
        ignored("HttpConnectionManager.Tracing", "provider");
        ::tracing::info!(
            provider = %provider.name,
            "tracing provider has no effect on this data plane: only envoy.tracers.opentelemetry exports spans"
        );
        return Ok(None);
    }
    let at = path.field("typed_config");
    let mut config: trace::OpenTelemetryConfig =
        decode_any(&any).map_err(|e| FieldError::invalid(&at, format!("cannot decode: {e}")))?;
    if config.http_service.is_some() {
        return Err(FieldError::unsupported(&at.field("http_service")));
    }
    if config.exporter.is_some() {
        return Err(FieldError::unsupported(&at.field("exporter")));
    }
    if config.sampler.is_some() {
        return Err(FieldError::unsupported(&at.field("sampler")));
    }
    let collector = match config.grpc_service.take() {
        Some(service) => Some(grpc_service(service, None, &at.field("grpc_service"))?),
        None => None,
    };
    let service_name = match std::mem::take(&mut config.service_name) {
        name if name.is_empty() => DEFAULT_SERVICE_NAME.to_owned(),
        name => name,
    };
    let max_cache_size = u32_or(config.max_cache_size.take(), DEFAULT_MAX_CACHE_SIZE);
    tolerate_fields!(config, "OpenTelemetryConfig":
        resource_detectors,
        set_telemetry_sdk_resource_attributes,
        set_service_name_resource_attribute,
        set_instrumentation_scope,
    );
    reject_unsupported(&config, &at)?;
    Ok(collector.map(|collector| OpenTelemetry {
        collector,
        service_name,
        max_cache_size,
    }))
}

/// `custom_tags`: literal, request header and environment tags; a metadata tag has no
/// effect (there is no metadata here to read it from); a formatted `value` is refused.
fn custom_tags(tags: Vec<tags::CustomTag>, path: &FieldPath<'_>) -> FieldResult<Vec<CustomTag>> {
    use tags::custom_tag::Type;
    let mut out = Vec::with_capacity(tags.len());
    for (i, tag) in tags.into_iter().enumerate() {
        let at = path.index(i);
        if tag.tag.is_empty() {
            return Err(FieldError::missing(&at.field("tag")));
        }
        let value = match tag.r#type {
            Some(Type::Literal(literal)) => CustomTagValue::Literal(literal.value),
            Some(Type::RequestHeader(header)) => CustomTagValue::RequestHeader {
                name: header.name.to_ascii_lowercase(),
                default_value: header.default_value,
            },
            Some(Type::Environment(env)) => CustomTagValue::Environment {
                name: env.name,
                default_value: env.default_value,
            },
            Some(Type::Metadata(_)) => {
                ignored("CustomTag", "metadata");
                continue;
            }
            Some(Type::Value(_)) => return Err(FieldError::unsupported(&at.field("value"))),
            None => return Err(FieldError::missing(&at.field("type"))),
        };
        out.push(CustomTag {
            tag: tag.tag,
            value,
        });
    }
    Ok(out)
}

/// A route's `decorator` and `tracing`.
pub(super) fn route_tracing(
    decorator: Option<route::Decorator>,
    tracing: Option<route::Tracing>,
    path: &FieldPath<'_>,
) -> FieldResult<RouteTracing> {
    let operation = match decorator {
        Some(decorator) if decorator.operation.is_empty() => {
            return Err(FieldError::missing(
                &path.field("decorator").field("operation"),
            ));
        }
        // `propagate` decides whether `x-envoy-decorator-operation` is sent upstream; no
        // x-envoy-* header is sent here either way.
        Some(decorator) => Some(decorator.operation),
        None => None,
    };
    let Some(mut t) = tracing else {
        return Ok(RouteTracing {
            operation,
            ..RouteTracing::default()
        });
    };
    let at = path.field("tracing");
    let result = RouteTracing {
        operation,
        client_sampling: fraction(t.client_sampling.take(), &at.field("client_sampling"))?,
        random_sampling: fraction(t.random_sampling.take(), &at.field("random_sampling"))?,
        overall_sampling: fraction(t.overall_sampling.take(), &at.field("overall_sampling"))?,
        custom_tags: custom_tags(std::mem::take(&mut t.custom_tags), &at.field("custom_tags"))?,
    };
    reject_unsupported(&t, &at)?;
    Ok(result)
}
