//! `envoy.filters.http.jwt_authn`: the request's JSON Web Tokens are verified against each
//! provider's keys (local, or fetched through a cluster and cached) as the requirement of the
//! route says (`provider_name`, `requires_any`, `requires_all`, `allow_missing`,
//! `allow_missing_or_failed`); a request that does not meet it is refused with 401 (403 for
//! an audience that is not allowed) and jwt_verify_lib's reason.

mod extract;
mod jwks;
mod status;
mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use mesh_xds::config::{
    JwtAuthentication, JwtPerRoute, JwtProvider, JwtRequirement, PathMatch, RouteMatch,
};
use serde_json::Value;

use self::extract::{Found, Location};
use self::jwks::KeySource;
use self::status::Status;
use self::token::Jwt;
use super::chain::FilterRequest;
use crate::egress::Egress;
use crate::shared::{Failure, RequestView};

/// A compiled jwt_authn filter: its providers with their keys.
pub(super) struct JwtFilter {
    config: Arc<JwtAuthentication>,
    providers: BTreeMap<String, Provider>,
}

struct Provider {
    config: Arc<JwtProvider>,
    locations: Vec<(Location, String)>,
    keys: KeySource,
}

/// One request's verification: its head and the upstream client for key fetches.
struct Verification<'r> {
    head: &'r mut http::request::Parts,
    upstream: &'r Egress,
    now: u64,
}

