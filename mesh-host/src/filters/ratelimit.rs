//! `envoy.filters.http.ratelimit`: the descriptors of a request (built from the filter's, the
//! route's or the virtual host's `rate_limits`) go to a global rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`); OVER_LIMIT refuses the
//! request (429, gRPC `UNAVAILABLE`), a failing service lets it through unless
//! `failure_mode_deny`.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3 as common;
use envoy_types::pb::envoy::service::ratelimit::v3 as service;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, rate_limit::Unit,
};
use http::{HeaderName, HeaderValue, StatusCode};
use mesh_xds::config::{
    GlobalRateLimit, GlobalRateLimitPerRoute, RateLimitPolicy, RequestType, VhRateLimits,
};

use super::chain::{FilterRequest, RateLimits};
use super::descriptors::{descriptors, route_policies};
use super::response_edits::{Edit, ResponseEdits};
use super::upstream_call::ClusterChannel;
use crate::egress::Egress;
use crate::shared::{EditList, Failure};

/// The request is internal when this header says `true`.
const ENVOY_INTERNAL: &str = "x-envoy-internal";
/// Marks Envoy's refusals.
const ENVOY_RATELIMITED: &str = "x-envoy-ratelimited";

/// A compiled global rate limit filter.
pub(super) struct GlobalRateLimiter {
    config: Arc<GlobalRateLimit>,
    rate_limited_status: StatusCode,
    status_on_error: StatusCode,
    response_headers: EditList,
}

/// The `rate_limits` that apply to a request: the route's and its virtual host's, with the
/// most specific per-route configuration of the filter.
pub(super) struct RouteLimits<'a> {
    pub(super) route: Option<&'a RateLimits>,
    pub(super) virtual_host: Option<&'a RateLimits>,
    pub(super) per_route: Option<&'a GlobalRateLimitPerRoute>,
}

impl GlobalRateLimiter {
    pub(super) fn new(config: &Arc<GlobalRateLimit>) -> Result<GlobalRateLimiter, String> {
        let status = |code: u16| {
            StatusCode::from_u16(code).map_err(|_| format!("{code} is not an HTTP status"))
        };
        Ok(GlobalRateLimiter {
            rate_limited_status: status(config.rate_limited_status)?,
            status_on_error: status(config.status_on_error)?,
            response_headers: EditList::compile(&config.response_headers_to_add, &[])
                .map_err(|error| error.to_string())?,
            config: config.clone(),
        })
    }

