//! `envoy.filters.http.jwt_authn`: JSON Web Tokens verified against each provider's keys,
//! with Envoy's requirement tree deciding which tokens a request needs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::route::RouteMatch;

/// `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtAuthentication {
    /// Providers by name.
    pub providers: BTreeMap<String, Arc<JwtProvider>>,
    /// The first rule whose match holds decides the request's requirement.
    pub rules: Vec<JwtRule>,
    /// Requirements that routes name (`requirement_map`).
    pub requirement_map: BTreeMap<String, JwtRequirement>,
    /// CORS preflights pass without a token.
    pub bypass_cors_preflight: bool,
    /// Refusals carry no body and no `www-authenticate` detail.
    pub strip_failure_response: bool,
}

/// `RequirementRule`: a route match and what it requires (`None`: nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct JwtRule {
    /// Envoy's route match (path, headers, query parameters).
    pub r#match: RouteMatch,
    /// The requirement, or `None` when the rule requires nothing.
    pub requires: Option<JwtRequirement>,
}

/// `JwtRequirement`.
#[derive(Clone, Debug, PartialEq)]
pub enum JwtRequirement {
    /// A valid token of this provider (with these audiences instead of the provider's, when
    /// not empty).
    Provider {
        /// The provider's name.
        name: String,
        /// Audiences that replace the provider's.
        audiences: Vec<String>,
    },
    /// Any one of these.
    Any(Vec<JwtRequirement>),
    /// All of these.
    All(Vec<JwtRequirement>),
    /// Tokens are verified when present; a missing one is fine, a bad one is not.
    AllowMissing,
    /// Tokens are verified when present; neither a missing nor a bad one refuses.
    AllowMissingOrFailed,
}

/// `JwtProvider`.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtProvider {
    /// The `iss` the token must carry (empty: any).
    pub issuer: String,
    /// The token must name one of these in `aud` (empty: any).
    pub audiences: Vec<String>,
    /// Headers the token is read from (default: `Authorization: Bearer`).
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token is read from (default: `access_token`).
    pub from_params: Vec<String>,
    /// Cookies the token is read from.
    pub from_cookies: Vec<String>,
    /// The token stays in the request (default: it is removed).
    pub forward: bool,
    /// The verified payload goes upstream base64url-encoded in this header.
    pub forward_payload_header: Option<String>,
    /// The payload header keeps base64 padding.
    pub pad_forward_payload_header: bool,
    /// Seconds of leeway on `exp` and `nbf` (default 60).
    pub clock_skew: Duration,
    /// Claims copied into request headers.
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Where the keys come from.
    pub jwks: JwksSource,
}

/// `JwtHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtHeader {
    /// The header (lower case).
    pub name: String,
    /// What precedes the token in its value (such as `Bearer `).
    pub value_prefix: String,
}

/// `JwtClaimToHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// The request header (lower case).
    pub header_name: String,
    /// The claim, nested claims separated by `.`.
    pub claim_name: String,
}

/// Where a provider's keys come from.
#[derive(Clone, Debug, PartialEq)]
pub enum JwksSource {
    /// `local_jwks`: the JWKS document itself.
    Local(String),
    /// `remote_jwks`: fetched over HTTP through a cluster and cached.
    Remote(RemoteJwks),
}

/// `RemoteJwks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteJwks {
    /// `http_uri.uri`.
    pub uri: String,
    /// `http_uri.cluster`.
    pub cluster: String,
    /// `http_uri.timeout`.
    pub timeout: Duration,
    /// How long fetched keys are used (default 10 minutes).
    pub cache_duration: Duration,
}

/// `PerRouteConfig` of the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtPerRoute {
    /// No verification for this route.
    Disabled,
    /// The requirement of `requirement_map` to enforce.
    RequirementName(String),
}
