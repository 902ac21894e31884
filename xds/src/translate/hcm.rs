//! The HTTP connection manager network filter and its HTTP filters.

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::Any;

use super::access_log::access_logs;
use super::common::{timeout, u32_or};
use super::connection_options::connection_options;
use super::error::{FieldError, FieldResult};
use super::extensions::{ROUTER_TYPE_URL, decode_any};
use super::filters::http_filter_config;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use super::route::route_config;
use super::router::router_filter;
use super::tracing::tracing;
use crate::config::{
    CodecType, EscapedSlashes, HttpConnectionManager, HttpFilter, HttpFilterConfig,
    RequestNormalization, RouteSource, ServerHeaderTransformation, UnderscoresAction,
};
use crate::field_policy::tolerate_fields;

/// Envoy's `stream_idle_timeout` default.
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Filters a gateway configuration carries only for telemetry, by type URL suffix or by
/// name (Istio's filters arrive wrapped in `TypedStruct`): they never change a request.
const TELEMETRY_FILTERS: &[&str] = &[
    "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
    "envoy.filters.http.grpc_stats",
    "istio.stats",
    "istio.metadata_exchange",
    "istio.alpn",
];

fn is_telemetry(name: &str, type_url: &str) -> bool {
    TELEMETRY_FILTERS
        .iter()
        .any(|known| name == *known || (!type_url.is_empty() && type_url.ends_with(known)))
}

/// Filters already reported as having no effect, so each is logged once per process.
static NO_EFFECT_LOGGED: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

fn log_no_effect_once(filter: &str, why: &str) {
    let first = NO_EFFECT_LOGGED
        .lock()
        .map(|mut seen| seen.insert(filter.to_owned()))
        .unwrap_or(false);
    if first {
        ::tracing::info!(
            filter,
            "HTTP filter has no effect on this data plane: {why}"
        );
    }
}

/// Decodes and translates an `HttpConnectionManager` network filter config.
pub(crate) fn http_connection_manager(
    any: &Any,
    path: &FieldPath<'_>,
) -> FieldResult<HttpConnectionManager> {
    let m: hcm::HttpConnectionManager = decode_any(any).map_err(|e| {
        FieldError::invalid(path, format!("cannot decode HttpConnectionManager: {e}"))
    })?;
    translate(m, path)
}

