//! HTTP filter configurations and their per-route forms (`typed_per_filter_config`) -> the
//! filter types of [`crate::config`], dispatched on the `@type` of each typed config. Every
//! field a filter implements or tolerates is moved out; what remains is refused by name.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3 as ratelimit;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common_fault;
use envoy_types::pb::envoy::extensions::filters::http::api_key_auth::v3 as api_key_auth;
use envoy_types::pb::envoy::extensions::filters::http::basic_auth::v3 as basic_auth;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3 as cors;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3 as ext_authz;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3 as header_mutation;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt_authn;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3 as local_ratelimit;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3 as global_ratelimit;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac;
use envoy_types::pb::envoy::r#type::v3 as types;
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::common::{duration, header_value_option};
use super::credentials::{api_key_auth, api_key_auth_per_route, basic_auth, basic_auth_per_route};
use super::error::{FieldError, FieldResult};
use super::ext_authz::{ext_authz_filter, ext_authz_per_route};
use super::extensions::decode_any;
use super::jwt_authn::{jwt_authentication, jwt_per_route};
use super::matcher::{header_matcher, string_matcher};
use super::path::FieldPath;
use super::ratelimit::{global_rate_limit, global_rate_limit_per_route};
use super::rbac::rbac_filter;
use super::reflect::{reject_unsupported, unsupported_variant};
use crate::config::{
    AbortSource, CorsPolicy, DelaySource, ExtAuthzPerRoute, Fault, FaultAbort, FaultDelay,
    FilterOverride, Fraction, HeaderEdit, HeaderMutation, HeaderMutationRules, HttpFilterConfig,
    JwtPerRoute, LocalRateLimit, PerFilterConfigs, PerRouteConfig, RateLimitAction,
    RateLimitDescriptor, RateLimitPolicy, RbacFilter, TokenBucket, VhRateLimits,
};

/// Envoy's shortest token bucket fill interval.
const MIN_FILL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// The filter a typed config configures, or `None` when mesh-host does not implement it.
pub(crate) fn http_filter_config(
    any: &Any,
    path: &FieldPath<'_>,
) -> FieldResult<Option<HttpFilterConfig>> {
    let url = any.type_url.as_str();
    Ok(Some(if url == rbac::Rbac::type_url() {
        HttpFilterConfig::Rbac(rbac_filter(decode(any, path)?, path)?)
    } else if url == cors::Cors::type_url() {
        let _: cors::Cors = decode(any, path)?;
        HttpFilterConfig::Cors
    } else if url == fault::HttpFault::type_url() {
        HttpFilterConfig::Fault(Arc::new(http_fault(decode(any, path)?, path)?))
    } else if url == local_ratelimit::LocalRateLimit::type_url() {
        HttpFilterConfig::LocalRateLimit(Arc::new(local_rate_limit(
            decode(any, path)?,
            false,
            path,
        )?))
    } else if url == header_mutation::HeaderMutation::type_url() {
        let mut m: header_mutation::HeaderMutation = decode(any, path)?;
        let mutations = mutations(m.mutations.take(), &path.field("mutations"))?;
        let most_specific_header_mutations_wins =
            std::mem::take(&mut m.most_specific_header_mutations_wins);
        reject_unsupported(&m, path)?;
        HttpFilterConfig::HeaderMutation(Arc::new(HeaderMutation {
            mutations: Arc::new(mutations),
            most_specific_header_mutations_wins,
        }))
    } else if url == ext_authz::ExtAuthz::type_url() {
        HttpFilterConfig::ExtAuthz(Arc::new(ext_authz_filter(decode(any, path)?, path)?))
    } else if url == jwt_authn::JwtAuthentication::type_url() {
        HttpFilterConfig::JwtAuthn(Arc::new(jwt_authentication(decode(any, path)?, path)?))
    } else if url == global_ratelimit::RateLimit::type_url() {
        HttpFilterConfig::RateLimit(Arc::new(global_rate_limit(decode(any, path)?, path)?))
    } else if url == basic_auth::BasicAuth::type_url() {
        HttpFilterConfig::BasicAuth(Arc::new(basic_auth(decode(any, path)?, path)?))
    } else if url == api_key_auth::ApiKeyAuth::type_url() {
        HttpFilterConfig::ApiKeyAuth(Arc::new(api_key_auth(decode(any, path)?, path)?))
    } else {
        return Ok(None);
    }))
}

