//! Outlier detection on consecutive 5xx, as Envoy does it with
//! `split_external_local_origin_errors` off: connect failures, resets and
//! timeouts count like a 503. An ejected endpoint takes no requests for
//! `base_ejection_time` times the number of its ejections (at most 300 s),
//! then returns by itself.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mesh_xds::config::OutlierDetection;

/// Envoy's default `max_ejection_time`.
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// What one try at an endpoint produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A response head with this status.
    Status(u16),
    /// No response: connect failure, reset or timeout.
    LocalFailure,
}

/// One endpoint's detector state.
#[derive(Debug, Default)]
pub(super) struct OutlierState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    consecutive_5xx: u32,
    times_ejected: u32,
    ejected_until: Option<Instant>,
}

impl OutlierState {
    /// Whether the endpoint is ejected at `now`.
    pub(super) fn is_ejected(&self, now: Instant) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ejected_until
            .is_some_and(|until| now < until)
    }

    /// Counts `outcome`; returns true when it ejects the endpoint.
    /// `may_eject` says whether the cluster's `max_ejection_percent` leaves
    /// room for one more ejection.
    pub(super) fn record(
        &self,
        config: &OutlierDetection,
        outcome: Outcome,
        now: Instant,
        may_eject: impl FnOnce() -> bool,
    ) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let failed = match outcome {
            Outcome::Status(status) => status >= 500,
            Outcome::LocalFailure => true,
        };
        if !failed {
            inner.consecutive_5xx = 0;
            return false;
        }
        inner.consecutive_5xx += 1;
        let already_ejected = inner.ejected_until.is_some_and(|until| now < until);
        if inner.consecutive_5xx < config.consecutive_5xx || already_ejected {
            return false;
        }
        // `may_eject` looks at every endpoint of the cluster, this one
        // included: it must not run under this endpoint's lock.
        drop(inner);
        if !may_eject() {
            return false;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.consecutive_5xx = 0;
        inner.times_ejected += 1;
        let time = config
            .base_ejection_time
            .saturating_mul(inner.times_ejected)
            .min(MAX_EJECTION_TIME.max(config.base_ejection_time));
        inner.ejected_until = Some(now + time);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(consecutive_5xx: u32) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx,
            consecutive_gateway_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_the_endpoint_returns_after_the_ejection_time() {
        let state = OutlierState::default();
        let config = config(3);
        let now = Instant::now();
        assert!(!state.record(&config, Outcome::Status(503), now, || true));
        assert!(!state.record(&config, Outcome::LocalFailure, now, || true));
        assert!(state.record(&config, Outcome::Status(500), now, || true));
        assert!(state.is_ejected(now + Duration::from_secs(29)));
        assert!(!state.is_ejected(now + Duration::from_secs(30)));
    }

    #[test]
    fn a_success_resets_the_count_and_the_cluster_cap_is_respected() {
        let state = OutlierState::default();
        let config = config(2);
        let now = Instant::now();
        state.record(&config, Outcome::Status(503), now, || true);
        state.record(&config, Outcome::Status(200), now, || true);
        assert!(!state.record(&config, Outcome::Status(503), now, || true));
        assert!(!state.record(&config, Outcome::Status(503), now, || false));
        assert!(!state.is_ejected(now));
    }

    #[test]
    fn the_cluster_check_may_look_at_this_endpoint() {
        let state = OutlierState::default();
        let now = Instant::now();
        assert!(state.record(&config(1), Outcome::LocalFailure, now, || {
            !state.is_ejected(now)
        }));
    }

    #[test]
    fn repeated_ejections_last_longer() {
        let state = OutlierState::default();
        let config = config(1);
        let now = Instant::now();
        assert!(state.record(&config, Outcome::LocalFailure, now, || true));
        let later = now + Duration::from_secs(31);
        assert!(state.record(&config, Outcome::LocalFailure, later, || true));
        assert!(state.is_ejected(later + Duration::from_secs(59)));
        assert!(!state.is_ejected(later + Duration::from_secs(60)));
    }
}
