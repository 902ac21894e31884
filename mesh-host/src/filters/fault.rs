//! `envoy.filters.http.fault`: delays and aborts injected into a share of requests, fixed or
//! asked for by the request's `x-envoy-fault-*` headers (only where the configuration allows
//! header-controlled faults, and never above its percentage).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use mesh_xds::config::{AbortSource, DelaySource, Fault, Fraction};

use super::chain::FilterRequest;
use crate::shared::{Failure, RequestView};

const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";

/// A compiled fault filter, counting the faults it has in progress.
pub(super) struct FaultInjector {
    config: Arc<Fault>,
    active: AtomicU32,
}

/// Releases a slot of `max_active_faults` when the fault is over.
struct ActiveFault<'a>(&'a AtomicU32);

impl Drop for ActiveFault<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FaultInjector {
    pub(super) fn new(config: Arc<Fault>) -> FaultInjector {
        FaultInjector {
            config,
            active: AtomicU32::new(0),
        }
    }

    /// Delays the request and then aborts it, each when its share of requests draws it.
    pub(super) async fn decode(&self, request: &FilterRequest<'_>) -> Option<Failure> {
        let config = &self.config;
        if config.delay.is_none() && config.abort.is_none() {
            return None;
        }
        if let Some(cluster) = &config.upstream_cluster
            && request.cluster != Some(cluster.as_str())
        {
            return None;
        }
        let view = RequestView::new(request.head);
        let applies = config.headers.iter().all(|matcher| {
            matcher.matches_values(view.header_values(&matcher.name).iter().map(|v| &**v))
        });
        if !applies {
            return None;
        }
        let headers = &request.head.headers;
        let delay = config.delay.as_ref().and_then(|delay| {
            let length = match delay.source {
                DelaySource::Fixed(length) => Some(length),
                DelaySource::Header => number(headers, DELAY_HEADER).map(Duration::from_millis),
            }?;
            drawn(delay.percentage, headers, DELAY_PERCENTAGE_HEADER).then_some(length)
        });
        let abort = config.abort.as_ref().and_then(|abort| {
            let failure = match abort.source {
                AbortSource::Http(status) => http_abort(u64::from(status)),
                AbortSource::Grpc(code) => grpc_abort(u64::from(code)),
                AbortSource::Header => number(headers, ABORT_HEADER)
                    .and_then(http_abort)
                    .or_else(|| number(headers, ABORT_GRPC_HEADER).and_then(grpc_abort)),
            }?;
            drawn(abort.percentage, headers, ABORT_PERCENTAGE_HEADER).then_some(failure)
        });
        if delay.is_none() && abort.is_none() {
            return None;
        }
        let _slot = self.claim()?;
        if let Some(length) = delay {
            tokio::time::sleep(length).await;
        }
        abort
    }

    /// A slot for one more fault, unless `max_active_faults` are already in progress.
    fn claim(&self) -> Option<ActiveFault<'_>> {
        let max = self.config.max_active_faults.unwrap_or(u32::MAX);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .ok()
            .map(|_| ActiveFault(&self.active))
    }
}

/// Whether this request falls in the share: the configured one, or the smaller share the
/// request asks for (in the configured denominator) with `header`.
fn drawn(configured: Fraction, headers: &HeaderMap, header: &str) -> bool {
    let share = match number(headers, header) {
        Some(asked) => configured.at_most(u32::try_from(asked).unwrap_or(u32::MAX)),
        None => configured,
    };
    share.includes(rand::random())
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn http_abort(status: u64) -> Option<Failure> {
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (200..600).contains(s))?;
    Some(Failure::FaultAbort {
        status: StatusCode::from_u16(status).ok()?,
        grpc: None,
    })
}

fn grpc_abort(code: u64) -> Option<Failure> {
    Some(Failure::FaultAbort {
        status: StatusCode::OK,
        grpc: Some(u8::try_from(code).ok()?),
    })
}

#[cfg(test)]
mod tests {
    use mesh_xds::config::{FaultAbort, FaultDelay};

