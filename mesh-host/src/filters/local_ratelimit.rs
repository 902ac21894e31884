//! `envoy.filters.http.local_ratelimit`: token buckets in the host, no service to ask. A
//! request takes a token from each bucket whose descriptor it carries (strictest first) and,
//! unless a descriptor matched and `always_consume_default_token_bucket` is off, from the
//! default bucket. Envoy's defaults are kept: with `filter_enabled` or `filter_enforced` unset
//! the filter checks, or refuses, nothing.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mesh_policies::rate_limit::{LocalRateLimit as Bucket, TokenBucket as BucketSize};
use mesh_xds::config::{Fraction, LocalRateLimit, RateLimitPolicy, TokenBucket, VhRateLimits};

use super::chain::{FilterRequest, RateLimits};
use super::descriptors::{descriptors, route_policies};
use crate::shared::{EditList, Failure, InvalidHeaderEdit};

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A compiled local rate limit: its buckets live as long as the configuration.
pub(super) struct RateLimiter {
    enabled: Fraction,
    enforced: Fraction,
    status: StatusCode,
    resource_exhausted: bool,
    /// `None`: no `token_bucket`, which Envoy treats as a bucket with no tokens.
    default: Option<Bucket>,
    /// Strictest (fewest tokens per second) first, as Envoy consumes them.
    descriptors: Vec<DescriptorBucket>,
    rate_limits: Vec<RateLimitPolicy>,
    vh_rate_limits: VhRateLimits,
    always_consume_default: bool,
    x_ratelimit_headers: bool,
    response_headers: EditList,
    request_headers_when_not_enforced: EditList,
}

struct DescriptorBucket {
    entries: Vec<(String, String)>,
    bucket: Bucket,
}

/// What the limiter decided for one request.
pub(super) struct RateLimitOutcome {
    refused: Option<(Failure, Arc<RateLimiter>)>,
    /// Limit, remaining tokens and seconds to the next fill, for `x-ratelimit-*`.
    x_ratelimit: Option<(u32, u32, u64)>,
}

impl RateLimiter {
    pub(super) fn new(config: &LocalRateLimit) -> Result<RateLimiter, String> {
        let invalid = |error: InvalidHeaderEdit| error.to_string();
        let mut descriptors = config
            .descriptors
            .iter()
            .map(|descriptor| DescriptorBucket {
                entries: descriptor.entries.clone(),
                bucket: bucket(descriptor.token_bucket),
            })
            .collect::<Vec<_>>();
        descriptors.sort_by_key(|d| tokens_per_second(d.bucket.bucket()));
        Ok(RateLimiter {
            enabled: config.filter_enabled,
            enforced: config.filter_enforced,
            status: StatusCode::from_u16(config.status)
                .map_err(|_| format!("status {} is not an HTTP status", config.status))?,
            resource_exhausted: config.rate_limited_as_resource_exhausted,
            default: config.token_bucket.map(bucket),
            descriptors,
            rate_limits: config.rate_limits.clone(),
            vh_rate_limits: config.vh_rate_limits,
            always_consume_default: config.always_consume_default_token_bucket,
            x_ratelimit_headers: config.x_ratelimit_headers,
            response_headers: EditList::compile(&config.response_headers_to_add, &[])
                .map_err(invalid)?,
            request_headers_when_not_enforced: EditList::compile(
                &config.request_headers_to_add_when_not_enforced,
                &[],
            )
            .map_err(invalid)?,
        })
    }

    /// Takes tokens for the request, or refuses it; `route` and `virtual_host` are the
    /// `rate_limits` read when the filter's configuration names none.
    pub(super) fn decode(
        self: &Arc<Self>,
        request: &mut FilterRequest<'_>,
        route: Option<&RateLimits>,
        virtual_host: Option<&RateLimits>,
    ) -> RateLimitOutcome {
        if !self.enabled.includes(rand::random()) {
            return RateLimitOutcome {
                refused: None,
                x_ratelimit: None,
            };
        }
        let carried = self.request_descriptors(request, route, virtual_host);
        let allowed = self.take(&carried);
        let x_ratelimit = self
            .x_ratelimit_headers
            .then(|| self.remaining(&carried))
            .flatten();
        if allowed {
            return RateLimitOutcome {
                refused: None,
                x_ratelimit,
            };
        }
        if !self.enforced.includes(rand::random()) {
            self.request_headers_when_not_enforced
                .apply(&mut request.head.headers);
            return RateLimitOutcome {
                refused: None,
                x_ratelimit,
            };
        }
        let failure = Failure::RateLimited {
            status: self.status,
            resource_exhausted: self.resource_exhausted,
        };
        RateLimitOutcome {
            refused: Some((failure, self.clone())),
            x_ratelimit,
        }
    }

