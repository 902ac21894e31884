//! `ExtAuthz` and `ExtAuthzPerRoute` -> [`ExtAuthz`], [`ExtAuthzPerRoute`]; the gRPC service
//! target shared with the global rate limit filter.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3 as ext_authz;
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;

use super::common::duration;
use super::error::{FieldError, FieldResult};
use super::filters::runtime_fraction;
use super::matcher::string_matcher;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{
    AuthzService, BufferSettings, ExtAuthz, ExtAuthzPerRoute, Fraction, GrpcServiceTarget,
    HttpAuthzService, StringMatcher,
};

/// Envoy's ext_authz timeout when `GrpcService.timeout` / `server_uri.timeout` is unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Envoy's default `:authority` for a gRPC service is its cluster name. Control planes name
/// clusters `httproute/default/backend/rule/0` or `outbound|9000||authz.ns.svc`, which the
/// HTTP/2 client here cannot send as they are (Envoy's codec does not check, and the `http`
/// crate refuses percent-encoding in an authority): each character outside RFC 3986's
/// unreserved set becomes `_`. Only a service that routes on `:authority` could tell, and
/// such a setup sets `authority`.
fn authority_of_cluster(cluster: &str) -> String {
    cluster
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' | '~' => c,
            _ => '_',
        })
        .collect()
}

/// `GrpcService` with an `envoy_grpc` target (`google_grpc` opens its own channels outside the
/// clusters and is refused).
pub(crate) fn grpc_service(
    mut service: core::GrpcService,
    default_timeout: Option<Duration>,
    path: &FieldPath<'_>,
) -> FieldResult<GrpcServiceTarget> {
    use core::grpc_service::TargetSpecifier as T;
    let mut envoy = match service.target_specifier.take() {
        Some(T::EnvoyGrpc(envoy)) => envoy,
        Some(T::GoogleGrpc(_)) => return Err(FieldError::unsupported(&path.field("google_grpc"))),
        None => return Err(FieldError::missing(&path.field("envoy_grpc"))),
    };
    let at = path.field("envoy_grpc");
    let cluster = std::mem::take(&mut envoy.cluster_name);
    if cluster.is_empty() {
        return Err(FieldError::missing(&at.field("cluster_name")));
    }
    let authority = match std::mem::take(&mut envoy.authority) {
        a if a.is_empty() => authority_of_cluster(&cluster),
        a => a,
    };
    if http::uri::Authority::try_from(authority.as_str()).is_err() {
        return Err(FieldError::invalid(
            &at.field("authority"),
            format!("\"{authority}\" is not a valid :authority"),
        ));
    }
    // Envoy's gRPC client adds x-envoy-* headers unless told not to; a service ignores them.
    envoy.skip_envoy_headers = false;
    envoy.max_receive_message_length = None;
    reject_unsupported(&envoy, &at)?;
    let timeout = match service.timeout.take() {
        Some(t) => Some(duration(&t, &path.field("timeout"))?).filter(|t| !t.is_zero()),
        None => default_timeout,
    };
    let initial_metadata = std::mem::take(&mut service.initial_metadata)
        .into_iter()
        .map(|h| (h.key.to_ascii_lowercase(), h.value))
        .collect();
    reject_unsupported(&service, path)?;
    Ok(GrpcServiceTarget {
        cluster,
        authority,
        timeout,
        initial_metadata,
    })
}

pub(super) fn ext_authz_filter(
    mut m: ext_authz::ExtAuthz,
    path: &FieldPath<'_>,
) -> FieldResult<ExtAuthz> {
    use ext_authz::ext_authz::Services as S;
    let service = match m.services.take() {
        Some(S::GrpcService(g)) => AuthzService::Grpc(grpc_service(
            g,
            Some(DEFAULT_TIMEOUT),
            &path.field("grpc_service"),
        )?),
        Some(S::HttpService(h)) => {
            AuthzService::Http(http_service(h, &path.field("http_service"))?)
        }
        None => return Err(FieldError::missing(&path.field("services"))),
    };
    use core::ApiVersion;
    match ApiVersion::try_from(m.transport_api_version) {
        Ok(ApiVersion::V3 | ApiVersion::Auto) => {}
        _ => {
            return Err(FieldError::invalid(
                &path.field("transport_api_version"),
                "only V3 is supported",
            ));
        }
    }
    m.transport_api_version = 0;
    let status_on_error = match m.status_on_error.take() {
        Some(s) if s.code != 0 => u16::try_from(s.code)
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| {
                FieldError::invalid(&path.field("status_on_error"), "not an HTTP status")
            })?,
        _ => 403,
    };
    let with_request_body = m.with_request_body.take().map(buffer_settings);
    let allowed_headers = list(m.allowed_headers.take(), &path.field("allowed_headers"))?;
    let disallowed_headers = list(
        m.disallowed_headers.take(),
        &path.field("disallowed_headers"),
    )?;
    let deny_at_disable = m
        .deny_at_disable
        .take()
        .and_then(|d| d.default_value)
        .is_some_and(|v| v.value);
    if m.clear_route_cache {
        return Err(FieldError::invalid(
            &path.field("clear_route_cache"),
            "the route is chosen before the filters run; re-routing after a check is not supported",
        ));
    }
    let result = ExtAuthz {
        service,
        failure_mode_allow: std::mem::take(&mut m.failure_mode_allow),
        failure_mode_allow_header_add: std::mem::take(&mut m.failure_mode_allow_header_add),
        status_on_error,
        with_request_body,
        allowed_headers,
        disallowed_headers,
        include_peer_certificate: std::mem::take(&mut m.include_peer_certificate),
        filter_enabled: runtime_fraction(m.filter_enabled.take(), &path.field("filter_enabled"))?
            .unwrap_or(Fraction::ALL),
        deny_at_disable,
        encode_raw_headers: std::mem::take(&mut m.encode_raw_headers),
    };
    // Statistics and tracing only.
    m.stat_prefix.clear();
    m.charge_cluster_response_stats = None;
    m.emit_filter_state_stats = false;
    m.emit_client_span = None;
    // Mutations a check answer asks for are applied as Envoy applies them without validation.
    m.validate_mutations = false;
    reject_unsupported(&m, path)?;
    Ok(result)
}