/// A `typed_per_filter_config` map (at `path`). An entry for a filter mesh-host does not
/// implement is refused unless it is an optional `FilterConfig`.
pub(crate) fn per_filter_configs(
    configs: HashMap<String, Any>,
    path: &FieldPath<'_>,
) -> FieldResult<PerFilterConfigs> {
    let mut out = PerFilterConfigs::new();
    for (name, any) in configs {
        let at = path.key(&name);
        let entry = if any.type_url == route::FilterConfig::type_url() {
            let mut wrapper: route::FilterConfig = decode(&any, &at)?;
            let disabled = std::mem::take(&mut wrapper.disabled);
            let optional = std::mem::take(&mut wrapper.is_optional);
            let config = match wrapper.config.take() {
                Some(inner) => match per_route_config(&inner, &at.field("config"))? {
                    Some(config) => Some(config),
                    None if optional => {
                        tracing::debug!(filter = %name, "optional per-route config ignored");
                        continue;
                    }
                    None => return Err(unknown_per_route(&inner, &at.field("config"))),
                },
                None => None,
            };
            reject_unsupported(&wrapper, &at)?;
            FilterOverride { disabled, config }
        } else if any.type_url == rbac::RbacPerRoute::type_url() {
            let mut per_route: rbac::RbacPerRoute = decode(&any, &at)?;
            let rbac = per_route.rbac.take();
            reject_unsupported(&per_route, &at)?;
            match rbac {
                // Envoy: without `rbac` the filter is disabled for the route.
                None => FilterOverride {
                    disabled: true,
                    config: None,
                },
                Some(rbac) => FilterOverride {
                    disabled: false,
                    config: Some(PerRouteConfig::Rbac(rbac_filter(rbac, &at.field("rbac"))?)),
                },
            }
        } else if any.type_url == ext_authz::ExtAuthzPerRoute::type_url() {
            match ext_authz_per_route(decode(&any, &at)?, &at)? {
                None => FilterOverride {
                    disabled: true,
                    config: None,
                },
                Some(settings) => FilterOverride {
                    disabled: false,
                    config: Some(PerRouteConfig::ExtAuthz(Arc::new(settings))),
                },
            }
        } else if any.type_url == jwt_authn::PerRouteConfig::type_url() {
            match jwt_per_route(decode(&any, &at)?, &at)? {
                JwtPerRoute::Disabled => FilterOverride {
                    disabled: true,
                    config: None,
                },
                named => FilterOverride {
                    disabled: false,
                    config: Some(PerRouteConfig::JwtAuthn(named)),
                },
            }
        } else {
            match per_route_config(&any, &at)? {
                Some(config) => FilterOverride {
                    disabled: false,
                    config: Some(config),
                },
                None => return Err(unknown_per_route(&any, &at)),
            }
        };
        out.insert(name, entry);
    }
    Ok(out)
}

fn unknown_per_route(any: &Any, path: &FieldPath<'_>) -> FieldError {
    FieldError::invalid(
        path,
        format!("per-route config {} is not supported", any.type_url),
    )
}

