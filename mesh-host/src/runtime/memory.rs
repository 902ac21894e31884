//! Linear memory accounting: each instance's own limit, and budgets shared by
//! many instances (the whole host's, and optionally one workload's share of
//! it) so that concurrent requests cannot grow the host without bound.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::metrics::gauge::Gauge;
use thiserror::Error;
use wasmtime::ResourceLimiter;

/// Raised (as a trap) when growing or creating a linear memory would take a
/// budget past its limit.
#[derive(Debug, Error)]
#[error("the memory budget is exhausted")]
pub(crate) struct BudgetExhausted;

/// Something holding instances that are not serving anything and can be
/// dropped at once to give their memory back.
pub(crate) trait ReclaimIdle: Send + Sync {
    /// Drops every idle instance.
    fn reclaim_idle(&self);
}

/// A number of bytes of linear memory that instances reserve as they create
/// and grow their memories, and give back when they are dropped.
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    idle: Mutex<Vec<Weak<dyn ReclaimIdle>>>,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Bytes reserved right now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Lets the budget drop `holder`'s idle instances before it refuses a
    /// reservation: memory kept for reuse must not starve a request.
    pub(crate) fn register_idle(&self, holder: Weak<dyn ReclaimIdle>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        idle.retain(|holder| holder.strong_count() > 0);
        idle.push(holder);
    }

    fn try_reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Reserves `bytes`, dropping idle instances first if that is what it
    /// takes.
    fn reserve(&self, bytes: u64) -> Result<(), BudgetExhausted> {
        if self.try_reserve(bytes) {
            return Ok(());
        }
        let holders: Vec<_> = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for holder in holders {
            holder.reclaim_idle();
        }
        if self.try_reserve(bytes) {
            Ok(())
        } else {
            Err(BudgetExhausted)
        }
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The budgets one workload's instances draw from: the host's, and the
/// workload's own share when its policy sets one.
#[derive(Clone)]
pub(crate) struct Budgets {
    pub(crate) host: Arc<MemoryBudget>,
    pub(crate) workload: Option<Arc<MemoryBudget>>,
}

impl Budgets {
    fn reserve(&self, bytes: u64) -> Result<(), BudgetExhausted> {
        if let Some(share) = &self.workload {
            share.reserve(bytes)?;
        }
        self.host.reserve(bytes).inspect_err(|_| {
            if let Some(share) = &self.workload {
                share.release(bytes);
            }
        })
    }

    fn release(&self, bytes: u64) {
        self.host.release(bytes);
        if let Some(share) = &self.workload {
            share.release(bytes);
        }
    }

    pub(crate) fn register_idle(&self, holder: Weak<dyn ReclaimIdle>) {
        self.host.register_idle(holder.clone());
        if let Some(share) = &self.workload {
            share.register_idle(holder);
        }
    }
}

/// The resource limiter of one store: the instance's own memory limit, and
/// its reservation in the budgets, given back when the store is dropped.
pub(crate) struct InstanceMemory {
    limit: usize,
    budgets: Budgets,
    reserved: u64,
    refused: Arc<AtomicBool>,
    high_water: Option<Gauge<u64, AtomicU64>>,
}

impl InstanceMemory {
    pub(crate) fn new(limit: usize, budgets: Budgets) -> Self {
        Self {
            limit,
            budgets,
            reserved: 0,
            refused: Arc::default(),
            high_water: None,
        }
    }

    /// Raises `gauge` to this instance's memory whenever it grows past it.
    pub(crate) fn reporting_high_water(mut self, gauge: Gauge<u64, AtomicU64>) -> Self {
        self.high_water = Some(gauge);
        self
    }

    /// Set once a budget refused this instance memory: whatever fails in it
    /// afterwards failed for want of memory, not because of the guest.
    pub(crate) fn budget_refused(&self) -> &Arc<AtomicBool> {
        &self.refused
    }
}

impl ResourceLimiter for InstanceMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            // The guest sees a failed `memory.grow`, as with any limit of its own.
            return Ok(false);
        }
        let grow_by = desired.saturating_sub(current) as u64;
        if let Err(exhausted) = self.budgets.reserve(grow_by) {
            self.refused.store(true, Ordering::Relaxed);
            return Err(exhausted.into());
        }
        self.reserved += grow_by;
        if let Some(gauge) = &self.high_water {
            gauge.inner().fetch_max(self.reserved, Ordering::Relaxed);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's slots.
        Ok(true)
    }
}

