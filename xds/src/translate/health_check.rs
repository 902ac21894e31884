//! `config.core.v3.HealthCheck` -> [`HealthCheck`]: HTTP, gRPC and TCP active checks.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};

use super::common::{duration, header_value_options};
use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::{reject_unsupported, unsupported_variant};
use crate::config::{HealthCheck, HealthCheckKind};
use crate::field_policy::tolerate_fields;

/// Envoy's `no_traffic_interval` default.
const NO_TRAFFIC_INTERVAL: Duration = Duration::from_secs(60);

/// The cluster's `health_checks` (at most one is supported).
pub(super) fn health_checks(
    checks: Vec<core::HealthCheck>,
    path: &FieldPath<'_>,
) -> FieldResult<Option<HealthCheck>> {
    if checks.len() > 1 {
        return Err(FieldError::invalid(
            &path.index(1),
            "only one health check per cluster is supported",
        ));
    }
    checks
        .into_iter()
        .next()
        .map(|check| health_check(check, &path.index(0)))
        .transpose()
}

fn health_check(mut h: core::HealthCheck, path: &FieldPath<'_>) -> FieldResult<HealthCheck> {
    let required = |value: Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        let at = path.field(field);
        let value = value.ok_or_else(|| FieldError::missing(&at))?;
        let value = duration(&value, &at)?;
        if value.is_zero() {
            return Err(FieldError::invalid(&at, "must be greater than 0"));
        }
        Ok(value)
    };
    let optional = |value: Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        value.map(|d| duration(&d, &path.field(field))).transpose()
    };
    let threshold = |value: Option<envoy_types::pb::google::protobuf::UInt32Value>, field: &str| {
        value
            .map(|v| v.value)
            .ok_or_else(|| FieldError::missing(&path.field(field)))
    };
    let kind = kind(h.health_checker.take(), path)?;
    let result = HealthCheck {
        timeout: required(h.timeout.take(), "timeout")?,
        interval: required(h.interval.take(), "interval")?,
        interval_jitter: optional(h.interval_jitter.take(), "interval_jitter")?.unwrap_or_default(),
        interval_jitter_percent: std::mem::take(&mut h.interval_jitter_percent),
        initial_jitter: optional(h.initial_jitter.take(), "initial_jitter")?.unwrap_or_default(),
        unhealthy_threshold: threshold(h.unhealthy_threshold.take(), "unhealthy_threshold")?,
        healthy_threshold: threshold(h.healthy_threshold.take(), "healthy_threshold")?,
        no_traffic_interval: optional(h.no_traffic_interval.take(), "no_traffic_interval")?
            .unwrap_or(NO_TRAFFIC_INTERVAL),
        no_traffic_healthy_interval: optional(
            h.no_traffic_healthy_interval.take(),
            "no_traffic_healthy_interval",
        )?,
        unhealthy_interval: optional(h.unhealthy_interval.take(), "unhealthy_interval")?,
        unhealthy_edge_interval: optional(
            h.unhealthy_edge_interval.take(),
            "unhealthy_edge_interval",
        )?,
        healthy_edge_interval: optional(h.healthy_edge_interval.take(), "healthy_edge_interval")?,
        kind,
    };
    // Connection reuse and the event logs tune or report the checks; they do not change a
    // verdict.
    tolerate_fields!(h, "HealthCheck":
        reuse_connection,
        event_log_path,
        event_logger,
        event_service,
        always_log_health_check_failures,
        always_log_health_check_success,
    );
    reject_unsupported(&h, path)?;
    Ok(result)
}

fn kind(
    checker: Option<core::health_check::HealthChecker>,
    path: &FieldPath<'_>,
) -> FieldResult<HealthCheckKind> {
    use core::health_check::HealthChecker;
    match checker {
        Some(HealthChecker::HttpHealthCheck(http)) => {
            http_check(http, &path.field("http_health_check"))
        }
        Some(HealthChecker::GrpcHealthCheck(mut grpc)) => {
            let at = path.field("grpc_health_check");
            let service_name = std::mem::take(&mut grpc.service_name);
            let authority = Some(std::mem::take(&mut grpc.authority)).filter(|a| !a.is_empty());
            reject_unsupported(&grpc, &at)?;
            Ok(HealthCheckKind::Grpc {
                service_name,
                authority,
            })
        }
        Some(HealthChecker::TcpHealthCheck(mut tcp)) => {
            let at = path.field("tcp_health_check");
            let send = match tcp.send.take() {
                Some(payload) => payload_bytes(payload, &at.field("send"))?,
                None => Vec::new(),
            };
            let receive_path = at.field("receive");
            let receive = std::mem::take(&mut tcp.receive)
                .into_iter()
                .enumerate()
                .map(|(i, p)| payload_bytes(p, &receive_path.index(i)))
                .collect::<FieldResult<Vec<_>>>()?;
            reject_unsupported(&tcp, &at)?;
            Ok(HealthCheckKind::Tcp { send, receive })
        }
        Some(other) => {
            let rest = core::HealthCheck {
                health_checker: Some(other),
                ..Default::default()
            };
            Err(unsupported_variant(&rest, path))
        }
        None => Err(FieldError::missing(&path.field("health_checker"))),
    }
}