/// The per-route config of one filter, or `None` when its type is not implemented.
fn per_route_config(any: &Any, path: &FieldPath<'_>) -> FieldResult<Option<PerRouteConfig>> {
    let url = any.type_url.as_str();
    Ok(Some(
        if url == local_ratelimit::LocalRateLimit::type_url() {
            PerRouteConfig::LocalRateLimit(Arc::new(local_rate_limit(
                decode(any, path)?,
                true,
                path,
            )?))
        } else if url == fault::HttpFault::type_url() {
            PerRouteConfig::Fault(Arc::new(http_fault(decode(any, path)?, path)?))
        } else if url == cors::CorsPolicy::type_url() {
            PerRouteConfig::Cors(Arc::new(cors_policy(decode(any, path)?, path)?))
        } else if url == header_mutation::HeaderMutationPerRoute::type_url() {
            let mut m: header_mutation::HeaderMutationPerRoute = decode(any, path)?;
            let mutations = mutations(m.mutations.take(), &path.field("mutations"))?;
            reject_unsupported(&m, path)?;
            PerRouteConfig::HeaderMutation(Arc::new(mutations))
        } else if url == rbac::RbacPerRoute::type_url() {
            let mut per_route: rbac::RbacPerRoute = decode(any, path)?;
            let config = per_route
                .rbac
                .take()
                .map(|r| rbac_filter(r, &path.field("rbac")))
                .transpose()?
                .unwrap_or(RbacFilter {
                    rules: None,
                    shadow_rules: None,
                });
            reject_unsupported(&per_route, path)?;
            PerRouteConfig::Rbac(config)
        } else if url == ext_authz::ExtAuthzPerRoute::type_url() {
            PerRouteConfig::ExtAuthz(Arc::new(
                ext_authz_per_route(decode(any, path)?, path)?.unwrap_or(ExtAuthzPerRoute {
                    disabled: true,
                    ..ExtAuthzPerRoute::default()
                }),
            ))
        } else if url == jwt_authn::PerRouteConfig::type_url() {
            PerRouteConfig::JwtAuthn(jwt_per_route(decode(any, path)?, path)?)
        } else if url == global_ratelimit::RateLimitPerRoute::type_url() {
            PerRouteConfig::RateLimit(Arc::new(global_rate_limit_per_route(
                decode(any, path)?,
                path,
            )?))
        } else if url == basic_auth::BasicAuthPerRoute::type_url() {
            PerRouteConfig::BasicAuth(Arc::new(basic_auth_per_route(decode(any, path)?, path)?))
        } else if url == api_key_auth::ApiKeyAuthPerRoute::type_url() {
            PerRouteConfig::ApiKeyAuth(Arc::new(api_key_auth_per_route(decode(any, path)?, path)?))
        } else {
            return Ok(None);
        },
    ))
}

pub(super) fn decode<M>(any: &Any, path: &FieldPath<'_>) -> FieldResult<M>
where
    M: prost::Message + prost::Name + Default,
{
    decode_any(any).map_err(|e| FieldError::invalid(path, format!("cannot decode: {e}")))
}

/// `FractionalPercent` (`None`: unset).
pub(super) fn fraction(
    percent: Option<types::FractionalPercent>,
    path: &FieldPath<'_>,
) -> FieldResult<Option<Fraction>> {
    let Some(percent) = percent else {
        return Ok(None);
    };
    use types::fractional_percent::DenominatorType as D;
    let denominator = match D::try_from(percent.denominator) {
        Ok(D::Hundred) => 100,
        Ok(D::TenThousand) => 10_000,
        Ok(D::Million) => 1_000_000,
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("denominator"),
                "unknown value",
            ));
        }
    };
    Ok(Some(Fraction {
        numerator: percent.numerator.min(denominator),
        denominator,
    }))
}

/// `RuntimeFractionalPercent`: its default value (there is no runtime to override it).
pub(super) fn runtime_fraction(
    percent: Option<core::RuntimeFractionalPercent>,
    path: &FieldPath<'_>,
) -> FieldResult<Option<Fraction>> {
    percent
        .map(|mut p| fraction(p.default_value.take(), &path.field("default_value")))
        .transpose()
        .map(Option::flatten)
}

pub(super) fn bucket_of(
    mut bucket: types::TokenBucket,
    path: &FieldPath<'_>,
) -> FieldResult<TokenBucket> {
    let fill_interval = bucket
        .fill_interval
        .take()
        .ok_or_else(|| FieldError::missing(&path.field("fill_interval")))?;
    let fill_interval = duration(&fill_interval, &path.field("fill_interval"))?;
    if fill_interval < MIN_FILL_INTERVAL {
        return Err(FieldError::invalid(
            &path.field("fill_interval"),
            "must be at least 50ms",
        ));
    }
    if bucket.max_tokens == 0 {
        return Err(FieldError::invalid(
            &path.field("max_tokens"),
            "must be above 0",
        ));
    }
    Ok(TokenBucket {
        max_tokens: bucket.max_tokens,
        tokens_per_fill: bucket.tokens_per_fill.take().map_or(1, |v| v.value),
        fill_interval,
    })
}