fn buffer_settings(b: ext_authz::BufferSettings) -> BufferSettings {
    BufferSettings {
        max_request_bytes: b.max_request_bytes,
        allow_partial_message: b.allow_partial_message,
        pack_as_bytes: b.pack_as_bytes,
    }
}

fn list(list: Option<ListStringMatcher>, path: &FieldPath<'_>) -> FieldResult<Vec<StringMatcher>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let at = path.field("patterns");
    list.patterns
        .into_iter()
        .enumerate()
        .map(|(i, m)| string_matcher(m, &at.index(i)))
        .collect()
}

fn http_service(
    mut h: ext_authz::HttpService,
    path: &FieldPath<'_>,
) -> FieldResult<HttpAuthzService> {
    let at = path.field("server_uri");
    let mut uri = h
        .server_uri
        .take()
        .ok_or_else(|| FieldError::missing(&at))?;
    let cluster = match uri.http_upstream_type.take() {
        Some(core::http_uri::HttpUpstreamType::Cluster(c)) if !c.is_empty() => c,
        _ => return Err(FieldError::missing(&at.field("cluster"))),
    };
    let timeout = match uri.timeout.take() {
        Some(t) => duration(&t, &at.field("timeout"))?,
        None => DEFAULT_TIMEOUT,
    };
    let server = std::mem::take(&mut uri.uri);
    reject_unsupported(&uri, &at)?;
    let (allowed_headers, headers_to_add) = match h.authorization_request.take() {
        Some(mut r) => {
            let at = path.field("authorization_request");
            let allowed = list(r.allowed_headers.take(), &at.field("allowed_headers"))?;
            let add = std::mem::take(&mut r.headers_to_add)
                .into_iter()
                .map(|h| (h.key.to_ascii_lowercase(), h.value))
                .collect();
            reject_unsupported(&r, &at)?;
            (allowed, add)
        }
        None => (Vec::new(), Vec::new()),
    };
    let response = h.authorization_response.take().unwrap_or_default();
    let at = path.field("authorization_response");
    let result = HttpAuthzService {
        cluster,
        uri: server,
        timeout,
        path_prefix: std::mem::take(&mut h.path_prefix),
        allowed_headers,
        headers_to_add,
        allowed_upstream_headers: list(
            response.allowed_upstream_headers,
            &at.field("allowed_upstream_headers"),
        )?,
        allowed_upstream_headers_to_append: list(
            response.allowed_upstream_headers_to_append,
            &at.field("allowed_upstream_headers_to_append"),
        )?,
        allowed_client_headers: list(
            response.allowed_client_headers,
            &at.field("allowed_client_headers"),
        )?,
        allowed_client_headers_on_success: list(
            response.allowed_client_headers_on_success,
            &at.field("allowed_client_headers_on_success"),
        )?,
    };
    if response.dynamic_metadata_from_headers.is_some() {
        return Err(FieldError::unsupported(
            &at.field("dynamic_metadata_from_headers"),
        ));
    }
    reject_unsupported(&h, path)?;
    Ok(result)
}

/// `ExtAuthzPerRoute`: `None` when it disables the check.
pub(super) fn ext_authz_per_route(
    mut m: ext_authz::ExtAuthzPerRoute,
    path: &FieldPath<'_>,
) -> FieldResult<Option<ExtAuthzPerRoute>> {
    use ext_authz::ext_authz_per_route::Override as O;
    match m.r#override.take() {
        Some(O::Disabled(true)) => Ok(None),
        Some(O::Disabled(false)) => Err(FieldError::invalid(
            &path.field("disabled"),
            "must be true when set",
        )),
        Some(O::CheckSettings(mut c)) => {
            let at = path.field("check_settings");
            let settings = ExtAuthzPerRoute {
                disabled: false,
                context_extensions: std::mem::take(&mut c.context_extensions)
                    .into_iter()
                    .collect(),
                disable_request_body_buffering: std::mem::take(
                    &mut c.disable_request_body_buffering,
                ),
            };
            c.emit_client_span = None;
            reject_unsupported(&c, &at)?;
            Ok(Some(settings))
        }
        None => Err(FieldError::missing(&path.field("override"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_name_becomes_a_valid_authority() {
        for (cluster, expected) in [
            ("authz.ns.svc", "authz.ns.svc"),
            ("outbound|9000||authz.ns.svc", "outbound_9000__authz.ns.svc"),
            (
                "httproute/default/backend/rule/0",
                "httproute_default_backend_rule_0",
            ),
        ] {
            let authority = authority_of_cluster(cluster);
            assert_eq!(authority, expected);
            assert!(http::uri::Authority::try_from(authority.as_str()).is_ok());
        }
    }
}