    /// Asks the service about the request; the response edits for encoding and the refusal.
    pub(super) async fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        limits: RouteLimits<'_>,
    ) -> (ResponseEdits, Option<Failure>) {
        let nothing = (ResponseEdits::default(), None);
        let internal = request
            .head
            .headers
            .get(ENVOY_INTERNAL)
            .is_some_and(|v| v.as_bytes() == b"true");
        let applies = match self.config.request_type {
            RequestType::Both => true,
            RequestType::Internal => internal,
            RequestType::External => !internal,
        };
        // Envoy asks only for requests routed to a cluster.
        if !applies || request.cluster.is_none() {
            return nothing;
        }
        let descriptors = descriptors(
            self.policies(&limits)
                .into_iter()
                .filter(|p| p.stage == self.config.stage),
            request,
        );
        if descriptors.is_empty() {
            return nothing;
        }
        let domain = limits
            .per_route
            .map(|p| p.domain.as_str())
            .filter(|d| !d.is_empty())
            .unwrap_or(&self.config.domain);
        let upstream = request.upstream;
        let answer = match self.ask(upstream, domain, descriptors).await {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!("rate limit service: {why}");
                return if self.config.failure_mode_deny {
                    let failure = Failure::RateLimitServiceError {
                        status: self.status_on_error,
                    };
                    (ResponseEdits::default(), Some(failure))
                } else {
                    nothing
                };
            }
        };
        let mut edits = ResponseEdits::default();
        for header in &answer.response_headers_to_add {
            edits.push(Edit::Add, &header.key, &header.value);
        }
        if self.config.x_ratelimit_headers {
            x_ratelimit_headers(&answer.statuses, &mut edits);
        }
        if answer.overall_code == Code::OverLimit as i32 {
            if !self.config.disable_x_envoy_ratelimited_header {
                edits.push(Edit::Set, ENVOY_RATELIMITED, "true");
            }
            let failure = Failure::RateLimitedByService {
                status: self.rate_limited_status,
                resource_exhausted: self.config.rate_limited_as_resource_exhausted,
                body: String::from_utf8_lossy(&answer.raw_body).into_owned(),
            };
            return (edits, Some(failure));
        }
        for header in &answer.request_headers_to_add {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.key.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(&header.value),
            ) {
                request.head.headers.insert(name, value);
            }
        }
        (edits, None)
    }

    /// The filter's own `rate_limits` unless the route's per-filter configuration names
    /// some; else the route's, with the virtual host's as `vh_rate_limits` says.
    fn policies<'a>(&'a self, limits: &RouteLimits<'a>) -> Vec<&'a RateLimitPolicy> {
        if let Some(per_route) = limits.per_route.filter(|p| !p.rate_limits.is_empty()) {
            return per_route.rate_limits.iter().collect();
        }
        if !self.config.rate_limits.is_empty() {
            return self.config.rate_limits.iter().collect();
        }
        let vh_rate_limits = limits
            .per_route
            .map_or(VhRateLimits::Override, |p| p.vh_rate_limits);
        route_policies(limits.route, limits.virtual_host, vh_rate_limits)
    }

    async fn ask(
        &self,
        upstream: &Egress,
        domain: &str,
        descriptors: Vec<Vec<(String, String)>>,
    ) -> Result<service::RateLimitResponse, String> {
        let target = &self.config.service;
        let authority = target
            .authority
            .parse()
            .map_err(|error| format!("authority {}: {error}", target.authority))?;
        let timeout = target
            .timeout
            .unwrap_or(self.config.timeout)
            .min(self.config.timeout);
        let channel = ClusterChannel::new(upstream, &target.cluster, authority, Some(timeout));
        let mut client = service::rate_limit_service_client::RateLimitServiceClient::new(channel);
        let mut call = tonic::Request::new(service::RateLimitRequest {
            domain: domain.to_owned(),
            descriptors: descriptors
                .into_iter()
                .map(|entries| common::RateLimitDescriptor {
                    entries: entries
                        .into_iter()
                        .map(|(key, value)| common::rate_limit_descriptor::Entry { key, value })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            hits_addend: 0,
        });
        call.set_timeout(timeout);
        for (key, value) in &target.initial_metadata {
            if let (Ok(key), Ok(value)) = (
                key.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                value.parse(),
            ) {
                call.metadata_mut().insert(key, value);
            }
        }
        match tokio::time::timeout(timeout, client.should_rate_limit(call)).await {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

/// `x-ratelimit-limit`, `-remaining` and `-reset` (draft 03) from the descriptor with the
/// fewest requests remaining, with every limit's quota policy (Envoy's
/// `XRateLimitHeaderUtils::create`).
fn x_ratelimit_headers(statuses: &[DescriptorStatus], edits: &mut ResponseEdits) {
    let mut policy = String::new();
    let mut lowest: Option<&DescriptorStatus> = None;
    for status in statuses {
        let Some(limit) = &status.current_limit else {
            continue;
        };
        if lowest.is_none_or(|l| status.limit_remaining < l.limit_remaining) {
            lowest = Some(status);
        }
        let window = match Unit::try_from(limit.unit) {
            Ok(Unit::Second) => 1,
            Ok(Unit::Minute) => 60,
            Ok(Unit::Hour) => 3_600,
            Ok(Unit::Day) => 86_400,
            Ok(Unit::Week) => 604_800,
            Ok(Unit::Month) => 2_592_000,
            Ok(Unit::Year) => 31_536_000,
            _ => 0,
        };
        if window != 0 {
            policy.push_str(&format!(", {};w={window}", limit.requests_per_unit));
            if !limit.name.is_empty() {
                policy.push_str(&format!(";name=\"{}\"", limit.name));
            }
        }
    }
    let Some(lowest) = lowest else {
        return;
    };
    let per_unit = lowest
        .current_limit
        .as_ref()
        .map_or(0, |l| l.requests_per_unit);
    let reset = lowest
        .duration_until_reset
        .as_ref()
        .map_or(0, |d| d.seconds);
    edits.push(
        Edit::Set,
        "x-ratelimit-limit",
        &format!("{per_unit}{policy}"),
    );
    edits.push(
        Edit::Set,
        "x-ratelimit-remaining",
        &lowest.limit_remaining.to_string(),
    );
    edits.push(Edit::Set, "x-ratelimit-reset", &reset.to_string());
}

impl GlobalRateLimiter {
    /// The filter's `response_headers_to_add`, which Envoy adds to its refusals.
    pub(super) fn refusal_headers(&self) -> &EditList {
        &self.response_headers
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::RateLimit;
    use envoy_types::pb::google::protobuf::Duration;

    use super::*;

    fn status(per_unit: u32, unit: Unit, remaining: u32, reset: i64) -> DescriptorStatus {
        DescriptorStatus {
            code: Code::Ok as i32,
            current_limit: Some(RateLimit {
                requests_per_unit: per_unit,
                unit: unit as i32,
                ..Default::default()
            }),
            limit_remaining: remaining,
            duration_until_reset: Some(Duration {
                seconds: reset,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn x_ratelimit_headers_describe_the_tightest_limit_with_every_policy() {
        let mut edits = ResponseEdits::default();
        x_ratelimit_headers(
            &[
                status(10, Unit::Minute, 7, 30),
                status(100, Unit::Hour, 3, 900),
                DescriptorStatus::default(),
            ],
            &mut edits,
        );
        let mut headers = http::HeaderMap::new();
        edits.apply(&mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "100, 10;w=60, 100;w=3600");
        assert_eq!(headers["x-ratelimit-remaining"], "3");
        assert_eq!(headers["x-ratelimit-reset"], "900");
    }
}