impl JwtFilter {
    pub(super) fn new(config: &Arc<JwtAuthentication>) -> Result<JwtFilter, String> {
        let providers = config
            .providers
            .iter()
            .map(|(name, provider)| {
                let keys = KeySource::new(&provider.jwks)
                    .map_err(|why| format!("provider {name}: {why}"))?;
                Ok((
                    name.clone(),
                    Provider {
                        locations: extract::locations(provider),
                        config: provider.clone(),
                        keys,
                    },
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(JwtFilter {
            config: config.clone(),
            providers,
        })
    }

    /// Verifies the request against its requirement; the refusal, if it does not meet it,
    /// with its `www-authenticate` challenge.
    pub(super) async fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        per_route: Option<&JwtPerRoute>,
    ) -> Option<(Failure, String)> {
        if self.config.bypass_cors_preflight && is_cors_preflight(request.head) {
            return None;
        }
        let requirement = match per_route {
            Some(JwtPerRoute::RequirementName(name)) => {
                let found = self.config.requirement_map.get(name);
                if found.is_none() {
                    tracing::warn!(requirement = %name, "per-route requirement_name is not in requirement_map");
                }
                found
            }
            Some(JwtPerRoute::Disabled) => None,
            None => self
                .config
                .rules
                .iter()
                .find(|rule| rule_matches(&rule.r#match, request.head))
                .and_then(|rule| rule.requires.as_ref()),
        }?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut verification = Verification {
            head: request.head,
            upstream: request.upstream,
            now,
        };
        let status = self.requirement(requirement, &mut verification).await;
        if status == Status::Ok {
            return None;
        }
        let realm = RequestView::new(request.head).original_uri();
        let challenge = if status == Status::JwtMissed {
            format!("Bearer realm=\"{realm}\"")
        } else {
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
        };
        let code = if status == Status::JwtAudienceNotAllowed {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let failure = Failure::JwtRejected {
            status: code,
            reason: if self.config.strip_failure_response {
                ""
            } else {
                status.message()
            },
        };
        Some((failure, challenge))
    }

    /// Envoy's verifier tree, children in order.
    fn requirement<'a>(
        &'a self,
        requirement: &'a JwtRequirement,
        verification: &'a mut Verification<'_>,
    ) -> BoxFuture<'a, Status> {
        Box::pin(async move {
            match requirement {
                JwtRequirement::Provider { name, audiences } => match self.providers.get(name) {
                    Some(provider) => self.provider(provider, audiences, verification).await,
                    None => Status::JwtUnknownIssuer,
                },
                JwtRequirement::All(children) => {
                    for child in children {
                        let status = self.requirement(child, verification).await;
                        if status != Status::Ok {
                            return status;
                        }
                    }
                    Status::Ok
                }
                JwtRequirement::Any(children) => self.any(children, verification).await,
                JwtRequirement::AllowMissing => {
                    match self.any_provider(verification, false).await {
                        Status::JwtMissed => Status::Ok,
                        status => status,
                    }
                }
                JwtRequirement::AllowMissingOrFailed => {
                    self.any_provider(verification, true).await;
                    Status::Ok
                }
            }
        })
    }

    /// `requires_any`: OK when a child is; otherwise the most telling failure (anything
    /// before an unknown issuer, an unknown issuer before a missing token), which
    /// `allow_missing` and `allow_missing_or_failed` among the children forgive.
    async fn any(
        &self,
        children: &[JwtRequirement],
        verification: &mut Verification<'_>,
    ) -> Status {
        let allow_missing_or_failed = children
            .iter()
            .any(|c| matches!(c, JwtRequirement::AllowMissingOrFailed));
        let allow_missing = children
            .iter()
            .any(|c| matches!(c, JwtRequirement::AllowMissing));
        let verifiers: Vec<&JwtRequirement> = children
            .iter()
            .filter(|c| {
                !matches!(
                    c,
                    JwtRequirement::AllowMissing | JwtRequirement::AllowMissingOrFailed
                )
            })
            .collect();
        if verifiers.is_empty() {
            let only = if allow_missing_or_failed {
                JwtRequirement::AllowMissingOrFailed
            } else {
                JwtRequirement::AllowMissing
            };
            return self.requirement(&only, verification).await;
        }
        let mut final_status = Status::JwtMissed;
        for child in verifiers {
            let status = self.requirement(child, verification).await;
            if status == Status::Ok {
                return Status::Ok;
            }
            if (status != Status::JwtMissed && status != Status::JwtUnknownIssuer)
                || final_status == Status::JwtMissed
            {
                final_status = status;
            }
        }
        if allow_missing_or_failed || (allow_missing && final_status == Status::JwtMissed) {
            Status::Ok
        } else {
            final_status
        }
    }

    /// One provider's tokens: the last one found is tried first; the first that verifies
    /// wins, else the last failure counts.
    async fn provider(
        &self,
        provider: &Provider,
        audiences: &[String],
        verification: &mut Verification<'_>,
    ) -> Status {
        sanitize(verification.head, &provider.config);
        let tokens = extract::extract(verification.head, &provider.locations);
        if tokens.is_empty() {
            return Status::JwtMissed;
        }
        let mut status = Status::JwtMissed;
        for found in tokens.iter().rev() {
            status = self
                .verify(found, Some(provider), audiences, verification)
                .await;
            if status == Status::Ok {
                break;
            }
        }
        status
    }

    /// `allow_missing` and `allow_missing_or_failed`: tokens at any provider's locations,
    /// each verified by the provider of its issuer.
    async fn any_provider(
        &self,
        verification: &mut Verification<'_>,
        allow_failed: bool,
    ) -> Status {
        let mut locations: Vec<(Location, String)> = Vec::new();
        for provider in self.providers.values() {
            sanitize(verification.head, &provider.config);
            for location in &provider.locations {
                if !locations.contains(location) {
                    locations.push(location.clone());
                }
            }
        }
        let tokens = extract::extract(verification.head, &locations);
        let mut status = Status::JwtMissed;
        for found in tokens.iter().rev() {
            status = self.verify(found, None, &[], verification).await;
            if status == Status::Ok && !allow_failed {
                break;
            }
        }
        status
    }

    /// Envoy's `AuthenticatorImpl::startVerify` for one token: parse, issuer, time,
    /// audience, keys, signature; then the payload and claims go upstream and the token
    /// leaves the request unless forwarded.
    async fn verify(
        &self,
        found: &Found,
        provider: Option<&Provider>,
        audiences: &[String],
        verification: &mut Verification<'_>,
    ) -> Status {
        let jwt = match Jwt::parse(&found.token) {
            Ok(jwt) => jwt,
            Err(status) => return status,
        };
        let provider = match provider {
            Some(provider) => {
                let issuer = &provider.config.issuer;
                if !issuer.is_empty() && *issuer != jwt.issuer {
                    return Status::JwtUnknownIssuer;
                }
                provider
            }
            None => {
                let by_issuer = self.providers.values().find(|p| {
                    p.config.issuer == jwt.issuer
                        && p.locations.iter().any(|(l, _)| *l == found.location)
                });
                match by_issuer {
                    Some(provider) => provider,
                    None => return Status::JwtUnknownIssuer,
                }
            }
        };
        let config = &provider.config;
        if let Err(status) = jwt.check_time(verification.now, config.clock_skew.as_secs()) {
            return status;
        }
        let allowed = if audiences.is_empty() {
            &config.audiences
        } else {
            audiences
        };
        if !jwt.audience_allowed(allowed) {
            return Status::JwtAudienceNotAllowed;
        }
        let keys = match provider.keys.keys(verification.upstream).await {
            Ok(keys) => keys,
            Err(status) => return status,
        };
        if let Err(status) = jwt.verify(&keys) {
            return status;
        }
        let head = &mut *verification.head;
        if let Some(name) = &config.forward_payload_header {
            let mut payload = jwt.payload_base64url.clone();
            if config.pad_forward_payload_header {
                while payload.len() % 4 != 0 {
                    payload.push('=');
                }
            }
            set_header(head, name, &payload, false);
        }
        for claim in &config.claim_to_headers {
            if let Some(value) = claim_value(&jwt.claims, &claim.claim_name) {
                set_header(head, &claim.header_name, &value, true);
            }
        }
        if !config.forward {
            extract::remove(head, &found.location);
        }
        Status::Ok
    }
}

/// Headers a provider writes are never taken from the client.
fn sanitize(head: &mut http::request::Parts, provider: &JwtProvider) {
    if let Some(name) = &provider.forward_payload_header {
        head.headers.remove(name.as_str());
    }
    for claim in &provider.claim_to_headers {
        head.headers.remove(claim.header_name.as_str());
    }
}

fn set_header(head: &mut http::request::Parts, name: &str, value: &str, replace: bool) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        if replace {
            head.headers.insert(name, value);
        } else {
            head.headers.append(name, value);
        }
    }
}

/// A claim (nested claims named `a.b`) as a header value: strings as they are, numbers and
/// booleans written out; other values are not copied.
fn claim_value(claims: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_cors_preflight(head: &http::request::Parts) -> bool {
    head.method == Method::OPTIONS
        && head.headers.get("origin").is_some_and(|v| !v.is_empty())
        && head
            .headers
            .get("access-control-request-method")
            .is_some_and(|v| !v.is_empty())
}

/// A rule's route match: path (with its case sensitivity), headers and query parameters.
fn rule_matches(rule: &RouteMatch, head: &http::request::Parts) -> bool {
    let view = RequestView::new(head);
    let path = view.path();
    let same = |a: &str, b: &str| {
        if rule.case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    };
    let path_ok = match &rule.path {
        PathMatch::Prefix(prefix) => path
            .get(..prefix.len())
            .is_some_and(|start| same(start, prefix)),
        PathMatch::Path(exact) => same(path, exact),
        PathMatch::PathSeparatedPrefix(prefix) => {
            path.get(..prefix.len())
                .is_some_and(|start| same(start, prefix))
                && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
        }
        PathMatch::SafeRegex(regex) => regex.is_full_match(path),
    };
    path_ok
        && (!rule.grpc || view.is_grpc())
        && rule.headers.iter().all(|matcher| {
            matcher.matches_values(view.header_values(&matcher.name).iter().map(|v| &**v))
        })
        && rule
            .query_parameters
            .iter()
            .all(|q| q.matches(view.query_parameter(&q.name)))
}

/// A `base64url` payload as jwt_authn forwards it, for tests that build tokens.
#[cfg(test)]
pub(super) fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use futures::FutureExt;
    use mesh_xds::config::{ClaimToHeader, JwksSource, JwtRule};

    use super::*;

    const SECRET_JWKS: &str = r#"{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0"}]}"#;

    pub(crate) fn provider() -> JwtProvider {
        JwtProvider {
            issuer: "https://issuer.test".into(),
            audiences: vec!["api".into()],
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            forward: false,
            forward_payload_header: Some("x-jwt-payload".into()),
            pad_forward_payload_header: false,
            clock_skew: Duration::from_secs(60),
            claim_to_headers: vec![ClaimToHeader {
                header_name: "x-sub".into(),
                claim_name: "sub".into(),
            }],
            jwks: JwksSource::Local(SECRET_JWKS.into()),
        }
    }

    fn hs256(payload: &str) -> String {
        let header = base64url(br#"{"alg":"HS256","kid":"k1"}"#);
        let body = base64url(payload.as_bytes());
        let key = jsonwebtoken::EncodingKey::from_secret(b"secret");
        let signature = jsonwebtoken::crypto::sign(
            format!("{header}.{body}").as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .expect("sign");
        format!("{header}.{body}.{signature}")
    }

    fn filter(requires: JwtRequirement) -> JwtFilter {
        let config = JwtAuthentication {
            providers: BTreeMap::from([("p".to_owned(), Arc::new(provider()))]),
            rules: vec![JwtRule {
                r#match: RouteMatch {
                    path: PathMatch::Prefix("/".into()),
                    case_sensitive: true,
                    headers: Vec::new(),
                    query_parameters: Vec::new(),
                    grpc: false,
                },
                requires: Some(requires),
            }],
            requirement_map: BTreeMap::new(),
            bypass_cors_preflight: true,
            strip_failure_response: false,
        };
        JwtFilter::new(&Arc::new(config)).expect("valid")
    }

    fn run(filter: &JwtFilter, token: Option<&str>) -> (Option<Failure>, http::HeaderMap) {
        let mut builder = http::Request::get("http://a.test/x").header("x-sub", "spoofed");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = crate::shared::RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = Egress::new();
        let mut body = crate::filters::chain::test_body();
        let failure = filter
            .decode(
                &mut FilterRequest {
                    head: &mut head,
                    meta: &meta,
                    cluster: None,
                    routed: true,
                    body: &mut body,
                    upstream: &upstream,
                },
                None,
            )
            .now_or_never()
            .expect("local keys need no fetch")
            .map(|(failure, _)| failure);
        (failure, head.headers)
    }

    fn rejected(status: u16, reason: &'static str) -> Option<Failure> {
        Some(Failure::JwtRejected {
            status: StatusCode::from_u16(status).expect("status"),
            reason,
        })
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    #[test]
    fn a_valid_token_passes_with_its_payload_and_claims_and_leaves_the_request() {
        let payload = format!(
            r#"{{"iss":"https://issuer.test","aud":"api","sub":"alice","exp":{}}}"#,
            now() + 600
        );
        let filter = filter(JwtRequirement::Provider {
            name: "p".into(),
            audiences: Vec::new(),
        });
        let (failure, headers) = run(&filter, Some(&hs256(&payload)));
        assert_eq!(failure, None);
        assert_eq!(
            headers["x-sub"], "alice",
            "the claim replaces the spoofed header"
        );
        assert_eq!(
            headers["x-jwt-payload"],
            base64url(payload.as_bytes()).as_str()
        );
        assert!(!headers.contains_key("authorization"), "not forwarded");
    }

    #[test]
    fn failures_answer_with_jwt_verify_libs_status() {
        let filter = filter(JwtRequirement::Provider {
            name: "p".into(),
            audiences: Vec::new(),
        });
        assert_eq!(run(&filter, None).0, rejected(401, "Jwt is missing"));
        let expired = format!(
            r#"{{"iss":"https://issuer.test","aud":"api","exp":{}}}"#,
            now() - 600
        );
        assert_eq!(
            run(&filter, Some(&hs256(&expired))).0,
            rejected(401, "Jwt is expired")
        );
        let audience = r#"{"iss":"https://issuer.test","aud":"other"}"#;
        assert_eq!(
            run(&filter, Some(&hs256(audience))).0,
            rejected(403, "Audiences in Jwt are not allowed")
        );
        let issuer = r#"{"iss":"https://elsewhere.test","aud":"api"}"#;
        assert_eq!(
            run(&filter, Some(&hs256(issuer))).0,
            rejected(401, "Jwt issuer is not configured")
        );
        let mut forged = hs256(r#"{"iss":"https://issuer.test","aud":"api"}"#);
        forged.push('A');
        assert_eq!(
            run(&filter, Some(&forged)).0,
            rejected(401, "Jwt verification fails")
        );
    }

    #[test]
    fn allow_missing_forgives_a_missing_token_only() {
        let filter = filter(JwtRequirement::Any(vec![
            JwtRequirement::Provider {
                name: "p".into(),
                audiences: Vec::new(),
            },
            JwtRequirement::AllowMissing,
        ]));
        assert_eq!(run(&filter, None).0, None);
        let expired = format!(
            r#"{{"iss":"https://issuer.test","aud":"api","exp":{}}}"#,
            now() - 600
        );
        assert_eq!(
            run(&filter, Some(&hs256(&expired))).0,
            rejected(401, "Jwt is expired")
        );
        let lenient = self::filter(JwtRequirement::AllowMissingOrFailed);
        assert_eq!(run(&lenient, Some(&hs256(&expired))).0, None);
    }

    #[test]
    fn nested_claims_are_read_by_dotted_names() {
        let claims: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"a":{"b":7},"s":"x","l":[1]}"#).expect("json");
        assert_eq!(claim_value(&claims, "a.b").as_deref(), Some("7"));
        assert_eq!(claim_value(&claims, "s").as_deref(), Some("x"));
        assert_eq!(claim_value(&claims, "l"), None);
    }
}