fn http_check(
    mut http: core::health_check::HttpHealthCheck,
    path: &FieldPath<'_>,
) -> FieldResult<HealthCheckKind> {
    let check_path = std::mem::take(&mut http.path);
    if check_path.is_empty() {
        return Err(FieldError::missing(&path.field("path")));
    }
    let ranges = |list: Vec<Int64Range>, field: &str| -> FieldResult<Vec<(u16, u16)>> {
        list.into_iter()
            .map(|r| {
                let start = u16::try_from(r.start)
                    .ok()
                    .filter(|s| (100..600).contains(s));
                let end = u16::try_from(r.end)
                    .ok()
                    .filter(|e| (101..=600).contains(e));
                match (start, end) {
                    (Some(start), Some(end)) if start < end => Ok((start, end)),
                    _ => Err(FieldError::invalid(
                        &path.field(field),
                        format!("[{}, {}) is not a range of HTTP statuses", r.start, r.end),
                    )),
                }
            })
            .collect()
    };
    let mut expected_statuses = ranges(
        std::mem::take(&mut http.expected_statuses),
        "expected_statuses",
    )?;
    if expected_statuses.is_empty() {
        expected_statuses.push((200, 201));
    }
    let retriable_statuses = ranges(
        std::mem::take(&mut http.retriable_statuses),
        "retriable_statuses",
    )?;
    let http2 = match CodecClientType::try_from(std::mem::take(&mut http.codec_client_type)) {
        Ok(CodecClientType::Http1) => false,
        Ok(CodecClientType::Http2) => true,
        Ok(CodecClientType::Http3) | Err(_) => {
            return Err(FieldError::unsupported(&path.field("codec_client_type")));
        }
    };
    let method = match core::RequestMethod::try_from(std::mem::take(&mut http.method)) {
        Ok(core::RequestMethod::MethodUnspecified | core::RequestMethod::Get) => "GET",
        Ok(core::RequestMethod::Head) => "HEAD",
        Ok(core::RequestMethod::Post) => "POST",
        Ok(core::RequestMethod::Put) => "PUT",
        Ok(core::RequestMethod::Delete) => "DELETE",
        Ok(core::RequestMethod::Options) => "OPTIONS",
        Ok(core::RequestMethod::Trace) => "TRACE",
        Ok(core::RequestMethod::Patch) => "PATCH",
        Ok(core::RequestMethod::Connect) | Err(_) => {
            return Err(FieldError::invalid(
                &path.field("method"),
                "not a health check method",
            ));
        }
    };
    let request_headers_to_add = header_value_options(
        std::mem::take(&mut http.request_headers_to_add),
        &path.field("request_headers_to_add"),
    )?;
    let request_headers_to_remove = std::mem::take(&mut http.request_headers_to_remove)
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let host = Some(std::mem::take(&mut http.host)).filter(|h| !h.is_empty());
    reject_unsupported(&http, path)?;
    Ok(HealthCheckKind::Http {
        host,
        path: check_path,
        method: method.to_owned(),
        expected_statuses,
        retriable_statuses,
        http2,
        request_headers_to_add,
        request_headers_to_remove,
    })
}

/// A payload: hex text or bytes.
fn payload_bytes(
    payload: core::health_check::Payload,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<u8>> {
    use core::health_check::payload::Payload;
    match payload.payload {
        Some(Payload::Binary(bytes)) => Ok(bytes),
        Some(Payload::Text(hex)) => {
            decode_hex(&hex).ok_or_else(|| FieldError::invalid(&path.field("text"), "not hex"))
        }
        None => Err(FieldError::missing(&path.field("payload"))),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