fn translate(
    mut m: hcm::HttpConnectionManager,
    path: &FieldPath<'_>,
) -> FieldResult<HttpConnectionManager> {
    use hcm::http_connection_manager::{CodecType as Codec, RouteSpecifier};
    let route = match m.route_specifier.take() {
        Some(RouteSpecifier::Rds(rds)) => {
            if rds.route_config_name.is_empty() {
                return Err(FieldError::missing(
                    &path.field("rds").field("route_config_name"),
                ));
            }
            RouteSource::Rds {
                route_config_name: rds.route_config_name,
            }
        }
        Some(RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(std::sync::Arc::new(
            route_config(rc, &path.field("route_config"))?,
        )),
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            return Err(FieldError::unsupported(&path.field("scoped_routes")));
        }
        None => return Err(FieldError::missing(&path.field("route_specifier"))),
    };
    let codec = match Codec::try_from(std::mem::take(&mut m.codec_type)) {
        Ok(Codec::Auto) => CodecType::Auto,
        Ok(Codec::Http1) => CodecType::Http1,
        Ok(Codec::Http2) => CodecType::Http2,
        Ok(Codec::Http3) => {
            return Err(FieldError::unsupported(
                &path.field("codec_type").field("HTTP3"),
            ));
        }
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("codec_type"),
                "unknown value",
            ));
        }
    };
    let (http_filters, suppress_envoy_headers) = http_filters(
        std::mem::take(&mut m.http_filters),
        &path.field("http_filters"),
    )?;
    let stream_idle_timeout = timeout(
        m.stream_idle_timeout.take().as_ref(),
        Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        &path.field("stream_idle_timeout"),
    )?;
    let request_timeout = timeout(
        m.request_timeout.take().as_ref(),
        None,
        &path.field("request_timeout"),
    )?;
    // Normalisation reads `headers_with_underscores_action` out of
    // `common_http_protocol_options` before the connection settings take that message.
    let normalization = normalization(&mut m, path)?;
    let connection = connection_options(&mut m, path)?;
    let server_header_transformation = server_header_transformation(
        std::mem::take(&mut m.server_header_transformation),
        &path.field("server_header_transformation"),
    )?;
    let access_logs = access_logs(std::mem::take(&mut m.access_log), &path.field("access_log"))?;
    let tracing = match m.tracing.take() {
        Some(t) => tracing(t, &path.field("tracing"))?,
        None => None,
    };
    let result = HttpConnectionManager {
        stat_prefix: std::mem::take(&mut m.stat_prefix),
        route,
        codec,
        stream_idle_timeout,
        request_timeout,
        max_request_headers_kb: u32_or(m.max_request_headers_kb.take(), 60),
        use_remote_address: m.use_remote_address.take().is_some_and(|b| b.value),
        xff_num_trusted_hops: std::mem::take(&mut m.xff_num_trusted_hops),
        skip_xff_append: std::mem::take(&mut m.skip_xff_append),
        suppress_envoy_headers,
        server_name: Some(std::mem::take(&mut m.server_name)).filter(|s| !s.is_empty()),
        server_header_transformation,
        http_filters,
        connection,
        normalization,
        access_logs,
        tracing,
    };
    tolerate_hcm_extras(&mut m, path)?;
    reject_unsupported(&m, path)?;
    Ok(result)
}

/// The request normalisation settings; `headers_with_underscores_action` lives in
/// `common_http_protocol_options`, which the rest of the translation reads afterwards.
fn normalization(
    m: &mut hcm::HttpConnectionManager,
    path: &FieldPath<'_>,
) -> FieldResult<RequestNormalization> {
    use hcm::http_connection_manager::PathWithEscapedSlashesAction as Escaped;
    let escaped_slashes =
        match Escaped::try_from(std::mem::take(&mut m.path_with_escaped_slashes_action)) {
            Ok(Escaped::ImplementationSpecificDefault | Escaped::KeepUnchanged) => {
                EscapedSlashes::Keep
            }
            Ok(Escaped::RejectRequest) => EscapedSlashes::Reject,
            Ok(Escaped::UnescapeAndRedirect) => EscapedSlashes::UnescapeAndRedirect,
            Ok(Escaped::UnescapeAndForward) => EscapedSlashes::UnescapeAndForward,
            Err(_) => {
                return Err(FieldError::invalid(
                    &path.field("path_with_escaped_slashes_action"),
                    "unknown value",
                ));
            }
        };
    let headers_with_underscores = match m.common_http_protocol_options.as_mut() {
        None => UnderscoresAction::Allow,
        Some(options) => {
            use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction as A;
            match A::try_from(std::mem::take(&mut options.headers_with_underscores_action)) {
                Ok(A::Allow) => UnderscoresAction::Allow,
                Ok(A::RejectRequest) => UnderscoresAction::Reject,
                Ok(A::DropHeader) => UnderscoresAction::Drop,
                Err(_) => {
                    return Err(FieldError::invalid(
                        &path
                            .field("common_http_protocol_options")
                            .field("headers_with_underscores_action"),
                        "unknown value",
                    ));
                }
            }
        }
    };
    Ok(RequestNormalization {
        normalize_path: m.normalize_path.take().is_some_and(|v| v.value),
        merge_slashes: std::mem::take(&mut m.merge_slashes),
        escaped_slashes,
        headers_with_underscores,
    })
}