    use super::*;
    use crate::shared::RequestMeta;

    fn injector(delay: Option<FaultDelay>, abort: Option<FaultAbort>) -> FaultInjector {
        FaultInjector::new(Arc::new(Fault {
            delay,
            abort,
            headers: Vec::new(),
            upstream_cluster: None,
            max_active_faults: None,
        }))
    }

    async fn run(
        injector: &FaultInjector,
        headers: &[(&'static str, &'static str)],
    ) -> Option<Failure> {
        let mut builder = http::Request::get("http://a.test/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let request = FilterRequest {
            head: &mut head,
            meta: &meta,
            cluster: Some("backend"),
            routed: true,
            body: &mut body,
            upstream: &upstream,
        };
        injector.decode(&request).await
    }

    fn abort(source: AbortSource, percentage: Fraction) -> Option<FaultAbort> {
        Some(FaultAbort { source, percentage })
    }

    #[tokio::test]
    async fn abort_at_100_percent_always_and_at_0_never() {
        let always = injector(None, abort(AbortSource::Http(503), Fraction::ALL));
        assert_eq!(
            run(&always, &[]).await,
            Some(Failure::FaultAbort {
                status: StatusCode::SERVICE_UNAVAILABLE,
                grpc: None
            })
        );
        let never = injector(None, abort(AbortSource::Http(503), Fraction::NONE));
        assert_eq!(run(&never, &[]).await, None);
    }

    #[tokio::test]
    async fn header_abort_reads_the_request_and_is_capped_by_the_percentage() {
        let fault = injector(None, abort(AbortSource::Header, Fraction::ALL));
        assert_eq!(run(&fault, &[]).await, None, "no header, no abort");
        assert_eq!(
            run(&fault, &[(ABORT_HEADER, "429")]).await,
            Some(Failure::FaultAbort {
                status: StatusCode::TOO_MANY_REQUESTS,
                grpc: None
            })
        );
        assert_eq!(
            run(&fault, &[(ABORT_GRPC_HEADER, "14")]).await,
            Some(Failure::FaultAbort {
                status: StatusCode::OK,
                grpc: Some(14)
            })
        );
        assert_eq!(
            run(
                &fault,
                &[(ABORT_HEADER, "429"), (ABORT_PERCENTAGE_HEADER, "0")]
            )
            .await,
            None
        );
        let capped = injector(None, abort(AbortSource::Header, Fraction::NONE));
        assert_eq!(
            run(
                &capped,
                &[(ABORT_HEADER, "429"), (ABORT_PERCENTAGE_HEADER, "100")]
            )
            .await,
            None,
            "a request cannot raise the configured share"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delay_waits_before_the_abort() {
        let fault = injector(
            Some(FaultDelay {
                source: DelaySource::Fixed(Duration::from_secs(2)),
                percentage: Fraction::ALL,
            }),
            abort(AbortSource::Http(500), Fraction::ALL),
        );
        let started = tokio::time::Instant::now();
        assert!(run(&fault, &[]).await.is_some());
        assert!(started.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test]
    async fn faults_apply_only_to_their_upstream_cluster() {
        let mut config = Fault {
            delay: None,
            abort: abort(AbortSource::Http(500), Fraction::ALL),
            headers: Vec::new(),
            upstream_cluster: Some("other".to_owned()),
            max_active_faults: None,
        };
        assert_eq!(
            run(&FaultInjector::new(Arc::new(config.clone())), &[]).await,
            None
        );
        config.upstream_cluster = Some("backend".to_owned());
        assert!(
            run(&FaultInjector::new(Arc::new(config)), &[])
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn max_active_faults_zero_injects_nothing() {
        let fault = FaultInjector::new(Arc::new(Fault {
            delay: None,
            abort: abort(AbortSource::Http(500), Fraction::ALL),
            headers: Vec::new(),
            upstream_cluster: None,
            max_active_faults: Some(0),
        }));
        assert_eq!(run(&fault, &[]).await, None);
    }
}
