//! How many downstream connections the host holds: a cap for the whole process (Envoy's
//! `global_downstream_max_connections` resource monitor, `--max-connections`) and one per
//! listener (Envoy's `envoy.resource_limits.listener.<name>.connection_limit`). A
//! connection past a cap is accepted and closed at once, so it neither waits in the
//! kernel's backlog nor holds a file descriptor.
//!
//! Before it is refused, a new connection may take the place of one that has sent nothing
//! a protocol could be told from for [`EVICTION_GRACE`]: at the cap, the oldest such
//! connection is closed (Envoy's overload manager shortens the same timer under pressure,
//! `reduce_timeouts`). Idle sockets then cannot keep real clients out for the whole of the
//! detection timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a connection that has sent nothing usable is safe from being closed for a new
/// one at the global cap.
pub const EVICTION_GRACE: Duration = Duration::from_secs(2);

/// A cap on the connections of every listener of the process together.
#[derive(Debug)]
pub struct GlobalConnections {
    max: usize,
    active: AtomicUsize,
    /// Connections not yet past protocol detection, oldest first (and some that are:
    /// they are dropped from the front as they are met).
    undetected: Mutex<VecDeque<Arc<Ticket>>>,
}

impl GlobalConnections {
    /// A cap of `max` connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            active: AtomicUsize::new(0),
            undetected: Mutex::new(VecDeque::new()),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections held now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes a place, closing the oldest undetected connection past its grace when the
    /// cap is reached; `false` when no place could be made.
    fn admit(&self, ticket: &Arc<Ticket>) -> bool {
        let mut undetected = self
            .undetected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.active.load(Ordering::Relaxed) >= self.max {
            let mut evicted = false;
            while let Some(oldest) = undetected.front().cloned() {
                if oldest.is_undetected() && oldest.accepted.elapsed() < EVICTION_GRACE {
                    break;
                }
                undetected.pop_front();
                // It may have been detected since: then it keeps its place.
                if oldest.evict() {
                    evicted = true;
                    break;
                }
            }
            if !evicted {
                return false;
            }
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        while undetected
            .front()
            .is_some_and(|oldest| !oldest.is_undetected())
        {
            undetected.pop_front();
        }
        undetected.push_back(ticket.clone());
        true
    }

    fn release(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(super) enum Refused {
    /// The listener's own cap.
    #[error("the listener is at its connection limit ({0})")]
    Listener(usize),
    /// The process-wide cap, and no idle connection could make room.
    #[error("the host is at its global connection limit ({0})")]
    Global(usize),
}

const UNDETECTED: u8 = 0;
const DETECTED: u8 = 1;
const EVICTED: u8 = 2;

/// One connection's standing in the eviction queue.
#[derive(Debug)]
pub(super) struct Ticket {
    accepted: Instant,
    state: AtomicU8,
    evicted: Notify,
}

impl Ticket {
    fn is_undetected(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UNDETECTED
    }

    /// Closes the connection if it is still undetected; whether it was.
    fn evict(&self) -> bool {
        let evicted = self
            .state
            .compare_exchange(UNDETECTED, EVICTED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if evicted {
            self.evicted.notify_one();
        }
        evicted
    }
}

/// The connections of one listener: its cap, and the global one unless the listener
/// ignores it (`ignore_global_conn_limit`).
#[derive(Debug)]
pub(super) struct ListenerConnections {
    max: Option<usize>,
    active: AtomicUsize,
    global: Option<Arc<GlobalConnections>>,
    /// Told when the last connection goes.
    emptied: Notify,
}

impl ListenerConnections {
    pub(super) fn new(max: Option<usize>, global: Option<Arc<GlobalConnections>>) -> Arc<Self> {
        Arc::new(Self {
            max,
            active: AtomicUsize::new(0),
            global,
            emptied: Notify::new(),
        })
    }

    /// A place for a connection just accepted, or why there is none.
    pub(super) fn admit(self: &Arc<Self>) -> Result<Admission, Refused> {
        if let Some(max) = self.max
            && self.active.load(Ordering::Relaxed) >= max
        {
            return Err(Refused::Listener(max));
        }
        let ticket = Arc::new(Ticket {
            accepted: Instant::now(),
            state: AtomicU8::new(UNDETECTED),
            evicted: Notify::new(),
        });
        if let Some(global) = &self.global
            && !global.admit(&ticket)
        {
            return Err(Refused::Global(global.max));
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Admission {
            listener: self.clone(),
            ticket,
        })
    }

    /// Connections held now.
    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits until the listener holds no connection.
    pub(super) async fn emptied(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.active() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// A connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub(super) struct Admission {
    listener: Arc<ListenerConnections>,
    ticket: Arc<Ticket>,
}

impl Admission {
    /// The connection's protocol is known: it can no longer be evicted.
    pub(super) fn detected(&self) {
        let _ = self.ticket.state.compare_exchange(
            UNDETECTED,
            DETECTED,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Resolves when the connection is closed to make room for a new one.
    pub(super) async fn evicted(&self) {
        loop {
            let evicted = self.ticket.evicted.notified();
            if self.ticket.state.load(Ordering::Relaxed) == EVICTED {
                return;
            }
            evicted.await;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.detected();
        if let Some(global) = &self.listener.global {
            global.release();
        }
        if self.listener.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.listener.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_cap_refuses_and_a_closed_connection_frees_its_place() {
        let listener = ListenerConnections::new(Some(2), None);
        let first = listener.admit().expect("1");
        let _second = listener.admit().expect("2");
        assert_eq!(listener.admit().map(|_| ()), Err(Refused::Listener(2)));
        drop(first);
        assert!(listener.admit().is_ok());
    }

    #[test]
    fn the_global_cap_spans_listeners_and_ignoring_it_bypasses_it() {
        let global = GlobalConnections::new(1);
        let a = ListenerConnections::new(None, Some(global.clone()));
        let b = ListenerConnections::new(None, Some(global.clone()));
        let held = a.admit().expect("first");
        held.detected();
        assert_eq!(b.admit().map(|_| ()), Err(Refused::Global(1)));
        let admin = ListenerConnections::new(None, None);
        assert!(admin.admit().is_ok(), "a listener without the global cap");
        drop(held);
        assert_eq!(global.active(), 0);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_silent_connection_past_its_grace_makes_room() {
        let global = GlobalConnections::new(2);
        let listener = ListenerConnections::new(None, Some(global.clone()));
        let silent = listener.admit().expect("silent");
        let talking = listener.admit().expect("talking");
        talking.detected();
        assert!(
            listener.admit().is_err(),
            "the silent one is still in its grace"
        );
        tokio::time::advance(EVICTION_GRACE).await;
        let newcomer = listener.admit().expect("takes the silent one's place");
        tokio::time::timeout(Duration::from_secs(1), silent.evicted())
            .await
            .expect("the silent connection is told to close");
        drop(silent);
        newcomer.detected();
        assert_eq!(global.active(), 2);
        tokio::time::advance(EVICTION_GRACE).await;
        assert!(
            listener.admit().is_err(),
            "detected connections are never evicted"
        );
    }

    #[tokio::test]
    async fn emptied_resolves_when_the_last_connection_goes() {
        let listener = ListenerConnections::new(None, None);
        let held = listener.admit().expect("one");
        let waiting = tokio::spawn({
            let listener = listener.clone();
            async move { listener.emptied().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("resolved")
            .expect("no panic");
    }
}
