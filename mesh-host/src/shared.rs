//! What the inbound and outbound areas share and nothing else: the identity
//! of a workload and the failures the host answers for itself.

mod failure;
mod workload_id;

pub use failure::{Failure, REASON_HEADER};
pub use workload_id::{InvalidWorkloadId, WorkloadId};