    /// Envoy's `LocalRateLimiterImpl::requestAllowed`.
    fn take(&self, carried: &[Vec<(String, String)>]) -> bool {
        let mut matched = false;
        for descriptor in &self.descriptors {
            if carried.contains(&descriptor.entries) {
                matched = true;
                if descriptor.bucket.try_acquire().is_err() {
                    return false;
                }
            }
        }
        if matched && !self.always_consume_default {
            return true;
        }
        self.default
            .as_ref()
            .is_some_and(|bucket| bucket.try_acquire().is_ok())
    }

    /// The bucket that `x-ratelimit-*` describe: the first descriptor the request carries,
    /// else the default.
    fn remaining(&self, carried: &[Vec<(String, String)>]) -> Option<(u32, u32, u64)> {
        let bucket = carried
            .iter()
            .find_map(|c| self.descriptors.iter().find(|d| d.entries == *c))
            .map(|d| &d.bucket)
            .or(self.default.as_ref())?;
        Some((
            bucket.bucket().max_tokens,
            bucket.available(),
            bucket.until_next_fill().as_secs(),
        ))
    }

    /// The descriptors the request carries, one per `rate_limits` entry whose actions all
    /// produced an entry (stage 0 only, as the local rate limit reads them): the filter's own
    /// entries, else the route's and the virtual host's (how Envoy Gateway configures it).
    fn request_descriptors(
        &self,
        request: &FilterRequest<'_>,
        route: Option<&RateLimits>,
        virtual_host: Option<&RateLimits>,
    ) -> Vec<Vec<(String, String)>> {
        if self.descriptors.is_empty() {
            return Vec::new();
        }
        let policies = if self.rate_limits.is_empty() {
            route_policies(route, virtual_host, self.vh_rate_limits)
        } else {
            self.rate_limits.iter().collect()
        };
        descriptors(policies.into_iter().filter(|p| p.stage == 0), request)
    }
}

fn bucket(size: TokenBucket) -> Bucket {
    Bucket::new(BucketSize {
        max_tokens: size.max_tokens,
        tokens_per_fill: size.tokens_per_fill,
        fill_interval: size.fill_interval,
    })
}

fn tokens_per_second(size: BucketSize) -> u64 {
    let seconds = size.fill_interval.as_secs().max(1);
    u64::from(size.tokens_per_fill) / seconds
}

impl RateLimitOutcome {
    /// The local reply, when the request is refused.
    pub(super) fn refusal(&self) -> Option<Failure> {
        self.refused.as_ref().map(|(failure, _)| failure.clone())
    }

    /// `response_headers_to_add` on a refusal; `x-ratelimit-*` on every response.
    pub(super) fn encode(&self, headers: &mut HeaderMap) {
        if let Some((_, limiter)) = &self.refused {
            limiter.response_headers.apply(headers);
        }
        if let Some((limit, remaining, reset)) = self.x_ratelimit {
            headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(limit));
            headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(remaining));
            headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_xds::config::{
        HeaderAppendAction, HeaderValueOption, RateLimitAction, RateLimitDescriptor,
    };

    use super::*;
    use crate::shared::RequestMeta;