fn local_rate_limit(
    mut m: local_ratelimit::LocalRateLimit,
    per_route: bool,
    path: &FieldPath<'_>,
) -> FieldResult<LocalRateLimit> {
    let token_bucket = m
        .token_bucket
        .take()
        .map(|b| bucket_of(b, &path.field("token_bucket")))
        .transpose()?;
    if per_route && token_bucket.is_none() {
        return Err(FieldError::invalid(
            &path.field("token_bucket"),
            "a per-route local rate limit needs a token bucket",
        ));
    }
    let status = match m.status.take() {
        None => 429,
        Some(status) if status.code < 400 => 429,
        Some(status) => u16::try_from(status.code)
            .map_err(|_| FieldError::invalid(&path.field("status"), "not an HTTP status"))?,
    };
    let headers = |list: Vec<core::HeaderValueOption>, field: &str| {
        let at = path.field(field);
        list.into_iter()
            .enumerate()
            .map(|(i, o)| header_value_option(o, &at.index(i)))
            .collect::<FieldResult<Vec<_>>>()
    };
    let descriptors_path = path.field("descriptors");
    let descriptors = std::mem::take(&mut m.descriptors)
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            let at = descriptors_path.index(i);
            let bucket = d
                .token_bucket
                .take()
                .ok_or_else(|| FieldError::missing(&at.field("token_bucket")))?;
            let entries = std::mem::take(&mut d.entries)
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect();
            reject_unsupported(&d, &at)?;
            Ok(RateLimitDescriptor {
                entries,
                token_bucket: bucket_of(bucket, &at.field("token_bucket"))?,
            })
        })
        .collect::<FieldResult<Vec<_>>>()?;
    let rate_limits = rate_limit_policies(
        std::mem::take(&mut m.rate_limits),
        &path.field("rate_limits"),
    )?;
    use ratelimit::VhRateLimitsOptions as V;
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
    if m.stage != 0 {
        return Err(FieldError::invalid(
            &path.field("stage"),
            "only stage 0 is supported",
        ));
    }
    let result = LocalRateLimit {
        stat_prefix: std::mem::take(&mut m.stat_prefix),
        token_bucket,
        filter_enabled: runtime_fraction(m.filter_enabled.take(), &path.field("filter_enabled"))?
            .unwrap_or(Fraction::NONE),
        filter_enforced: runtime_fraction(
            m.filter_enforced.take(),
            &path.field("filter_enforced"),
        )?
        .unwrap_or(Fraction::NONE),
        status,
        response_headers_to_add: headers(
            std::mem::take(&mut m.response_headers_to_add),
            "response_headers_to_add",
        )?,
        request_headers_to_add_when_not_enforced: headers(
            std::mem::take(&mut m.request_headers_to_add_when_not_enforced),
            "request_headers_to_add_when_not_enforced",
        )?,
        descriptors,
        rate_limits,
        vh_rate_limits,
        x_ratelimit_headers,
        always_consume_default_token_bucket: m
            .always_consume_default_token_bucket
            .take()
            .is_none_or(|v| v.value),
        rate_limited_as_resource_exhausted: std::mem::take(
            &mut m.rate_limited_as_resource_exhausted,
        ),
    };
    // A bound on buckets created for wildcard descriptors, which are not supported anyway.
    m.max_dynamic_descriptors = None;
    reject_unsupported(&m, path)?;
    Ok(result)
}

