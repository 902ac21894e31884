//! Outlier detection on consecutive failures, as Envoy does it. Without
//! `split_external_local_origin_errors`, connect failures, resets and
//! timeouts count like a 503 (towards consecutive 5xx and gateway failures);
//! with it they count apart, towards `consecutive_local_origin_failure`, and
//! only upstream responses count as 5xx. Each kind of ejection happens with
//! its `enforcing_*` probability. An ejected endpoint takes no requests for
//! `base_ejection_time` times the number of its ejections (at most
//! `max_ejection_time`), then returns by itself.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use mesh_xds::config::OutlierDetection;

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
    consecutive_gateway: u32,
    consecutive_local: u32,
    times_ejected: u32,
    ejected_until: Option<Instant>,
}

impl Inner {
    /// Updates the counters; returns the enforcement percentage of the kind
    /// of ejection whose threshold this outcome reached, if any.
    fn count(&mut self, config: &OutlierDetection, outcome: Outcome) -> Option<u32> {
        let split = config.split_external_local_origin_errors;
        let (five_xx, gateway, local) = match outcome {
            Outcome::Status(status) => (status >= 500, matches!(status, 502..=504), None),
            Outcome::LocalFailure if split => (false, false, Some(true)),
            // Not split: a local failure is an upstream 503.
            Outcome::LocalFailure => (true, true, None),
        };
        // A response means the connection worked: local-origin failures reset.
        if split {
            if let Some(failed) = local {
                self.consecutive_local = if failed {
                    self.consecutive_local + 1
                } else {
                    0
                };
            } else {
                self.consecutive_local = 0;
            }
        }
        if local.is_none() {
            self.consecutive_5xx = if five_xx { self.consecutive_5xx + 1 } else { 0 };
            self.consecutive_gateway = if gateway {
                self.consecutive_gateway + 1
            } else {
                0
            };
        }
        let reached = |count: u32, threshold: u32| threshold > 0 && count >= threshold;
        if split
            && reached(
                self.consecutive_local,
                config.consecutive_local_origin_failure,
            )
        {
            self.consecutive_local = 0;
            return Some(config.enforcing_consecutive_local_origin_failure);
        }
        if reached(self.consecutive_5xx, config.consecutive_5xx) {
            self.consecutive_5xx = 0;
            self.consecutive_gateway = 0;
            return Some(config.enforcing_consecutive_5xx);
        }
        if reached(self.consecutive_gateway, config.consecutive_gateway_failure) {
            self.consecutive_gateway = 0;
            return Some(config.enforcing_consecutive_gateway_failure);
        }
        None
    }
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
        self.record_enforced(config, outcome, now, may_eject, || {
            rand::random::<u32>() % 100
        })
    }

    fn record_enforced(
        &self,
        config: &OutlierDetection,
        outcome: Outcome,
        now: Instant,
        may_eject: impl FnOnce() -> bool,
        roll: impl FnOnce() -> u32,
    ) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let already_ejected = inner.ejected_until.is_some_and(|until| now < until);
        let Some(enforcing) = inner.count(config, outcome) else {
            return false;
        };
        if already_ejected || roll() >= enforcing {
            return false;
        }
        // `may_eject` looks at every endpoint of the cluster, this one
        // included: it must not run under this endpoint's lock.
        drop(inner);
        if !may_eject() {
            return false;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.times_ejected += 1;
        let time = config
            .base_ejection_time
            .saturating_mul(inner.times_ejected)
            .min(config.max_ejection_time.max(config.base_ejection_time));
        inner.ejected_until = Some(now + time);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Envoy's defaults.
    fn defaults() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }

    fn config(consecutive_5xx: u32) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx,
            ..defaults()
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
    fn repeated_ejections_last_longer_up_to_max_ejection_time() {
        let state = OutlierState::default();
        let config = OutlierDetection {
            max_ejection_time: Duration::from_secs(45),
            ..config(1)
        };
        let now = Instant::now();
        assert!(state.record(&config, Outcome::LocalFailure, now, || true));
        let later = now + Duration::from_secs(31);
        assert!(state.record(&config, Outcome::LocalFailure, later, || true));
        assert!(state.is_ejected(later + Duration::from_secs(44)));
        assert!(!state.is_ejected(later + Duration::from_secs(45)));
    }

    #[test]
    fn split_local_origin_errors_count_apart_from_upstream_5xx() {
        let config = OutlierDetection {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: 2,
            consecutive_5xx: 3,
            ..defaults()
        };
        let now = Instant::now();
        let state = OutlierState::default();
        // Two upstream 5xx and a local failure: neither count is reached.
        assert!(!state.record(&config, Outcome::Status(503), now, || true));
        assert!(!state.record(&config, Outcome::LocalFailure, now, || true));
        assert!(!state.record(&config, Outcome::Status(503), now, || true));
        // A response resets the local-origin count; two local failures in a row eject.
        assert!(!state.record(&config, Outcome::LocalFailure, now, || true));
        assert!(state.record(&config, Outcome::LocalFailure, now, || true));
    }

    #[test]
    fn enforcement_percentages_decide_whether_a_reached_threshold_ejects() {
        let now = Instant::now();
        let never = OutlierDetection {
            enforcing_consecutive_5xx: 0,
            ..config(1)
        };
        let state = OutlierState::default();
        assert!(!state.record_enforced(&never, Outcome::Status(500), now, || true, || 0));
        let gateway = OutlierDetection {
            consecutive_5xx: 0,
            consecutive_gateway_failure: 2,
            enforcing_consecutive_gateway_failure: 100,
            ..defaults()
        };
        let state = OutlierState::default();
        assert!(!state.record(&gateway, Outcome::Status(500), now, || true));
        assert!(!state.record(&gateway, Outcome::Status(502), now, || true));
        assert!(state.record(&gateway, Outcome::Status(504), now, || true));
    }
}
