//! A workload's external authorization (`ext_authz`) and JWT authentication (`jwt`), written
//! in the mesh config and compiled into the configurations of Envoy's
//! `envoy.filters.http.ext_authz` and `envoy.filters.http.jwt_authn`, which the host runs
//! before the workload's RBAC. The services they call are clusters of the host's
//! configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mesh_xds::config::{
    AuthzService, BufferSettings, ClaimToHeader, ExtAuthz, Fraction, GrpcServiceTarget,
    HttpAuthzService, JwksSource, JwtAuthentication, JwtHeader, JwtProvider, JwtRequirement,
    JwtRule, PathMatch, RemoteJwks, RouteMatch, StringMatcher,
};
use serde::Deserialize;

use crate::PolicyConfigErrors;
use crate::limits::{HumanValue, duration};

/// Envoy's ext_authz timeout when none is written.
const DEFAULT_AUTHZ_TIMEOUT: Duration = Duration::from_millis(200);
/// Envoy's JWKS cache duration when none is written.
const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);

/// `ext_authz:` of a workload policy: exactly one of `grpc` and `http`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtAuthzConfig {
    /// An `envoy.service.auth.v3.Authorization` service.
    pub grpc: Option<GrpcAuthzConfig>,
    /// An HTTP authorization service.
    pub http: Option<HttpAuthzConfig>,
    /// A service that fails lets requests through.
    pub failure_mode_allow: bool,
    /// The status of a refusal when the service fails (default 403).
    pub status_on_error: Option<u16>,
    /// The body goes with the check, up to this many bytes.
    pub with_request_body: Option<BodyConfig>,
}

/// `ext_authz.grpc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcAuthzConfig {
    /// The cluster serving it.
    pub cluster: String,
    /// The `:authority` of the calls (default: the cluster name).
    pub authority: Option<String>,
    /// Time allowed for a check, for example `"500ms"` (default 200 ms).
    pub timeout: Option<HumanValue>,
}

/// `ext_authz.http`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpAuthzConfig {
    /// The cluster serving it.
    pub cluster: String,
    /// Prepended to the request's path.
    pub path_prefix: String,
    /// Time allowed for a check (default 200 ms).
    pub timeout: Option<HumanValue>,
    /// Request headers sent besides `authorization`, `:method`, `:path` and `host`.
    pub allowed_headers: Vec<String>,
    /// Headers of an allowing answer that go to the workload.
    pub allowed_upstream_headers: Vec<String>,
    /// Headers of a denying answer that go to the client (default: all).
    pub allowed_client_headers: Vec<String>,
}

/// `ext_authz.with_request_body`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BodyConfig {
    /// At most this many bytes go with the check.
    pub max_request_bytes: u32,
    /// A longer body is checked with its beginning (else 413).
    pub allow_partial_message: bool,
}

/// `jwt:` of a workload policy: providers, and which of them a request needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, JwtProviderConfig>,
    /// A valid token of any of these providers is required (default: any provider).
    pub requires: Vec<String>,
    /// Requests without a token pass (a bad token is still refused).
    pub allow_missing: bool,
}

/// One provider of `jwt.providers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtProviderConfig {
    /// The `iss` tokens carry.
    pub issuer: String,
    /// Tokens must name one of these in `aud` (empty: any).
    pub audiences: Vec<String>,
    /// The JWKS document itself.
    pub local_jwks: Option<String>,
    /// Where the JWKS is fetched.
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Headers the token is read from (default `authorization: Bearer`).
    pub from_headers: Vec<JwtHeaderConfig>,
    /// Query parameters the token is read from.
    pub from_params: Vec<String>,
    /// The token stays in the request.
    pub forward: bool,
    /// The verified payload goes to the workload in this header.
    pub forward_payload_header: Option<String>,
    /// Claims copied into request headers.
    pub claim_to_headers: Vec<ClaimConfig>,
}

/// `remote_jwks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteJwksConfig {
    /// The JWKS URI; its authority is the `Host` of the fetch.
    pub uri: String,
    /// The cluster serving it.
    pub cluster: String,
    /// Time allowed for a fetch (default 1 s).
    pub timeout: Option<HumanValue>,
    /// How long fetched keys are used (default 10 minutes).
    pub cache_duration: Option<HumanValue>,
}

/// One of `from_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtHeaderConfig {
    /// The header.
    pub name: String,
    /// What precedes the token, such as `"Bearer "`.
    pub value_prefix: String,
}

/// One of `claim_to_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimConfig {
    /// The request header.
    pub header_name: String,
    /// The claim (`a.b` for nested claims).
    pub claim_name: String,
}