/// `config.route.v3.RateLimit` entries: the actions that build a request's descriptors.
pub(crate) fn rate_limit_policies(
    policies: Vec<route::RateLimit>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<RateLimitPolicy>> {
    use route::rate_limit::action::ActionSpecifier as A;
    policies
        .into_iter()
        .enumerate()
        .map(|(i, mut policy)| {
            let at = path.index(i);
            let actions_path = at.field("actions");
            let actions = std::mem::take(&mut policy.actions)
                .into_iter()
                .enumerate()
                .map(|(j, action)| {
                    let at = actions_path.index(j);
                    Ok(match action.action_specifier {
                        Some(A::GenericKey(g)) => RateLimitAction::GenericKey {
                            key: if g.descriptor_key.is_empty() {
                                "generic_key".to_owned()
                            } else {
                                g.descriptor_key
                            },
                            value: g.descriptor_value,
                        },
                        Some(A::RequestHeaders(h)) => RateLimitAction::RequestHeaders {
                            header_name: h.header_name.to_ascii_lowercase(),
                            key: h.descriptor_key,
                            skip_if_absent: h.skip_if_absent,
                        },
                        Some(A::RemoteAddress(_)) => RateLimitAction::RemoteAddress,
                        Some(A::DestinationCluster(_)) => RateLimitAction::DestinationCluster,
                        Some(A::MaskedRemoteAddress(m)) => RateLimitAction::MaskedRemoteAddress {
                            v4_prefix_len: prefix_len(m.v4_prefix_mask_len, 32, &at)?,
                            v6_prefix_len: prefix_len(m.v6_prefix_mask_len, 128, &at)?,
                        },
                        Some(A::HeaderValueMatch(mut h)) => {
                            let match_path = at.field("header_value_match");
                            let headers_path = match_path.field("headers");
                            RateLimitAction::HeaderValueMatch {
                                key: if h.descriptor_key.is_empty() {
                                    "header_match".to_owned()
                                } else {
                                    std::mem::take(&mut h.descriptor_key)
                                },
                                value: std::mem::take(&mut h.descriptor_value),
                                expect_match: h.expect_match.take().is_none_or(|v| v.value),
                                headers: std::mem::take(&mut h.headers)
                                    .into_iter()
                                    .enumerate()
                                    .map(|(k, m)| header_matcher(m, &headers_path.index(k)))
                                    .collect::<FieldResult<Vec<_>>>()?,
                            }
                        }
                        Some(other) => {
                            return Err(unsupported_variant(
                                &route::rate_limit::Action {
                                    action_specifier: Some(other),
                                },
                                &at,
                            ));
                        }
                        None => return Err(FieldError::missing(&at.field("action_specifier"))),
                    })
                })
                .collect::<FieldResult<Vec<_>>>()?;
            let stage = policy.stage.take().map_or(0, |s| s.value);
            // A disable key only matters to the runtime, which has no keys here.
            policy.disable_key.clear();
            reject_unsupported(&policy, &at)?;
            Ok(RateLimitPolicy { stage, actions })
        })
        .collect()
}

fn prefix_len(
    value: Option<envoy_types::pb::google::protobuf::UInt32Value>,
    max: u8,
    path: &FieldPath<'_>,
) -> FieldResult<u8> {
    match value {
        None => Ok(max),
        Some(v) => u8::try_from(v.value)
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| {
                FieldError::invalid(path, format!("prefix length {} is too long", v.value))
            }),
    }
}

fn http_fault(mut m: fault::HttpFault, path: &FieldPath<'_>) -> FieldResult<Fault> {
    let delay = m
        .delay
        .take()
        .map(|d| fault_delay(d, &path.field("delay")))
        .transpose()?;
    let abort = m
        .abort
        .take()
        .map(|a| fault_abort(a, &path.field("abort")))
        .transpose()?;
    let headers_path = path.field("headers");
    let headers = std::mem::take(&mut m.headers)
        .into_iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &headers_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let upstream_cluster = Some(std::mem::take(&mut m.upstream_cluster)).filter(|c| !c.is_empty());
    let max_active_faults = m.max_active_faults.take().map(|v| v.value);
    // Runtime keys name overrides in a runtime mesh-host does not have: the configured
    // values apply, as in an Envoy whose runtime sets none of them.
    m.delay_percent_runtime.clear();
    m.abort_percent_runtime.clear();
    m.delay_duration_runtime.clear();
    m.abort_http_status_runtime.clear();
    m.max_active_faults_runtime.clear();
    m.abort_grpc_status_runtime.clear();
    m.response_rate_limit_percent_runtime.clear();
    m.disable_downstream_cluster_stats = false;
    m.filter_metadata = None;
    reject_unsupported(&m, path)?;
    Ok(Fault {
        delay,
        abort,
        headers,
        upstream_cluster,
        max_active_faults,
    })
}

fn fault_delay(mut d: common_fault::FaultDelay, path: &FieldPath<'_>) -> FieldResult<FaultDelay> {
    use common_fault::fault_delay::FaultDelaySecifier as S;
    let source = match d.fault_delay_secifier.take() {
        Some(S::FixedDelay(length)) => {
            DelaySource::Fixed(duration(&length, &path.field("fixed_delay"))?)
        }
        Some(S::HeaderDelay(_)) => DelaySource::Header,
        None => return Err(FieldError::missing(&path.field("fault_delay_secifier"))),
    };
    let percentage =
        fraction(d.percentage.take(), &path.field("percentage"))?.unwrap_or(Fraction::ALL);
    reject_unsupported(&d, path)?;
    Ok(FaultDelay { source, percentage })
}