    fn config(max_tokens: u32) -> LocalRateLimit {
        LocalRateLimit {
            stat_prefix: "test".into(),
            token_bucket: Some(TokenBucket {
                max_tokens,
                tokens_per_fill: max_tokens,
                fill_interval: Duration::from_secs(3600),
            }),
            filter_enabled: Fraction::ALL,
            filter_enforced: Fraction::ALL,
            status: 429,
            response_headers_to_add: vec![HeaderValueOption {
                name: "x-limited".into(),
                value: "true".into(),
                append: HeaderAppendAction::OverwriteIfExistsOrAdd,
            }],
            request_headers_to_add_when_not_enforced: vec![HeaderValueOption {
                name: "x-would-limit".into(),
                value: "1".into(),
                append: HeaderAppendAction::OverwriteIfExistsOrAdd,
            }],
            descriptors: Vec::new(),
            rate_limits: Vec::new(),
            vh_rate_limits: Default::default(),
            x_ratelimit_headers: false,
            always_consume_default_token_bucket: true,
            rate_limited_as_resource_exhausted: false,
        }
    }

    /// Runs one request with `headers`; its outcome and the request headers after the filter.
    fn run(
        limiter: &Arc<RateLimiter>,
        headers: &[(&'static str, &'static str)],
    ) -> (RateLimitOutcome, http::HeaderMap) {
        let mut builder = http::Request::get("http://a.test/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let outcome = limiter.decode(
            &mut FilterRequest {
                head: &mut head,
                meta: &meta,
                cluster: None,
                routed: true,
                body: &mut body,
                upstream: &upstream,
            },
            None,
            None,
        );
        (outcome, head.headers)
    }

    fn limiter(config: LocalRateLimit) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(&config).expect("valid"))
    }

    #[test]
    fn a_full_bucket_allows_max_tokens_then_refuses_with_its_headers() {
        let limiter = limiter(config(2));
        assert!(run(&limiter, &[]).0.refusal().is_none());
        assert!(run(&limiter, &[]).0.refusal().is_none());
        let (refused, _) = run(&limiter, &[]);
        assert_eq!(
            refused.refusal(),
            Some(Failure::RateLimited {
                status: StatusCode::TOO_MANY_REQUESTS,
                resource_exhausted: false
            })
        );
        let mut response = HeaderMap::new();
        refused.encode(&mut response);
        assert_eq!(response["x-limited"], "true");
    }

    #[test]
    fn envoys_default_percentages_check_nothing() {
        let limiter = limiter(LocalRateLimit {
            filter_enabled: Fraction::NONE,
            ..config(1)
        });
        for _ in 0..3 {
            assert!(run(&limiter, &[]).0.refusal().is_none());
        }
    }

    #[test]
    fn a_limit_that_is_not_enforced_only_marks_the_request() {
        let limiter = limiter(LocalRateLimit {
            filter_enforced: Fraction::NONE,
            ..config(1)
        });
        let (_, first) = run(&limiter, &[]);
        assert!(!first.contains_key("x-would-limit"));
        let (outcome, second) = run(&limiter, &[]);
        assert!(outcome.refusal().is_none());
        assert_eq!(second["x-would-limit"], "1");
    }

    #[test]
    fn a_matching_descriptor_has_its_own_bucket() {
        let limiter = limiter(LocalRateLimit {
            descriptors: vec![RateLimitDescriptor {
                entries: vec![("client".into(), "a".into())],
                token_bucket: TokenBucket {
                    max_tokens: 1,
                    tokens_per_fill: 1,
                    fill_interval: Duration::from_secs(3600),
                },
            }],
            rate_limits: vec![RateLimitPolicy {
                stage: 0,
                actions: vec![RateLimitAction::RequestHeaders {
                    header_name: "x-client".into(),
                    key: "client".into(),
                    skip_if_absent: false,
                }],
            }],
            always_consume_default_token_bucket: false,
            x_ratelimit_headers: true,
            ..config(100)
        });
        let (first, _) = run(&limiter, &[("x-client", "a")]);
        assert!(first.refusal().is_none());
        let mut response = HeaderMap::new();
        first.encode(&mut response);
        assert_eq!(response["x-ratelimit-limit"], "1");
        assert_eq!(response["x-ratelimit-remaining"], "0");
        assert!(run(&limiter, &[("x-client", "a")]).0.refusal().is_some());
        assert!(run(&limiter, &[("x-client", "b")]).0.refusal().is_none());
        assert!(run(&limiter, &[]).0.refusal().is_none());
    }
}
