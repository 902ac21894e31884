//! A cluster's circuit breakers (Envoy's default-priority thresholds): open
//! connections, requests waiting for a connection, active requests and active
//! retries. Overflow is answered at once, never queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use mesh_xds::config::CircuitBreakers;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ConnectError;

/// The live counters of one cluster's breakers.
#[derive(Debug)]
pub(super) struct Limits {
    thresholds: CircuitBreakers,
    connections: Arc<Semaphore>,
    pending: AtomicU32,
    requests: Arc<AtomicU32>,
    retries: Arc<AtomicU32>,
}

/// One open connection, counted until dropped (by the cluster, and by its
/// endpoint when `per_host_thresholds` limit it).
pub(super) struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
    _host: Option<OwnedSemaphorePermit>,
}

/// One active request (or retry), counted until dropped.
#[derive(Debug)]
pub(super) struct Counted {
    counter: Arc<AtomicU32>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which breaker overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `max_connections` reached and `max_pending_requests` waiting.
    Pending,
    /// `max_requests` active.
    Requests,
}

impl Limits {
    pub(super) fn new(thresholds: CircuitBreakers) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(thresholds.max_connections as usize)),
            pending: AtomicU32::new(0),
            requests: Arc::new(AtomicU32::new(0)),
            retries: Arc::new(AtomicU32::new(0)),
            thresholds,
        }
    }

    /// A connection slot (of the cluster, and of the endpoint's `host` limit
    /// when it has one): at once if both are free, else after waiting as a
    /// pending request, unless `max_pending_requests` are already waiting.
    pub(super) async fn connection(
        &self,
        host: Option<&Arc<Semaphore>>,
    ) -> Result<ConnectionPermit, ConnectError> {
        let now = || -> Option<ConnectionPermit> {
            let permit = self.connections.clone().try_acquire_owned().ok()?;
            let host = match host {
                Some(host) => Some(host.clone().try_acquire_owned().ok()?),
                None => None,
            };
            Some(ConnectionPermit {
                _permit: permit,
                _host: host,
            })
        };
        if let Some(permit) = now() {
            return Ok(permit);
        }
        let waiting = self.pending.fetch_add(1, Ordering::AcqRel);
        let permit = if waiting >= self.thresholds.max_pending_requests {
            Err(ConnectError::Overflow(Overflow::Pending))
        } else {
            self.wait_for_connection(host).await
        };
        self.pending.fetch_sub(1, Ordering::AcqRel);
        permit
    }

    /// Connections open now.
    pub(super) fn open_connections(&self) -> u64 {
        let max = self.thresholds.max_connections as usize;
        (max.saturating_sub(self.connections.available_permits())) as u64
    }

    /// Requests in flight now.
    pub(super) fn active_requests(&self) -> u64 {
        u64::from(self.requests.load(Ordering::Acquire))
    }

    /// The thresholds.
    pub(super) fn thresholds(&self) -> &CircuitBreakers {
        &self.thresholds
    }

    async fn wait_for_connection(
        &self,
        host: Option<&Arc<Semaphore>>,
    ) -> Result<ConnectionPermit, ConnectError> {
        let overflow = |_| ConnectError::Overflow(Overflow::Pending);
        let host = match host {
            Some(host) => Some(host.clone().acquire_owned().await.map_err(overflow)?),
            None => None,
        };
        let permit = self
            .connections
            .clone()
            .acquire_owned()
            .await
            .map_err(overflow)?;
        Ok(ConnectionPermit {
            _permit: permit,
            _host: host,
        })
    }

    /// An active-request slot, or overflow.
    pub(super) fn request(&self) -> Result<Counted, Overflow> {
        acquire(&self.requests, self.thresholds.max_requests).ok_or(Overflow::Requests)
    }

    /// A retry slot; `None` when the cluster's retries are used up (the
    /// retry is then skipped, as in Envoy): `max_retries` active, or with a
    /// retry budget its share of the active and pending requests.
    pub(super) fn retry(&self) -> Option<Counted> {
        acquire(&self.retries, self.retry_allowance())
    }

    fn retry_allowance(&self) -> u32 {
        let Some(budget) = self.thresholds.retry_budget else {
            return self.thresholds.max_retries;
        };
        let traffic = self.requests.load(Ordering::Acquire) + self.pending.load(Ordering::Acquire);
        // Truncated as Envoy does: 20 % of 4 requests allows no retry beyond
        // the minimum.
        let share = (f64::from(traffic) * budget.budget_percent / 100.0) as u32;
        share.max(budget.min_retry_concurrency)
    }
}