fn server_header_transformation(
    value: i32,
    path: &FieldPath<'_>,
) -> FieldResult<ServerHeaderTransformation> {
    use hcm::http_connection_manager::ServerHeaderTransformation as Proto;
    match Proto::try_from(value) {
        Ok(Proto::Overwrite) => Ok(ServerHeaderTransformation::Overwrite),
        Ok(Proto::AppendIfAbsent) => Ok(ServerHeaderTransformation::AppendIfAbsent),
        Ok(Proto::PassThrough) => Ok(ServerHeaderTransformation::PassThrough),
        Err(_) => Err(FieldError::invalid(path, "unknown value")),
    }
}

/// Clears settings that are telemetry, protocol tuning or request-id handling: they do not
/// change which route or upstream a request reaches. Istio and Envoy Gateway set most of them.
fn tolerate_hcm_extras(
    m: &mut hcm::HttpConnectionManager,
    path: &FieldPath<'_>,
) -> FieldResult<()> {
    tolerate_fields!(m, "HttpConnectionManager":
        access_log_flush_interval,
        flush_access_log_on_new_request,
        access_log_options,
        generate_request_id,
        preserve_external_request_id,
        always_set_request_id_in_response,
        request_id_extension,
        delayed_close_timeout,
        drain_timeout,
        forward_client_cert_details,
        set_current_client_cert_details,
        upgrade_configs,
        stream_error_on_invalid_http_message,
        internal_address_config,
        proxy_100_continue,
    );
    if let Some(mut scheme) = m.scheme_header_transformation.take() {
        // mesh-host always sets :scheme from the upstream transport.
        scheme.match_upstream = false;
        reject_unsupported(&scheme, &path.field("scheme_header_transformation"))?;
    }
    Ok(())
}

/// Translates the HTTP filter chain: every filter before the router, in order, and the
/// router's `suppress_envoy_headers`. A filter that is neither implemented, telemetry only,
/// nor `is_optional` is refused by name.
fn http_filters(
    filters: Vec<hcm::HttpFilter>,
    path: &FieldPath<'_>,
) -> FieldResult<(Vec<HttpFilter>, bool)> {
    use hcm::http_filter::ConfigType;
    let last = filters.len().checked_sub(1);
    let mut chain = Vec::new();
    let mut saw_router = false;
    let mut suppress_envoy_headers = false;
    for (i, filter) in filters.into_iter().enumerate() {
        let at = path.index(i);
        let any = match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) => Some(any),
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(FieldError::unsupported(&at.field("config_discovery")));
            }
            None => None,
        };
        let type_url = any.map_or("", |any| any.type_url.as_str());
        let is_router = type_url == ROUTER_TYPE_URL
            || (type_url.is_empty() && filter.name == "envoy.filters.http.router");
        if is_router {
            suppress_envoy_headers = router_filter(&filter, &at)?;
            if Some(i) != last {
                return Err(FieldError::invalid(
                    &at,
                    "envoy.filters.http.router must be the last HTTP filter",
                ));
            }
            saw_router = true;
            continue;
        }
        let config = match any {
            _ if is_telemetry(&filter.name, type_url) => {
                log_no_effect_once(&filter.name, "it only produces telemetry");
                HttpFilterConfig::Telemetry
            }
            Some(any) => match http_filter_config(any, &at.field("typed_config"))? {
                Some(config) => config,
                None if filter.is_optional => {
                    log_no_effect_once(&filter.name, "optional and not implemented");
                    continue;
                }
                None => {
                    return Err(FieldError::invalid(
                        &at,
                        format!("HTTP filter {type_url} is not supported"),
                    ));
                }
            },
            None if filter.is_optional => continue,
            None => {
                return Err(FieldError::invalid(
                    &at,
                    format!("HTTP filter {} is not supported", filter.name),
                ));
            }
        };
        chain.push(HttpFilter {
            name: filter.name,
            disabled: filter.disabled,
            config,
        });
    }
    if !saw_router {
        return Err(FieldError::invalid(
            path,
            "envoy.filters.http.router must be the last HTTP filter",
        ));
    }
    Ok((chain, suppress_envoy_headers))
}
