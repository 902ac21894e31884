//! Route actions: forward (cluster, rewrites, timeouts, retries), direct response, redirect.

use std::collections::BTreeSet;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as route;

use super::common::{data_source, duration, header_mutations, optional_duration, timeout};
use super::error::{FieldError, FieldResult};
use super::filters::rate_limit_policies;
use super::matcher::safe_regex;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{
    AttemptCount, ClusterSpecifier, DataSource, ForwardAction, HashPolicy, HashSource,
    PathRedirect, RedirectAction, RegexRewrite, RetryOn, RetryPolicy, RouteAction, WeightedCluster,
};
use crate::field_policy::tolerate_fields;

/// Envoy's route timeout when the route sets none.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Translates `route.action` (at `path`, the route), with the content type a formatted
/// direct response sets.
pub(crate) fn route_action(
    action: Option<route::route::Action>,
    vhost_retry: Option<&RetryPolicy>,
    path: &FieldPath<'_>,
) -> FieldResult<(RouteAction, Option<String>)> {
    use route::route::Action;
    match action {
        Some(Action::Route(a)) => Ok((
            RouteAction::Forward(Box::new(forward(a, vhost_retry, &path.field("route"))?)),
            None,
        )),
        Some(Action::DirectResponse(d)) => direct_response(d, &path.field("direct_response")),
        Some(Action::Redirect(r)) => Ok((
            RouteAction::Redirect(redirect(r, &path.field("redirect"))?),
            None,
        )),
        Some(Action::FilterAction(_)) => Err(FieldError::unsupported(&path.field("filter_action"))),
        Some(Action::NonForwardingAction(_)) => Err(FieldError::unsupported(
            &path.field("non_forwarding_action"),
        )),
        None => Err(FieldError::missing(&path.field("action"))),
    }
}

