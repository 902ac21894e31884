//! `JwtAuthentication` and its `PerRouteConfig` -> [`JwtAuthentication`], [`JwtPerRoute`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt;

use super::common::{data_source, duration};
use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::{reject_unsupported, unsupported_variant};
use super::route::route_match;
use crate::config::{
    ClaimToHeader, DataSource, JwksSource, JwtAuthentication, JwtHeader, JwtPerRoute, JwtProvider,
    JwtRequirement, JwtRule, RemoteJwks,
};

/// Envoy's default `remote_jwks.cache_duration`.
const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
/// Envoy's default `clock_skew_seconds`.
const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 60;

pub(super) fn jwt_authentication(
    mut m: jwt::JwtAuthentication,
    path: &FieldPath<'_>,
) -> FieldResult<JwtAuthentication> {
    let providers_path = path.field("providers");
    let mut providers = BTreeMap::new();
    for (name, provider) in std::mem::take(&mut m.providers) {
        let provider = jwt_provider(provider, &providers_path.key(&name))?;
        providers.insert(name, Arc::new(provider));
    }
    let rules_path = path.field("rules");
    let rules = std::mem::take(&mut m.rules)
        .into_iter()
        .enumerate()
        .map(|(i, rule)| requirement_rule(rule, &providers, &rules_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let map_path = path.field("requirement_map");
    let mut requirement_map = BTreeMap::new();
    for (name, requirement) in std::mem::take(&mut m.requirement_map) {
        let requirement = requirement_of(requirement, &providers, &map_path.key(&name))?;
        requirement_map.insert(name, requirement);
    }
    let result = JwtAuthentication {
        providers,
        rules,
        requirement_map,
        bypass_cors_preflight: std::mem::take(&mut m.bypass_cors_preflight),
        strip_failure_response: std::mem::take(&mut m.strip_failure_response),
    };
    m.stat_prefix.clear();
    reject_unsupported(&m, path)?;
    Ok(result)
}

fn requirement_rule(
    mut rule: jwt::RequirementRule,
    providers: &BTreeMap<String, Arc<JwtProvider>>,
    path: &FieldPath<'_>,
) -> FieldResult<JwtRule> {
    let match_path = path.field("match");
    let r#match = route_match(
        rule.r#match
            .take()
            .ok_or_else(|| FieldError::missing(&match_path))?,
        &match_path,
    )?;
    use jwt::requirement_rule::RequirementType as R;
    let requires = match rule.requirement_type.take() {
        Some(R::Requires(r)) => Some(requirement_of(r, providers, &path.field("requires"))?),
        Some(R::RequirementName(name)) => {
            return Err(FieldError::unsupported(
                &path.field("requirement_name").key(&name),
            ));
        }
        None => None,
    };
    reject_unsupported(&rule, path)?;
    Ok(JwtRule { r#match, requires })
}

fn requirement_of(
    mut r: jwt::JwtRequirement,
    providers: &BTreeMap<String, Arc<JwtProvider>>,
    path: &FieldPath<'_>,
) -> FieldResult<JwtRequirement> {
    use jwt::jwt_requirement::RequiresType as R;
    let known = |name: &str, at: &FieldPath<'_>| {
        if providers.contains_key(name) {
            Ok(())
        } else {
            Err(FieldError::invalid(
                at,
                format!("no provider named \"{name}\""),
            ))
        }
    };
    let list = |requirements: Vec<jwt::JwtRequirement>, at: &FieldPath<'_>| {
        let inner = at.field("requirements");
        if requirements.len() < 2 {
            return Err(FieldError::invalid(
                &inner,
                "needs at least two requirements",
            ));
        }
        requirements
            .into_iter()
            .enumerate()
            .map(|(i, r)| requirement_of(r, providers, &inner.index(i)))
            .collect::<FieldResult<Vec<_>>>()
    };
    Ok(match r.requires_type.take() {
        Some(R::ProviderName(name)) => {
            known(&name, &path.field("provider_name"))?;
            JwtRequirement::Provider {
                name,
                audiences: Vec::new(),
            }
        }
        Some(R::ProviderAndAudiences(p)) => {
            let at = path.field("provider_and_audiences");
            known(&p.provider_name, &at.field("provider_name"))?;
            JwtRequirement::Provider {
                name: p.provider_name,
                audiences: p.audiences,
            }
        }
        Some(R::RequiresAny(any)) => {
            JwtRequirement::Any(list(any.requirements, &path.field("requires_any"))?)
        }
        Some(R::RequiresAll(all)) => {
            JwtRequirement::All(list(all.requirements, &path.field("requires_all"))?)
        }
        Some(R::AllowMissing(_)) => JwtRequirement::AllowMissing,
        Some(R::AllowMissingOrFailed(_)) => JwtRequirement::AllowMissingOrFailed,
        Some(other) => {
            return Err(unsupported_variant(
                &jwt::JwtRequirement {
                    requires_type: Some(other),
                },
                path,
            ));
        }
        None => return Err(FieldError::missing(&path.field("requires_type"))),
    })
}

fn jwt_provider(mut p: jwt::JwtProvider, path: &FieldPath<'_>) -> FieldResult<JwtProvider> {
    use jwt::jwt_provider::JwksSourceSpecifier as J;
    let jwks = match p.jwks_source_specifier.take() {
        Some(J::LocalJwks(source)) => {
            let at = path.field("local_jwks");
            match data_source(source, &at)? {
                DataSource::Inline(bytes) => JwksSource::Local(
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| FieldError::invalid(&at, "not UTF-8"))?,
                ),
                DataSource::Filename(file) => {
                    JwksSource::Local(std::fs::read_to_string(&file).map_err(|e| {
                        FieldError::invalid(
                            &at.field("filename"),
                            format!("{}: {e}", file.display()),
                        )
                    })?)
                }
            }
        }
        Some(J::RemoteJwks(remote)) => {
            JwksSource::Remote(remote_jwks(remote, &path.field("remote_jwks"))?)
        }
        None => return Err(FieldError::missing(&path.field("jwks_source_specifier"))),
    };
    let headers_path = path.field("from_headers");
    let from_headers = std::mem::take(&mut p.from_headers)
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            if h.name.is_empty() {
                return Err(FieldError::missing(&headers_path.index(i).field("name")));
            }
            Ok(JwtHeader {
                name: h.name.to_ascii_lowercase(),
                value_prefix: h.value_prefix,
            })
        })
        .collect::<FieldResult<Vec<_>>>()?;
    let claims_path = path.field("claim_to_headers");
    let claim_to_headers = std::mem::take(&mut p.claim_to_headers)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = claims_path.index(i);
            if !c.claim_path.is_empty() {
                return Err(FieldError::unsupported(&at.field("claim_path")));
            }
            if c.header_name.is_empty() || c.claim_name.is_empty() {
                return Err(FieldError::missing(&at.field("header_name")));
            }
            Ok(ClaimToHeader {
                header_name: c.header_name.to_ascii_lowercase(),
                claim_name: c.claim_name,
            })
        })
        .collect::<FieldResult<Vec<_>>>()?;
    if p.clear_route_cache {
        return Err(FieldError::invalid(
            &path.field("clear_route_cache"),
            "the route is chosen before the filters run; re-routing after verification is not supported",
        ));
    }
    let provider = JwtProvider {
        issuer: std::mem::take(&mut p.issuer),
        audiences: std::mem::take(&mut p.audiences),
        from_headers,
        from_params: std::mem::take(&mut p.from_params),
        from_cookies: std::mem::take(&mut p.from_cookies),
        forward: std::mem::take(&mut p.forward),
        forward_payload_header: Some(std::mem::take(&mut p.forward_payload_header))
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase()),
        pad_forward_payload_header: std::mem::take(&mut p.pad_forward_payload_header),
        clock_skew: Duration::from_secs(u64::from(match p.clock_skew_seconds {
            0 => DEFAULT_CLOCK_SKEW_SECONDS,
            s => s,
        })),
        claim_to_headers,
        jwks,
    };
    p.clock_skew_seconds = 0;
    // Dynamic metadata has no reader in this data plane (no filter matches on it), and the
    // verified-token cache only saves work.
    p.payload_in_metadata.clear();
    p.header_in_metadata.clear();
    p.failed_status_in_metadata.clear();
    p.normalize_payload_in_metadata = None;
    p.jwt_cache_config = None;
    reject_unsupported(&p, path)?;
    Ok(provider)
}

