//! A workload's whole policy: raw configuration, validation, and the two
//! checks a host makes per request (inbound and outbound).

use std::sync::Arc;

use serde::Deserialize;

use crate::PolicyConfigErrors;
use crate::PolicyDenied;
use mesh_xds::config::{ExtAuthz, JwtAuthentication};

use crate::egress::{EgressConfig, EgressRequest, EgressRules};
use crate::external_auth::{ExtAuthzConfig, JwtConfig};
use crate::grpc::GrpcFlags;
use crate::limits::{Limits, LimitsConfig};
use crate::rate_limit::{RateLimitConfig, TokenBucket};
use crate::rbac::{RbacConfig, RbacRules};
use crate::tracing::TracingPolicy;

/// The policy section of one workload, as written in the mesh config file.
/// Every key is optional; see the crate documentation for a full example.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadPolicyConfig {
    /// `grpc: { serve, outbound }`.
    pub grpc: GrpcFlags,
    /// `egress: { allow: [...] }`.
    pub egress: EgressConfig,
    /// `rbac: { action, policies }`; omitted means every inbound request is allowed.
    pub rbac: Option<RbacConfig>,
    /// `limits: { ... }`; omitted keys keep their defaults.
    pub limits: LimitsConfig,
    /// `rate_limit: { max_tokens, tokens_per_fill, fill_interval }`; omitted means none.
    pub rate_limit: Option<RateLimitConfig>,
    /// `ext_authz: { grpc | http, ... }`: an authorization service checks each request.
    pub ext_authz: Option<ExtAuthzConfig>,
    /// `jwt: { providers, requires, allow_missing }`: JSON Web Tokens a request carries.
    pub jwt: Option<JwtConfig>,
    /// `tracing: { inject_traceparent }`.
    pub tracing: TracingPolicy,
}

/// A workload's validated policy.
///
/// The default serves plain HTTP inbound and nothing else: no gRPC, every
/// outbound request denied, no authorization, default limits, no rate limit.
/// The host compiles the inbound part (gRPC flag, JWT authentication, external
/// authorization, RBAC, rate limit) into the same HTTP filters a connection
/// manager runs.
#[derive(Debug, Clone, Default)]
pub struct WorkloadPolicy {
    /// gRPC flags.
    pub grpc: GrpcFlags,
    /// Egress allow rules (deny-all when empty).
    pub egress: EgressRules,
    /// Inbound authorization, as Envoy RBAC rules; `None` allows every request.
    pub rbac: Option<Arc<RbacRules>>,
    /// Size, time, concurrency and memory limits.
    pub limits: Limits,
    /// The local rate limit's token bucket; `None`: no limit.
    pub rate_limit: Option<TokenBucket>,
    /// External authorization, as Envoy's ext_authz filter configuration.
    pub ext_authz: Option<Arc<ExtAuthz>>,
    /// JWT authentication, as Envoy's jwt_authn filter configuration.
    pub jwt: Option<Arc<JwtAuthentication>>,
    /// What the component's outbound requests carry of their trace.
    pub tracing: TracingPolicy,
}

impl WorkloadPolicy {
    /// Validates the configuration, collecting every bad entry (each with a
    /// path such as `egress.allow[2].authority`) before failing.
    pub fn from_config(
        config: &WorkloadPolicyConfig,
    ) -> Result<WorkloadPolicy, PolicyConfigErrors> {
        let mut errors = PolicyConfigErrors::default();
        let egress = crate::egress::compile_config(&config.egress, "egress", &mut errors);
        let rbac = config
            .rbac
            .as_ref()
            .map(|r| Arc::new(r.compile("rbac", &mut errors)));
        let limits = config.limits.compile("limits", &mut errors);
        let rate_limit = config
            .rate_limit
            .as_ref()
            .and_then(|r| r.compile("rate_limit", &mut errors));
        let ext_authz = config
            .ext_authz
            .as_ref()
            .and_then(|e| e.compile("ext_authz", &mut errors));
        let jwt = config
            .jwt
            .as_ref()
            .and_then(|j| j.compile("jwt", &mut errors));
        errors.into_result(WorkloadPolicy {
            grpc: config.grpc,
            egress,
            rbac,
            limits,
            rate_limit,
            ext_authz,
            jwt,
            tracing: config.tracing,
        })
    }

    /// Decides an outbound request before mesh routing: gRPC flags, then
    /// egress rules.
    pub fn check_outbound(
        &self,
        req: &EgressRequest<'_>,
        is_grpc: bool,
    ) -> Result<(), PolicyDenied> {
        self.grpc.check_outbound(is_grpc)?;
        self.egress.check(req)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