fn forward(
    mut a: route::RouteAction,
    vhost_retry: Option<&RetryPolicy>,
    path: &FieldPath<'_>,
) -> FieldResult<ForwardAction> {
    use route::route_action::{ClusterSpecifier as C, HostRewriteSpecifier as H};
    let cluster = match a.cluster_specifier.take() {
        Some(C::Cluster(name)) if !name.is_empty() => ClusterSpecifier::Cluster(name),
        Some(C::ClusterHeader(header)) if !header.is_empty() => {
            ClusterSpecifier::ClusterHeader(header.to_ascii_lowercase())
        }
        Some(C::WeightedClusters(w)) => weighted_clusters(w, &path.field("weighted_clusters"))?,
        Some(C::Cluster(_)) => return Err(FieldError::missing(&path.field("cluster"))),
        Some(C::ClusterHeader(_)) => {
            return Err(FieldError::missing(&path.field("cluster_header")));
        }
        Some(C::ClusterSpecifierPlugin(_)) => {
            return Err(FieldError::unsupported(
                &path.field("cluster_specifier_plugin"),
            ));
        }
        Some(C::InlineClusterSpecifierPlugin(_)) => {
            return Err(FieldError::unsupported(
                &path.field("inline_cluster_specifier_plugin"),
            ));
        }
        None => return Err(FieldError::missing(&path.field("cluster_specifier"))),
    };
    let prefix_rewrite = Some(std::mem::take(&mut a.prefix_rewrite)).filter(|p| !p.is_empty());
    let regex_rewrite = a
        .regex_rewrite
        .take()
        .map(|r| {
            let at = path.field("regex_rewrite");
            let pattern = r
                .pattern
                .ok_or_else(|| FieldError::missing(&at.field("pattern")))?;
            let regex = safe_regex(pattern, &at.field("pattern"))?;
            // Unanchored: Envoy substitutes every match of the pattern inside the path.
            let pattern = regex::Regex::new(regex.as_str()).map_err(|e| {
                FieldError::invalid(&at.field("pattern"), format!("invalid regex: {e}"))
            })?;
            Ok(RegexRewrite {
                pattern,
                substitution: envoy_substitution(&r.substitution),
            })
        })
        .transpose()?;
    let host_rewrite_literal = match a.host_rewrite_specifier.take() {
        Some(H::HostRewriteLiteral(h)) if !h.is_empty() => Some(h),
        Some(H::HostRewriteLiteral(_)) | None => None,
        Some(H::AutoHostRewrite(b)) if !b.value => None,
        Some(H::AutoHostRewrite(_)) => {
            return Err(FieldError::unsupported(&path.field("auto_host_rewrite")));
        }
        Some(H::HostRewriteHeader(_)) => {
            return Err(FieldError::unsupported(&path.field("host_rewrite_header")));
        }
        Some(H::HostRewritePathRegex(_)) => {
            return Err(FieldError::unsupported(
                &path.field("host_rewrite_path_regex"),
            ));
        }
        Some(H::HostRewrite(_)) => {
            return Err(FieldError::unsupported(&path.field("host_rewrite")));
        }
    };
    let timeout_configured = a.timeout.is_some();
    let route_timeout = timeout(
        a.timeout.take().as_ref(),
        Some(DEFAULT_ROUTE_TIMEOUT),
        &path.field("timeout"),
    )?;
    let idle_timeout = timeout(
        a.idle_timeout.take().as_ref(),
        None,
        &path.field("idle_timeout"),
    )?;
    let (max_stream_duration, grpc_timeout_header_max) = match a.max_stream_duration.take() {
        Some(mut m) => {
            let at = path.field("max_stream_duration");
            let max = timeout(
                m.max_stream_duration.take().as_ref(),
                None,
                &at.field("max_stream_duration"),
            )?;
            let grpc = optional_duration(
                m.grpc_timeout_header_max.take().as_ref(),
                &at.field("grpc_timeout_header_max"),
            )?;
            reject_unsupported(&m, &at)?;
            (max, grpc)
        }
        None => (None, None),
    };
    let retry_policy = match a.retry_policy.take() {
        Some(r) => Some(retry_policy(r, &path.field("retry_policy"))?),
        None => vhost_retry.cloned(),
    };
    // The deprecated spelling of `grpc_timeout_header_max` (Istio still sends it).
    let grpc_timeout_header_max = match (grpc_timeout_header_max, a.max_grpc_timeout.take()) {
        (None, Some(max)) => Some(duration(&max, &path.field("max_grpc_timeout"))?),
        (set, _) => set,
    };
    let rate_limits = rate_limit_policies(
        std::mem::take(&mut a.rate_limits),
        &path.field("rate_limits"),
    )?;
    let include_vh_rate_limits = a.include_vh_rate_limits.take().is_some_and(|v| v.value);
    let hash_policy = hash_policies(
        std::mem::take(&mut a.hash_policy),
        &path.field("hash_policy"),
    )?;
    // Istio sets these everywhere; websocket upgrades are served as plain HTTP.
    tolerate_fields!(a, "RouteAction":
        upgrade_configs,
        cluster_not_found_response_code,
        metadata_match,
    );
    reject_unsupported(&a, path)?;
    Ok(ForwardAction {
        cluster,
        prefix_rewrite,
        regex_rewrite,
        host_rewrite_literal,
        timeout: route_timeout,
        timeout_configured,
        idle_timeout,
        max_stream_duration,
        grpc_timeout_header_max,
        retry_policy,
        rate_limits,
        include_vh_rate_limits,
        hash_policy,
        // The virtual host's setting; `virtual_host` fills it in.
        attempt_count: AttemptCount::default(),
    })
}