fn remote_jwks(mut r: jwt::RemoteJwks, path: &FieldPath<'_>) -> FieldResult<RemoteJwks> {
    let at = path.field("http_uri");
    let mut uri = r.http_uri.take().ok_or_else(|| FieldError::missing(&at))?;
    let cluster = match uri.http_upstream_type.take() {
        Some(core::http_uri::HttpUpstreamType::Cluster(c)) if !c.is_empty() => c,
        _ => return Err(FieldError::missing(&at.field("cluster"))),
    };
    let timeout = uri
        .timeout
        .take()
        .map(|t| duration(&t, &at.field("timeout")))
        .transpose()?
        .unwrap_or(Duration::from_secs(1));
    let target = std::mem::take(&mut uri.uri);
    if target.parse::<http::Uri>().is_err() {
        return Err(FieldError::invalid(&at.field("uri"), "not a URI"));
    }
    reject_unsupported(&uri, &at)?;
    let cache_duration = r
        .cache_duration
        .take()
        .map(|d| duration(&d, &path.field("cache_duration")))
        .transpose()?
        .unwrap_or(DEFAULT_CACHE_DURATION);
    // Keys are fetched when a request first needs them and again once they expire; fetching
    // them ahead of the first request changes only when the first fetch happens.
    r.async_fetch = None;
    reject_unsupported(&r, path)?;
    Ok(RemoteJwks {
        uri: target,
        cluster,
        timeout,
        cache_duration,
    })
}

/// The filter's `PerRouteConfig`.
pub(super) fn jwt_per_route(
    mut m: jwt::PerRouteConfig,
    path: &FieldPath<'_>,
) -> FieldResult<JwtPerRoute> {
    use jwt::per_route_config::RequirementSpecifier as R;
    let config = match m.requirement_specifier.take() {
        Some(R::Disabled(true)) => JwtPerRoute::Disabled,
        Some(R::Disabled(false)) => {
            return Err(FieldError::invalid(
                &path.field("disabled"),
                "must be true when set",
            ));
        }
        Some(R::RequirementName(name)) if !name.is_empty() => JwtPerRoute::RequirementName(name),
        _ => return Err(FieldError::missing(&path.field("requirement_specifier"))),
    };
    reject_unsupported(&m, path)?;
    Ok(config)
}
