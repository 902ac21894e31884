//! `RouteConfiguration` -> [`RouteConfig`].

use envoy_types::pb::envoy::config::route::v3 as route;

use super::common::header_mutations;
use super::error::{FieldError, FieldResult, TranslateError};
use super::filters::{per_filter_configs, rate_limit_policies};
use super::matcher::{header_matcher, query_parameter_matcher, safe_regex};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use super::route_action::{retry_policy, route_action};
use super::tracing::route_tracing;
use crate::config::{
    AttemptCount, HeaderAppendAction, HeaderValueOption, PathMatch, ResourceKind, Route,
    RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use crate::field_policy::tolerate_fields;

impl TryFrom<route::RouteConfiguration> for RouteConfig {
    type Error = TranslateError;

    fn try_from(proto: route::RouteConfiguration) -> Result<Self, TranslateError> {
        let name = proto.name.clone();
        route_config(proto, &FieldPath::root())
            .map_err(|e| TranslateError::new(ResourceKind::RouteConfig, &name, e))
    }
}

/// Translates a route configuration found at `path` (RDS root or inline in a listener).
pub(crate) fn route_config(
    mut rc: route::RouteConfiguration,
    path: &FieldPath<'_>,
) -> FieldResult<RouteConfig> {
    let name = std::mem::take(&mut rc.name);
    let vhosts_path = path.field("virtual_hosts");
    let virtual_hosts = std::mem::take(&mut rc.virtual_hosts)
        .into_iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(vh, &vhosts_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    unique_domains(&virtual_hosts, &vhosts_path)?;
    let headers = header_mutations(
        std::mem::take(&mut rc.request_headers_to_add),
        std::mem::take(&mut rc.request_headers_to_remove),
        std::mem::take(&mut rc.response_headers_to_add),
        std::mem::take(&mut rc.response_headers_to_remove),
        path,
    )?;
    let ignore_port_in_host_matching = std::mem::take(&mut rc.ignore_port_in_host_matching);
    // Cluster validation only delays acceptance in Envoy; metadata is informational.
    let typed_per_filter_config = per_filter_configs(
        std::mem::take(&mut rc.typed_per_filter_config),
        &path.field("typed_per_filter_config"),
    )?;
    tolerate_fields!(rc, "RouteConfiguration":
        validate_clusters,
        metadata,
        max_direct_response_body_size_bytes,
    );
    reject_unsupported(&rc, path)?;
    Ok(RouteConfig {
        name,
        ignore_port_in_host_matching,
        virtual_hosts,
        headers,
        typed_per_filter_config,
    })
}

/// Envoy refuses a domain listed twice, in one virtual host or in two (case-insensitively).
fn unique_domains(virtual_hosts: &[VirtualHost], path: &FieldPath<'_>) -> FieldResult<()> {
    let mut seen = std::collections::HashMap::new();
    for (i, vh) in virtual_hosts.iter().enumerate() {
        let at = path.index(i);
        let domains = at.field("domains");
        for (j, domain) in vh.domains.iter().enumerate() {
            let domain = domain.to_ascii_lowercase();
            if let Some(first) = seen.insert(domain.clone(), i) {
                return Err(FieldError::invalid(
                    &domains.index(j),
                    format!("domain {domain} is also in virtual_hosts[{first}]"),
                ));
            }
        }
    }
    Ok(())
}

fn virtual_host(mut vh: route::VirtualHost, path: &FieldPath<'_>) -> FieldResult<VirtualHost> {
    let name = std::mem::take(&mut vh.name);
    let domains = std::mem::take(&mut vh.domains);
    if domains.is_empty() {
        return Err(FieldError::missing(&path.field("domains")));
    }
    let retry_policy = vh
        .retry_policy
        .take()
        .map(|r| retry_policy(r, &path.field("retry_policy")))
        .transpose()?;
    let routes_path = path.field("routes");
    let mut routes = std::mem::take(&mut vh.routes)
        .into_iter()
        .enumerate()
        .map(|(i, r)| route(r, retry_policy.as_ref(), &routes_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let attempt_count = AttemptCount {
        request: std::mem::take(&mut vh.include_request_attempt_count),
        response: std::mem::take(&mut vh.include_attempt_count_in_response),
    };
    for route in &mut routes {
        if let RouteAction::Forward(forward) = &mut route.action {
            forward.attempt_count = attempt_count;
        }
    }
    let headers = header_mutations(
        std::mem::take(&mut vh.request_headers_to_add),
        std::mem::take(&mut vh.request_headers_to_remove),
        std::mem::take(&mut vh.response_headers_to_add),
        std::mem::take(&mut vh.response_headers_to_remove),
        path,
    )?;
    // Informational: metadata does not change routing.
    let typed_per_filter_config = per_filter_configs(
        std::mem::take(&mut vh.typed_per_filter_config),
        &path.field("typed_per_filter_config"),
    )?;
    let rate_limits = rate_limit_policies(
        std::mem::take(&mut vh.rate_limits),
        &path.field("rate_limits"),
    )?;
    tolerate_fields!(vh, "VirtualHost":
        metadata,
    );
    reject_unsupported(&vh, path)?;
    Ok(VirtualHost {
        name,
        domains,
        routes,
        headers,
        retry_policy,
        typed_per_filter_config,
        rate_limits,
    })
}

fn route(
    mut r: route::Route,
    vhost_retry: Option<&crate::config::RetryPolicy>,
    path: &FieldPath<'_>,
) -> FieldResult<Route> {
    let r#match = route_match(
        r.r#match
            .take()
            .ok_or_else(|| FieldError::missing(&path.field("match")))?,
        &path.field("match"),
    )?;
    let (action, content_type) = route_action(r.action.take(), vhost_retry, path)?;
    let mut headers = header_mutations(
        std::mem::take(&mut r.request_headers_to_add),
        std::mem::take(&mut r.request_headers_to_remove),
        std::mem::take(&mut r.response_headers_to_add),
        std::mem::take(&mut r.response_headers_to_remove),
        path,
    )?;
    // A formatted direct response sets its content type before the route's own headers.
    if let Some(value) = content_type {
        headers.response_headers_to_add.insert(
            0,
            HeaderValueOption {
                name: "content-type".to_owned(),
                value,
                append: HeaderAppendAction::OverwriteIfExistsOrAdd,
            },
        );
    }
    let name = std::mem::take(&mut r.name);
    // Observability only.
    let typed_per_filter_config = per_filter_configs(
        std::mem::take(&mut r.typed_per_filter_config),
        &path.field("typed_per_filter_config"),
    )?;
    let tracing = route_tracing(r.decorator.take(), r.tracing.take(), path)?;
    tolerate_fields!(r, "Route": metadata, stat_prefix);
    reject_unsupported(&r, path)?;
    Ok(Route {
        name,
        r#match,
        action,
        headers,
        typed_per_filter_config,
        tracing,
    })
}

pub(crate) fn route_match(
    mut m: route::RouteMatch,
    path: &FieldPath<'_>,
) -> FieldResult<RouteMatch> {
    use route::route_match::PathSpecifier as P;
    let path_match = match m.path_specifier.take() {
        Some(P::Prefix(p)) => PathMatch::Prefix(p),
        Some(P::Path(p)) => PathMatch::Path(p),
        Some(P::PathSeparatedPrefix(p)) => PathMatch::PathSeparatedPrefix(p),
        Some(P::SafeRegex(r)) => PathMatch::SafeRegex(safe_regex(r, &path.field("safe_regex"))?),
        Some(P::ConnectMatcher(_)) => {
            return Err(FieldError::unsupported(&path.field("connect_matcher")));
        }
        Some(P::PathMatchPolicy(_)) => {
            return Err(FieldError::unsupported(&path.field("path_match_policy")));
        }
        None => return Err(FieldError::missing(&path.field("path_specifier"))),
    };
    let case_sensitive = m.case_sensitive.take().is_none_or(|b| b.value);
    let headers_path = path.field("headers");
    let headers = std::mem::take(&mut m.headers)
        .into_iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &headers_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let query_path = path.field("query_parameters");
    let query_parameters = std::mem::take(&mut m.query_parameters)
        .into_iter()
        .enumerate()
        .map(|(i, q)| query_parameter_matcher(q, &query_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let grpc = m.grpc.take().is_some();
    reject_unsupported(&m, path)?;
    Ok(RouteMatch {
        path: path_match,
        case_sensitive,
        headers,
        query_parameters,
        grpc,
    })
}