/// The route's `hash_policy` entries.
fn hash_policies(
    policies: Vec<route::route_action::HashPolicy>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<HashPolicy>> {
    use route::route_action::hash_policy::PolicySpecifier as P;
    policies
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            let at = path.index(i);
            let source = match p.policy_specifier.take() {
                Some(P::Header(mut h)) => {
                    let name = std::mem::take(&mut h.header_name).to_ascii_lowercase();
                    if name.is_empty() {
                        return Err(FieldError::missing(
                            &at.field("header").field("header_name"),
                        ));
                    }
                    reject_unsupported(&h, &at.field("header"))?;
                    HashSource::Header(name)
                }
                Some(P::Cookie(mut c)) => {
                    let name = std::mem::take(&mut c.name);
                    if name.is_empty() {
                        return Err(FieldError::missing(&at.field("cookie").field("name")));
                    }
                    // The path only matters to a cookie Envoy generates, which needs a ttl.
                    if c.ttl.is_none() {
                        c.path.clear();
                    }
                    reject_unsupported(&c, &at.field("cookie"))?;
                    HashSource::Cookie(name)
                }
                Some(P::ConnectionProperties(c)) if c.source_ip => HashSource::SourceIp,
                Some(P::ConnectionProperties(_)) => {
                    return Err(FieldError::missing(
                        &at.field("connection_properties").field("source_ip"),
                    ));
                }
                Some(P::QueryParameter(q)) if !q.name.is_empty() => {
                    HashSource::QueryParameter(q.name)
                }
                Some(P::QueryParameter(_)) => {
                    return Err(FieldError::missing(
                        &at.field("query_parameter").field("name"),
                    ));
                }
                Some(P::FilterState(_)) => {
                    return Err(FieldError::unsupported(&at.field("filter_state")));
                }
                None => return Err(FieldError::missing(&at.field("policy_specifier"))),
            };
            let terminal = std::mem::take(&mut p.terminal);
            reject_unsupported(&p, &at)?;
            Ok(HashPolicy { source, terminal })
        })
        .collect()
}

/// Envoy (RE2) writes groups as `\1`; the `regex` crate wants `${1}`.
fn envoy_substitution(substitution: &str) -> String {
    let mut out = String::with_capacity(substitution.len());
    let mut chars = substitution.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                chars.next();
                out.push_str(&format!("${{{d}}}"));
            }
            ('\\', Some('\\')) => {
                chars.next();
                out.push('\\');
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

fn weighted_clusters(
    mut w: route::WeightedCluster,
    path: &FieldPath<'_>,
) -> FieldResult<ClusterSpecifier> {
    let entries_path = path.field("clusters");
    let clusters = std::mem::take(&mut w.clusters)
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let at = entries_path.index(i);
            let name = std::mem::take(&mut c.name);
            if name.is_empty() {
                return Err(FieldError::missing(&at.field("name")));
            }
            let weight = c.weight.take().map_or(0, |w| w.value);
            let headers = header_mutations(
                std::mem::take(&mut c.request_headers_to_add),
                std::mem::take(&mut c.request_headers_to_remove),
                std::mem::take(&mut c.response_headers_to_add),
                std::mem::take(&mut c.response_headers_to_remove),
                &at,
            )?;
            c.metadata_match = None;
            reject_unsupported(&c, &at)?;
            Ok(WeightedCluster {
                name,
                weight,
                headers,
            })
        })
        .collect::<FieldResult<Vec<_>>>()?;
    let sum: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
    // Envoy: total_weight, when set, must equal the sum of the weights.
    let total_weight = match w.total_weight.take() {
        Some(t) if u64::from(t.value) != sum => {
            return Err(FieldError::invalid(
                &path.field("total_weight"),
                format!("is {} but the weights add up to {sum}", t.value),
            ));
        }
        Some(t) => t.value,
        None => u32::try_from(sum).map_err(|_| FieldError::invalid(path, "weights overflow"))?,
    };
    if total_weight == 0 {
        return Err(FieldError::invalid(
            &path.field("clusters"),
            "weights add up to 0",
        ));
    }
    w.runtime_key_prefix.clear();
    reject_unsupported(&w, path)?;
    Ok(ClusterSpecifier::WeightedClusters {
        total_weight,
        clusters,
    })
}

