//! HTTP filter configurations -> [`HttpFilterConfig`], dispatched on the `@type` of each
//! filter's typed config.

use std::sync::Arc;

use xds_api::pb::google::protobuf::Any;

use super::error::{FieldError, FieldResult};
use super::extensions::RbacFilter;
use super::path::FieldPath;
use super::rbac::rbac_filter;
use crate::config::{Fault, HttpFilterConfig};

const RBAC: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
const FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

/// The filter a typed config configures, or `None` when mesh-host does not implement it.
pub(crate) fn http_filter_config(
    any: &Any,
    path: &FieldPath<'_>,
) -> FieldResult<Option<HttpFilterConfig>> {
    let url = any.type_url.as_str();
    if url.ends_with(RBAC) {
        let config: RbacFilter = any
            .to_msg()
            .map_err(|e| FieldError::invalid(path, format!("cannot decode: {e}")))?;
        return Ok(Some(HttpFilterConfig::Rbac(rbac_filter(config, path)?)));
    }
    // The CORS filter has no settings of its own: its policies live on routes.
    if url.ends_with(CORS) {
        return Ok(Some(HttpFilterConfig::Cors));
    }
    // A fault filter without settings injects nothing until a route configures it.
    if url.ends_with(FAULT) && any.value.is_empty() {
        return Ok(Some(HttpFilterConfig::Fault(Arc::new(Fault {
            delay: None,
            abort: None,
            headers: Vec::new(),
            upstream_cluster: None,
            max_active_faults: None,
        }))));
    }
    Ok(None)
}