impl Drop for InstanceMemory {
    fn drop(&mut self) {
        self.budgets.release(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn budgets(host: u64, workload: Option<u64>) -> Budgets {
        Budgets {
            host: Arc::new(MemoryBudget::new(host)),
            workload: workload.map(|limit| Arc::new(MemoryBudget::new(limit))),
        }
    }

    #[test]
    fn growth_past_the_instance_limit_fails_the_grow_without_touching_the_budget() {
        let budgets = budgets(64 * MIB as u64, None);
        let mut memory = InstanceMemory::new(4 * MIB, budgets.clone());
        assert!(matches!(memory.memory_growing(0, 8 * MIB, None), Ok(false)));
        assert_eq!(budgets.host.used(), 0);
        assert!(!memory.budget_refused().load(Ordering::Relaxed));
    }

    #[test]
    fn the_budget_refuses_with_a_trap_and_a_dropped_store_gives_its_memory_back() {
        let budgets = budgets(10 * MIB as u64, None);
        let mut first = InstanceMemory::new(8 * MIB, budgets.clone());
        assert!(matches!(first.memory_growing(0, 6 * MIB, None), Ok(true)));
        let mut second = InstanceMemory::new(8 * MIB, budgets.clone());
        let refused = second
            .memory_growing(0, 6 * MIB, None)
            .expect_err("over budget");
        assert!(refused.is::<BudgetExhausted>());
        assert!(second.budget_refused().load(Ordering::Relaxed));
        drop(first);
        assert_eq!(budgets.host.used(), 0);
        assert!(matches!(second.memory_growing(0, 6 * MIB, None), Ok(true)));
    }

    #[test]
    fn a_workload_share_binds_before_the_host_budget_and_releases_both() {
        let budgets = budgets(100 * MIB as u64, Some(4 * MIB as u64));
        let mut memory = InstanceMemory::new(64 * MIB, budgets.clone());
        assert!(memory.memory_growing(0, 8 * MIB, None).is_err());
        assert_eq!(budgets.host.used(), 0, "a refused share reserves nothing");
        assert!(matches!(memory.memory_growing(0, 2 * MIB, None), Ok(true)));
        drop(memory);
        assert_eq!(budgets.host.used(), 0);
        assert_eq!(budgets.workload.as_ref().map(|share| share.used()), Some(0));
    }

    struct Idle {
        held: Mutex<Option<InstanceMemory>>,
    }

    impl ReclaimIdle for Idle {
        fn reclaim_idle(&self) {
            self.held.lock().expect("lock").take();
        }
    }

    #[test]
    fn idle_instances_are_dropped_before_a_reservation_is_refused() {
        let budgets = budgets(10 * MIB as u64, None);
        let mut kept = InstanceMemory::new(8 * MIB, budgets.clone());
        assert!(matches!(kept.memory_growing(0, 8 * MIB, None), Ok(true)));
        let idle = Arc::new(Idle {
            held: Mutex::new(Some(kept)),
        });
        let holder: Arc<dyn ReclaimIdle> = idle.clone();
        budgets.register_idle(Arc::downgrade(&holder));
        let mut busy = InstanceMemory::new(8 * MIB, budgets.clone());
        assert!(matches!(busy.memory_growing(0, 8 * MIB, None), Ok(true)));
        assert!(idle.held.lock().expect("lock").is_none());
    }
}