/// Envoy's `config.route.v3.RetryPolicy`.
pub(crate) fn retry_policy(
    mut r: route::RetryPolicy,
    path: &FieldPath<'_>,
) -> FieldResult<RetryPolicy> {
    let mut retry_on = BTreeSet::new();
    for name in r
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let condition = RetryOn::from_envoy_name(name).ok_or_else(|| {
            FieldError::invalid(
                &path.field("retry_on"),
                format!("\"{name}\" is not supported"),
            )
        })?;
        retry_on.insert(condition);
    }
    r.retry_on.clear();
    let num_retries = r.num_retries.take().map_or(1, |n| n.value);
    let per_try_timeout = timeout(
        r.per_try_timeout.take().as_ref(),
        None,
        &path.field("per_try_timeout"),
    )?;
    let retriable_status_codes = std::mem::take(&mut r.retriable_status_codes)
        .into_iter()
        .map(|c| {
            u16::try_from(c)
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| {
                    FieldError::invalid(
                        &path.field("retriable_status_codes"),
                        format!("{c} is not an HTTP status"),
                    )
                })
        })
        .collect::<FieldResult<Vec<_>>>()?;
    let mut avoid_previous_hosts = false;
    let predicates_path = path.field("retry_host_predicate");
    for (i, predicate) in std::mem::take(&mut r.retry_host_predicate)
        .into_iter()
        .enumerate()
    {
        if predicate.name == "envoy.retry_host_predicates.previous_hosts" {
            avoid_previous_hosts = true;
        } else {
            return Err(FieldError::unsupported(&predicates_path.index(i)));
        }
    }
    // Only meaningful with host predicates, which are reduced to the flag above.
    r.host_selection_retry_max_attempts = 0;
    // Back-off timing is the host's choice (Envoy's defaults are used).
    r.retry_back_off = None;
    reject_unsupported(&r, path)?;
    Ok(RetryPolicy {
        retry_on,
        num_retries,
        per_try_timeout,
        retriable_status_codes,
        avoid_previous_hosts,
    })
}

fn direct_response(
    mut d: route::DirectResponseAction,
    path: &FieldPath<'_>,
) -> FieldResult<(RouteAction, Option<String>)> {
    let status = u16::try_from(d.status)
        .ok()
        .filter(|s| (200..600).contains(s))
        .ok_or_else(|| {
            FieldError::invalid(
                &path.field("status"),
                format!("{} is not in [200, 600)", d.status),
            )
        })?;
    let body = match d.body.take() {
        None => None,
        Some(b) => match data_source(b, &path.field("body"))? {
            DataSource::Inline(bytes) => Some(bytes),
            DataSource::Filename(_) => {
                return Err(FieldError::unsupported(
                    &path.field("body").field("filename"),
                ));
            }
        },
    };
    let (body, content_type) = match d.body_format.take() {
        None => (body, None),
        Some(format) => {
            let (formatted, content_type) =
                body_format(format, body.as_deref(), &path.field("body_format"))?;
            (Some(formatted.into()), Some(content_type))
        }
    };
    d.status = 0;
    reject_unsupported(&d, path)?;
    Ok((RouteAction::DirectResponse { status, body }, content_type))
}

