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

/// One open connection, counted until dropped.
pub(super) struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
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

    /// A connection slot: at once if one is free, else after waiting as a
    /// pending request, unless `max_pending_requests` are already waiting.
    pub(super) async fn connection(&self) -> Result<ConnectionPermit, ConnectError> {
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Ok(ConnectionPermit { _permit: permit });
        }
        let waiting = self.pending.fetch_add(1, Ordering::AcqRel);
        let permit = if waiting >= self.thresholds.max_pending_requests {
            Err(ConnectError::Overflow(Overflow::Pending))
        } else {
            self.connections
                .clone()
                .acquire_owned()
                .await
                .map(|permit| ConnectionPermit { _permit: permit })
                .map_err(|_| ConnectError::Overflow(Overflow::Pending))
        };
        self.pending.fetch_sub(1, Ordering::AcqRel);
        permit
    }

    /// An active-request slot, or overflow.
    pub(super) fn request(&self) -> Result<Counted, Overflow> {
        acquire(&self.requests, self.thresholds.max_requests).ok_or(Overflow::Requests)
    }

    /// A retry slot; `None` when `max_retries` retries are already active
    /// (the retry is then skipped, as in Envoy).
    pub(super) fn retry(&self) -> Option<Counted> {
        acquire(&self.retries, self.thresholds.max_retries)
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
    use super::*;

    fn limits(max_connections: u32, max_pending: u32, max_requests: u32) -> Limits {
        Limits::new(CircuitBreakers {
            max_connections,
            max_pending_requests: max_pending,
            max_requests,
            max_retries: 1,
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

    #[tokio::test]
    async fn connections_wait_as_pending_then_overflow() {
        let limits = Arc::new(limits(1, 1, 10));
        let held = limits.connection().await.expect("free slot");
        let waiter = tokio::spawn({
            let limits = limits.clone();
            async move { limits.connection().await.is_ok() }
        });
        // Let the waiter register as pending.
        while limits.pending.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            limits.connection().await,
            Err(ConnectError::Overflow(Overflow::Pending))
        ));
        drop(held);
        assert!(waiter.await.expect("waiter task"));
    }
}