impl ExtAuthzConfig {
    pub(crate) fn compile(
        &self,
        path: &str,
        errors: &mut PolicyConfigErrors,
    ) -> Option<Arc<ExtAuthz>> {
        let timeout = |value: &Option<HumanValue>, at: &str, errors: &mut PolicyConfigErrors| {
            duration(value.as_ref(), at, errors).unwrap_or(DEFAULT_AUTHZ_TIMEOUT)
        };
        let exact = |names: &[String]| {
            names
                .iter()
                .map(|n| StringMatcher::exact(n.to_ascii_lowercase()))
                .collect::<Vec<_>>()
        };
        let service = match (&self.grpc, &self.http) {
            (Some(grpc), None) => {
                if grpc.cluster.is_empty() {
                    errors.push(
                        format!("{path}.grpc.cluster"),
                        "name the cluster of the authorization service",
                    );
                }
                let authority = grpc
                    .authority
                    .clone()
                    .unwrap_or_else(|| grpc.cluster.clone());
                if http::uri::Authority::try_from(authority.as_str()).is_err() {
                    errors.push(
                        format!("{path}.grpc.authority"),
                        format!("{authority:?} is not a valid :authority; set `authority`"),
                    );
                }
                AuthzService::Grpc(GrpcServiceTarget {
                    cluster: grpc.cluster.clone(),
                    authority,
                    timeout: Some(timeout(
                        &grpc.timeout,
                        &format!("{path}.grpc.timeout"),
                        errors,
                    )),
                    initial_metadata: Vec::new(),
                })
            }
            (None, Some(http)) => {
                if http.cluster.is_empty() {
                    errors.push(
                        format!("{path}.http.cluster"),
                        "name the cluster of the authorization service",
                    );
                }
                AuthzService::Http(HttpAuthzService {
                    cluster: http.cluster.clone(),
                    uri: String::new(),
                    timeout: timeout(&http.timeout, &format!("{path}.http.timeout"), errors),
                    path_prefix: http.path_prefix.clone(),
                    allowed_headers: exact(&http.allowed_headers),
                    headers_to_add: Vec::new(),
                    allowed_upstream_headers: exact(&http.allowed_upstream_headers),
                    allowed_upstream_headers_to_append: Vec::new(),
                    allowed_client_headers: exact(&http.allowed_client_headers),
                    allowed_client_headers_on_success: Vec::new(),
                })
            }
            _ => {
                errors.push(path, "set exactly one of `grpc` and `http`");
                return None;
            }
        };
        let status_on_error = self.status_on_error.unwrap_or(403);
        if !(100..600).contains(&status_on_error) {
            errors.push(
                format!("{path}.status_on_error"),
                format!("{status_on_error} is not an HTTP status"),
            );
        }
        Some(Arc::new(ExtAuthz {
            service,
            failure_mode_allow: self.failure_mode_allow,
            failure_mode_allow_header_add: false,
            status_on_error,
            with_request_body: self.with_request_body.as_ref().map(|b| BufferSettings {
                max_request_bytes: b.max_request_bytes,
                allow_partial_message: b.allow_partial_message,
                pack_as_bytes: false,
            }),
            allowed_headers: Vec::new(),
            disallowed_headers: Vec::new(),
            include_peer_certificate: true,
            filter_enabled: Fraction::ALL,
            deny_at_disable: false,
            encode_raw_headers: false,
        }))
    }
}

impl JwtConfig {
    pub(crate) fn compile(
        &self,
        path: &str,
        errors: &mut PolicyConfigErrors,
    ) -> Option<Arc<JwtAuthentication>> {
        if self.providers.is_empty() {
            errors.push(format!("{path}.providers"), "name at least one provider");
            return None;
        }
        let providers: BTreeMap<String, Arc<JwtProvider>> = self
            .providers
            .iter()
            .map(|(name, provider)| {
                let at = format!("{path}.providers.{name}");
                (name.clone(), Arc::new(provider.compile(&at, errors)))
            })
            .collect();
        let names: Vec<&String> = if self.requires.is_empty() {
            providers.keys().collect()
        } else {
            self.requires.iter().collect()
        };
        for (i, name) in self.requires.iter().enumerate() {
            if !providers.contains_key(name) {
                errors.push(
                    format!("{path}.requires[{i}]"),
                    format!("no provider named {name:?}"),
                );
            }
        }
        let mut any: Vec<JwtRequirement> = names
            .into_iter()
            .map(|name| JwtRequirement::Provider {
                name: name.clone(),
                audiences: Vec::new(),
            })
            .collect();
        if self.allow_missing {
            any.push(JwtRequirement::AllowMissing);
        }
        let requires = if any.len() == 1 {
            any.pop()
        } else {
            Some(JwtRequirement::Any(any))
        };
        Some(Arc::new(JwtAuthentication {
            providers,
            rules: vec![JwtRule {
                r#match: RouteMatch {
                    path: PathMatch::Prefix("/".into()),
                    case_sensitive: true,
                    headers: Vec::new(),
                    query_parameters: Vec::new(),
                    grpc: false,
                },
                requires,
            }],
            requirement_map: BTreeMap::new(),
            bypass_cors_preflight: true,
            strip_failure_response: false,
        }))
    }
}