/// A `body_format` whose text has no command operators other than `%LOCAL_REPLY_BODY%` and
/// `%RESPONSE_CODE%`: the body it renders and its content type (Envoy's `text/plain`
/// unless set). Envoy renders a direct response's body before the response has a code, so
/// `%RESPONSE_CODE%` is `0` there; so it is here.
fn body_format(
    mut format: envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString,
    body: Option<&[u8]>,
    path: &FieldPath<'_>,
) -> FieldResult<(Vec<u8>, String)> {
    use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
    let (template, at) = match format.format.take() {
        Some(Format::TextFormat(text)) => (text, path.field("text_format")),
        Some(Format::TextFormatSource(source)) => {
            let at = path.field("text_format_source");
            match data_source(source, &at)? {
                DataSource::Inline(bytes) => (
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| FieldError::invalid(&at, "not UTF-8"))?,
                    at,
                ),
                DataSource::Filename(_) => {
                    return Err(FieldError::unsupported(&at.field("filename")));
                }
            }
        }
        Some(Format::JsonFormat(_)) => {
            return Err(FieldError::unsupported(&path.field("json_format")));
        }
        None => return Err(FieldError::missing(&path.field("format"))),
    };
    let body = String::from_utf8_lossy(body.unwrap_or_default()).into_owned();
    let rendered = render(&template, &body).ok_or_else(|| {
        FieldError::invalid(
            &at,
            "only %LOCAL_REPLY_BODY% and %RESPONSE_CODE% are supported",
        )
    })?;
    let content_type = match std::mem::take(&mut format.content_type) {
        ct if ct.is_empty() => "text/plain".to_owned(),
        ct => ct,
    };
    // Empty values are only omitted by command operators that produce nothing.
    format.omit_empty_values = false;
    reject_unsupported(&format, path)?;
    Ok((rendered.into_bytes(), content_type))
}

/// Expands the two operators a direct response knows; `None` for any other `%...%`.
fn render(template: &str, body: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + body.len());
    let mut rest = template;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('%')?;
        match &after[..end] {
            "" => out.push('%'),
            "LOCAL_REPLY_BODY" => out.push_str(body),
            "RESPONSE_CODE" => out.push('0'),
            _ => return None,
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn redirect(mut r: route::RedirectAction, path: &FieldPath<'_>) -> FieldResult<RedirectAction> {
    use route::redirect_action::{
        PathRewriteSpecifier as P, RedirectResponseCode, SchemeRewriteSpecifier as S,
    };
    let scheme = match r.scheme_rewrite_specifier.take() {
        Some(S::HttpsRedirect(true)) => Some("https".to_owned()),
        Some(S::SchemeRedirect(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let path_redirect = match r.path_rewrite_specifier.take() {
        Some(P::PathRedirect(p)) => Some(PathRedirect::Path(p)),
        Some(P::PrefixRewrite(p)) => Some(PathRedirect::Prefix(p)),
        Some(P::RegexRewrite(_)) => {
            return Err(FieldError::unsupported(&path.field("regex_rewrite")));
        }
        Some(P::PathRewrite(_)) => {
            return Err(FieldError::unsupported(&path.field("path_rewrite")));
        }
        None => None,
    };
    let response_code = match RedirectResponseCode::try_from(std::mem::take(&mut r.response_code)) {
        Ok(RedirectResponseCode::MovedPermanently) => 301,
        Ok(RedirectResponseCode::Found) => 302,
        Ok(RedirectResponseCode::SeeOther) => 303,
        Ok(RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("response_code"),
                "unknown value",
            ));
        }
    };
    let host = Some(std::mem::take(&mut r.host_redirect)).filter(|h| !h.is_empty());
    let port = match std::mem::take(&mut r.port_redirect) {
        0 => None,
        p => Some(u16::try_from(p).map_err(|_| {
            FieldError::invalid(&path.field("port_redirect"), format!("{p} is not a port"))
        })?),
    };
    let strip_query = std::mem::take(&mut r.strip_query);
    reject_unsupported(&r, path)?;
    Ok(RedirectAction {
        scheme,
        host,
        port,
        path: path_redirect,
        response_code,
        strip_query,
    })
}

#[cfg(test)]
mod tests {
    use super::envoy_substitution;

    #[test]
    fn regex_rewrite_substitution_converts_re2_groups() {
        assert_eq!(envoy_substitution(r"/v2/\1/x"), "/v2/${1}/x");
        assert_eq!(envoy_substitution("/cost$"), "/cost$$");
    }
}