fn fault_abort(mut a: fault::FaultAbort, path: &FieldPath<'_>) -> FieldResult<FaultAbort> {
    use fault::fault_abort::ErrorType as E;
    let source = match a.error_type.take() {
        Some(E::HttpStatus(status)) => {
            let status = u16::try_from(status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| {
                    FieldError::invalid(&path.field("http_status"), "must be 200-599")
                })?;
            AbortSource::Http(status)
        }
        Some(E::GrpcStatus(code)) => AbortSource::Grpc(code),
        Some(E::HeaderAbort(_)) => AbortSource::Header,
        None => return Err(FieldError::missing(&path.field("error_type"))),
    };
    let percentage =
        fraction(a.percentage.take(), &path.field("percentage"))?.unwrap_or(Fraction::ALL);
    reject_unsupported(&a, path)?;
    Ok(FaultAbort { source, percentage })
}

fn cors_policy(mut c: cors::CorsPolicy, path: &FieldPath<'_>) -> FieldResult<CorsPolicy> {
    let origins_path = path.field("allow_origin_string_match");
    let allow_origin = std::mem::take(&mut c.allow_origin_string_match)
        .into_iter()
        .enumerate()
        .map(|(i, m)| string_matcher(m, &origins_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let text = |s: String| Some(s).filter(|s| !s.is_empty());
    let policy = CorsPolicy {
        allow_origin,
        allow_methods: text(std::mem::take(&mut c.allow_methods)),
        allow_headers: text(std::mem::take(&mut c.allow_headers)),
        expose_headers: text(std::mem::take(&mut c.expose_headers)),
        max_age: text(std::mem::take(&mut c.max_age)),
        allow_credentials: c.allow_credentials.take().map(|v| v.value),
        allow_private_network_access: c.allow_private_network_access.take().map(|v| v.value),
        filter_enabled: runtime_fraction(c.filter_enabled.take(), &path.field("filter_enabled"))?
            .unwrap_or(Fraction::ALL),
        forward_not_matching_preflights: c.forward_not_matching_preflights.take().map(|v| v.value),
    };
    // Shadow mode only counts statistics for requests the policy does not enforce.
    c.shadow_enabled = None;
    reject_unsupported(&c, path)?;
    Ok(policy)
}

fn mutations(
    m: Option<header_mutation::Mutations>,
    path: &FieldPath<'_>,
) -> FieldResult<HeaderMutationRules> {
    let Some(mut m) = m else {
        return Ok(HeaderMutationRules::default());
    };
    let list = |list: Vec<
        envoy_types::pb::envoy::config::common::mutation_rules::v3::HeaderMutation,
    >,
                field: &str|
     -> FieldResult<Vec<HeaderEdit>> {
        use envoy_types::pb::envoy::config::common::mutation_rules::v3::header_mutation::Action;
        let at = path.field(field);
        list.into_iter()
            .enumerate()
            .map(|(i, mutation)| {
                let at = at.index(i);
                match mutation.action {
                    Some(Action::Remove(name)) => Ok(HeaderEdit::Remove(name.to_ascii_lowercase())),
                    Some(Action::Append(option)) => {
                        header_value_option(option, &at.field("append")).map(HeaderEdit::Append)
                    }
                    Some(Action::RemoveOnMatch(mut matcher)) => {
                        let key = matcher.key_matcher.take().ok_or_else(|| {
                            FieldError::missing(&at.field("remove_on_match").field("key_matcher"))
                        })?;
                        string_matcher(key, &at.field("remove_on_match").field("key_matcher"))
                            .map(HeaderEdit::RemoveOnMatch)
                    }
                    None => Err(FieldError::missing(&at.field("action"))),
                }
            })
            .collect()
    };
    let rules = HeaderMutationRules {
        request: list(
            std::mem::take(&mut m.request_mutations),
            "request_mutations",
        )?,
        response: list(
            std::mem::take(&mut m.response_mutations),
            "response_mutations",
        )?,
    };
    reject_unsupported(&m, path)?;
    Ok(rules)
}
