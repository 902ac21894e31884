//! The router filter's own settings (`envoy.extensions.filters.http.router.v3.Router`).

use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;

use super::error::{FieldError, FieldResult};
use super::extensions::decode_any;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::field_policy::tolerate_fields;

/// Checks the router filter at `path` (an `http_filters` entry) and returns its
/// `suppress_envoy_headers`: statistics and telemetry have no effect here; anything else is
/// refused by name.
pub(crate) fn router_filter(filter: &hcm::HttpFilter, path: &FieldPath<'_>) -> FieldResult<bool> {
    use hcm::http_filter::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
        return Ok(false);
    };
    let at = path.field("typed_config");
    let mut router: Router =
        decode_any(any).map_err(|e| FieldError::invalid(&at, format!("cannot decode: {e}")))?;
    let suppress_envoy_headers = std::mem::take(&mut router.suppress_envoy_headers);
    tolerate_fields!(router, "Router":
        dynamic_stats,
        start_child_span,
        upstream_log,
        upstream_log_options,
        suppress_grpc_request_failure_code_stats,
    );
    reject_unsupported(&router, &at)?;
    Ok(suppress_envoy_headers)
}