impl JwtProviderConfig {
    fn compile(&self, path: &str, errors: &mut PolicyConfigErrors) -> JwtProvider {
        let jwks = match (&self.local_jwks, &self.remote_jwks) {
            (Some(local), None) => JwksSource::Local(local.clone()),
            (None, Some(remote)) => {
                if remote.cluster.is_empty() || remote.uri.parse::<http::Uri>().is_err() {
                    errors.push(
                        format!("{path}.remote_jwks"),
                        "needs a `uri` and the `cluster` serving it",
                    );
                }
                JwksSource::Remote(RemoteJwks {
                    uri: remote.uri.clone(),
                    cluster: remote.cluster.clone(),
                    timeout: duration(
                        remote.timeout.as_ref(),
                        &format!("{path}.remote_jwks.timeout"),
                        errors,
                    )
                    .unwrap_or(Duration::from_secs(1)),
                    cache_duration: duration(
                        remote.cache_duration.as_ref(),
                        &format!("{path}.remote_jwks.cache_duration"),
                        errors,
                    )
                    .unwrap_or(DEFAULT_CACHE_DURATION),
                })
            }
            _ => {
                errors.push(path, "set exactly one of `local_jwks` and `remote_jwks`");
                JwksSource::Local(String::new())
            }
        };
        JwtProvider {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            from_headers: self
                .from_headers
                .iter()
                .map(|h| JwtHeader {
                    name: h.name.to_ascii_lowercase(),
                    value_prefix: h.value_prefix.clone(),
                })
                .collect(),
            from_params: self.from_params.clone(),
            from_cookies: Vec::new(),
            forward: self.forward,
            forward_payload_header: self
                .forward_payload_header
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            pad_forward_payload_header: false,
            clock_skew: Duration::from_secs(60),
            claim_to_headers: self
                .claim_to_headers
                .iter()
                .map(|c| ClaimToHeader {
                    header_name: c.header_name.to_ascii_lowercase(),
                    claim_name: c.claim_name.clone(),
                })
                .collect(),
            jwks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of<T>(compile: impl FnOnce(&mut PolicyConfigErrors) -> T) -> Vec<String> {
        let mut errors = PolicyConfigErrors::default();
        compile(&mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ext_authz_needs_exactly_one_service_and_a_valid_authority() {
        let both: ExtAuthzConfig =
            serde_yaml::from_str("{ grpc: { cluster: a }, http: { cluster: b } }").expect("yaml");
        assert_eq!(
            errors_of(|e| both.compile("ext_authz", e)),
            ["ext_authz: set exactly one of `grpc` and `http`"]
        );
        let istio: ExtAuthzConfig =
            serde_yaml::from_str("{ grpc: { cluster: \"outbound|9000||authz\" } }").expect("yaml");
        assert!(
            errors_of(|e| istio.compile("ext_authz", e))[0].starts_with("ext_authz.grpc.authority")
        );
    }

    #[test]
    fn jwt_requires_any_named_provider_and_may_allow_missing_tokens() {
        let config: JwtConfig = serde_yaml::from_str(
            r#"
providers:
  a: { issuer: https://a.test, local_jwks: '{"keys":[]}' }
  b: { issuer: https://b.test, remote_jwks: { uri: "https://b.test/jwks", cluster: b, cache_duration: "5m" } }
allow_missing: true
"#,
        )
        .expect("yaml");
        let mut errors = PolicyConfigErrors::default();
        let compiled = config.compile("jwt", &mut errors).expect("compiles");
        assert!(errors.is_empty(), "{errors}");
        assert!(matches!(
            &compiled.rules[0].requires,
            Some(JwtRequirement::Any(list)) if list.len() == 3 && list[2] == JwtRequirement::AllowMissing
        ));
        let unknown: JwtConfig =
            serde_yaml::from_str("{ providers: { a: { local_jwks: x } }, requires: [c] }")
                .expect("yaml");
        assert_eq!(
            errors_of(|e| unknown.compile("jwt", e)),
            ["jwt.requires[0]: no provider named \"c\""]
        );
    }
}
