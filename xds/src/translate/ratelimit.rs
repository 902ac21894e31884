//! The global rate limit filter (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`) and
//! its `RateLimitPerRoute`.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3 as ratelimit;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3 as rl;

use super::common::{duration, header_value_option};
use super::error::{FieldError, FieldResult};
use super::ext_authz::grpc_service;
use super::filters::rate_limit_policies;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{GlobalRateLimit, GlobalRateLimitPerRoute, RequestType, VhRateLimits};

/// Envoy's default time allowed for the rate limit service.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

pub(super) fn global_rate_limit(
    mut m: rl::RateLimit,
    path: &FieldPath<'_>,
) -> FieldResult<GlobalRateLimit> {
    if m.domain.is_empty() {
        return Err(FieldError::missing(&path.field("domain")));
    }
    let service_path = path.field("rate_limit_service");
    let mut service = m
        .rate_limit_service
        .take()
        .ok_or_else(|| FieldError::missing(&service_path))?;
    let grpc_path = service_path.field("grpc_service");
    let target = grpc_service(
        service
            .grpc_service
            .take()
            .ok_or_else(|| FieldError::missing(&grpc_path))?,
        None,
        &grpc_path,
    )?;
    use core::ApiVersion;
    match ApiVersion::try_from(service.transport_api_version) {
        Ok(ApiVersion::V3 | ApiVersion::Auto) => service.transport_api_version = 0,
        _ => {
            return Err(FieldError::invalid(
                &service_path.field("transport_api_version"),
                "only V3 is supported",
            ));
        }
    }
    reject_unsupported(&service, &service_path)?;
    let request_type = match std::mem::take(&mut m.request_type).as_str() {
        "" | "both" => RequestType::Both,
        "internal" => RequestType::Internal,
        "external" => RequestType::External,
        other => {
            return Err(FieldError::invalid(
                &path.field("request_type"),
                format!("\"{other}\" is not internal, external or both"),
            ));
        }
    };
    let timeout = m
        .timeout
        .take()
        .map(|t| duration(&t, &path.field("timeout")))
        .transpose()?
        .unwrap_or(DEFAULT_TIMEOUT);
    let status =
        |s: Option<envoy_types::pb::envoy::r#type::v3::HttpStatus>, field: &str, default: u16| {
            match s {
                Some(s) if s.code != 0 => u16::try_from(s.code)
                    .ok()
                    .filter(|c| (100..600).contains(c))
                    .ok_or_else(|| FieldError::invalid(&path.field(field), "not an HTTP status")),
                _ => Ok(default),
            }
        };
    use ratelimit::XRateLimitHeadersRfcVersion as X;
    let x_ratelimit_headers = match X::try_from(std::mem::take(&mut m.enable_x_ratelimit_headers)) {
        Ok(X::Off) => false,
        Ok(X::DraftVersion03) => true,
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("enable_x_ratelimit_headers"),
                "unknown value",
            ));
        }
    };
    let headers_path = path.field("response_headers_to_add");
    let result = GlobalRateLimit {
        domain: std::mem::take(&mut m.domain),
        stage: std::mem::take(&mut m.stage),
        request_type,
        timeout: if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout
        },
        service: target,
        failure_mode_deny: std::mem::take(&mut m.failure_mode_deny),
        rate_limited_as_resource_exhausted: std::mem::take(
            &mut m.rate_limited_as_resource_exhausted,
        ),
        x_ratelimit_headers,
        disable_x_envoy_ratelimited_header: std::mem::take(
            &mut m.disable_x_envoy_ratelimited_header,
        ),
        rate_limited_status: status(m.rate_limited_status.take(), "rate_limited_status", 429)?,
        response_headers_to_add: std::mem::take(&mut m.response_headers_to_add)
            .into_iter()
            .enumerate()
            .map(|(i, o)| header_value_option(o, &headers_path.index(i)))
            .collect::<FieldResult<Vec<_>>>()?,
        status_on_error: status(m.status_on_error.take(), "status_on_error", 500)?,
        rate_limits: rate_limit_policies(
            std::mem::take(&mut m.rate_limits),
            &path.field("rate_limits"),
        )?,
    };
    // Statistics only.
    m.stat_prefix.clear();
    reject_unsupported(&m, path)?;
    Ok(result)
}

pub(super) fn global_rate_limit_per_route(
    mut m: rl::RateLimitPerRoute,
    path: &FieldPath<'_>,
) -> FieldResult<GlobalRateLimitPerRoute> {
    use rl::rate_limit_per_route::VhRateLimitsOptions as V;
    let vh_rate_limits = match V::try_from(std::mem::take(&mut m.vh_rate_limits)) {
        Ok(V::Override) => VhRateLimits::Override,
        Ok(V::Include) => VhRateLimits::Include,
        Ok(V::Ignore) => VhRateLimits::Ignore,
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("vh_rate_limits"),
                "unknown value",
            ));
        }
    };
    use rl::rate_limit_per_route::OverrideOptions as O;
    match O::try_from(m.override_option) {
        Ok(O::Default | O::OverridePolicy) => m.override_option = 0,
        _ => {
            return Err(FieldError::unsupported(&path.field("override_option")));
        }
    }
    let result = GlobalRateLimitPerRoute {
        vh_rate_limits,
        domain: std::mem::take(&mut m.domain),
        rate_limits: rate_limit_policies(
            std::mem::take(&mut m.rate_limits),
            &path.field("rate_limits"),
        )?,
    };
    reject_unsupported(&m, path)?;
    Ok(result)
}
