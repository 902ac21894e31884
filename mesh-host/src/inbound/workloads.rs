//! The workloads bound to a handler, by id and by the xDS clusters they serve: the requests a
//! listener routes to one of those clusters, and the requests components send to them, are
//! served in-process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::local::LocalWorkload;
use crate::shared::WorkloadId;

/// A workload with this id is already bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workload {0} is already bound")]
pub struct AlreadyBound(pub WorkloadId);

/// The bound workloads, read without locking by every request.
#[derive(Default)]
pub struct LocalWorkloads {
    current: ArcSwap<Registry>,
    // Serialises writers; readers only load the snapshot.
    write: Mutex<()>,
}

#[derive(Default, Clone)]
struct Registry {
    by_id: HashMap<WorkloadId, Arc<LocalWorkload>>,
    by_cluster: HashMap<String, Arc<LocalWorkload>>,
}

impl LocalWorkloads {
    /// Binds `workload` to its id and the clusters it serves.
    pub fn bind(
        &self,
        workload: Arc<LocalWorkload>,
        clusters: &[String],
    ) -> Result<(), AlreadyBound> {
        self.update(|registry| {
            if registry.by_id.contains_key(workload.id()) {
                return Err(AlreadyBound(workload.id().clone()));
            }
            for cluster in clusters {
                registry
                    .by_cluster
                    .insert(cluster.clone(), workload.clone());
            }
            registry.by_id.insert(workload.id().clone(), workload);
            Ok(())
        })
    }

    /// Unbinds a workload; requests in flight keep their reference and finish. `false` when
    /// no workload had this id.
    pub fn unbind(&self, id: &WorkloadId) -> bool {
        self.update(|registry| {
            let found = registry.by_id.remove(id).is_some();
            registry
                .by_cluster
                .retain(|_, workload| workload.id() != id);
            Ok::<_, AlreadyBound>(found)
        })
        .unwrap_or(false)
    }

    /// The workload with this id.
    pub fn by_id(&self, id: &WorkloadId) -> Option<Arc<LocalWorkload>> {
        self.current.load().by_id.get(id).cloned()
    }

    /// The workload serving this cluster.
    pub fn by_cluster(&self, cluster: &str) -> Option<Arc<LocalWorkload>> {
        self.current.load().by_cluster.get(cluster).cloned()
    }

    fn update<T, E>(&self, change: impl FnOnce(&mut Registry) -> Result<T, E>) -> Result<T, E> {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Registry::clone(&self.current.load());
        let result = change(&mut next)?;
        self.current.store(Arc::new(next));
        Ok(result)
    }
}