fn acquire(counter: &Arc<AtomicU32>, max: u32) -> Option<Counted> {
    let previous = counter.fetch_add(1, Ordering::AcqRel);
    let counted = Counted {
        counter: counter.clone(),
    };
    (previous < max).then_some(counted)
}

#[cfg(test)]
mod tests {
    use mesh_xds::config::RetryBudget;

    use super::*;

    fn limits(max_connections: u32, max_pending: u32, max_requests: u32) -> Limits {
        Limits::new(CircuitBreakers {
            max_connections,
            max_pending_requests: max_pending,
            max_requests,
            max_retries: 1,
            retry_budget: None,
            per_host_max_connections: None,
        })
    }

    fn budgeted(budget_percent: f64, min_retry_concurrency: u32) -> Limits {
        Limits::new(CircuitBreakers {
            max_retries: 1,
            retry_budget: Some(RetryBudget {
                budget_percent,
                min_retry_concurrency,
            }),
            ..CircuitBreakers::default()
        })
    }

    #[test]
    fn requests_beyond_the_threshold_overflow_and_free_slots_come_back() {
        let limits = limits(1, 1, 2);
        let a = limits.request().expect("first");
        let _b = limits.request().expect("second");
        assert_eq!(limits.request().err(), Some(Overflow::Requests));
        drop(a);
        assert!(limits.request().is_ok());
    }

    #[test]
    fn retries_are_limited_separately() {
        let limits = limits(1, 1, 10);
        let first = limits.retry();
        assert!(first.is_some());
        assert!(limits.retry().is_none());
        drop(first);
        assert!(limits.retry().is_some());
    }

    #[test]
    fn a_retry_budget_replaces_max_retries_and_grows_with_active_requests() {
        let limits = budgeted(25.0, 2);
        // The minimum holds with little traffic, whatever max_retries says.
        let first = limits.retry();
        let second = limits.retry();
        assert!(first.is_some() && second.is_some());
        assert!(limits.retry().is_none());
        // 25 % of 12 active requests: 3 retries.
        let active: Vec<_> = (0..12).map(|_| limits.request().expect("slot")).collect();
        let third = limits.retry();
        assert!(third.is_some(), "third retry within 25 % of 12");
        assert!(limits.retry().is_none(), "a fourth is past the budget");
        drop(active);
        drop(first);
        assert!(
            limits.retry().is_none(),
            "back to the minimum of 2, both held"
        );
    }

    #[test]
    fn a_zero_budget_allows_no_retry() {
        let limits = budgeted(0.0, 0);
        let _active = limits.request().expect("slot");
        assert!(limits.retry().is_none());
    }

    #[tokio::test]
    async fn connections_wait_as_pending_then_overflow() {
        let limits = Arc::new(limits(1, 1, 10));
        let held = limits.connection(None).await.expect("free slot");
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.connection(None).await.is_ok() }
        });
        // Let the waiter register as pending.
        while limits.pending.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            limits.connection(None).await,
            Err(ConnectError::Overflow(Overflow::Pending))
        ));
        drop(held);
        assert!(waiter.await.expect("waiter task"));
    }

    #[tokio::test]
    async fn an_endpoint_limit_makes_connections_wait_even_with_cluster_room() {
        let limits = limits(10, 10, 10);
        let host = Arc::new(Semaphore::new(1));
        let held = limits
            .connection(Some(&host))
            .await
            .expect("first connection");
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            limits.connection(Some(&host)),
        )
        .await;
        assert!(
            waiting.is_err(),
            "a second connection to the endpoint waits"
        );
        assert!(
            limits.connection(None).await.is_ok(),
            "other endpoints still connect"
        );
        drop(held);
        assert!(limits.connection(Some(&host)).await.is_ok());
    }
}
