//! Routers the host provides: by Host header (the canonical handler) and the development
//! router (always the latest workload).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::{ResolvedWorkload, RouteError, Router, WorkloadId};

/// The canonical router: the request's host (`:authority` or `Host`, port
/// and case ignored) selects the workload that declared that host.
#[derive(Default)]
pub struct HostHeaderRouter {
    hosts: ArcSwap<HashMap<String, WorkloadId>>,
    // Serialises writers; readers only load the snapshot.
    write: Mutex<()>,
}

impl HostHeaderRouter {
    /// A router with no hosts.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, change: impl FnOnce(&mut HashMap<String, WorkloadId>)) {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.hosts.load());
        change(&mut next);
        self.hosts.store(next.into());
    }
}

/// The host part of a request's authority, lower-cased, without port.
pub(crate) fn request_host(request: &http::request::Parts) -> Option<String> {
    let authority = match request.uri.authority() {
        Some(authority) => authority.host().to_owned(),
        None => {
            let host = request.headers.get(http::header::HOST)?.to_str().ok()?;
            let authority: http::uri::Authority = host.parse().ok()?;
            authority.host().to_owned()
        }
    };
    Some(authority.to_ascii_lowercase())
}

impl Router for HostHeaderRouter {
    fn route_incoming_request(
        &self,
        request: &http::request::Parts,
    ) -> Result<WorkloadId, RouteError> {
        let host = request_host(request).unwrap_or_default();
        self.hosts
            .load()
            .get(&host)
            .cloned()
            .ok_or(RouteError::NoRoute(host))
    }

    fn on_workload_resolved(&self, workload: &ResolvedWorkload) {
        self.update(|hosts| {
            for host in &workload.hosts {
                hosts.insert(host.to_ascii_lowercase(), workload.id.clone());
            }
        });
    }

    fn on_workload_unbind(&self, workload: &WorkloadId) {
        self.update(|hosts| hosts.retain(|_, id| id != workload));
    }
}

/// A development router: every request goes to the most recently resolved
/// workload that is still bound.
#[derive(Default)]
pub struct DevRouter {
    bound: Mutex<Vec<WorkloadId>>,
}

impl DevRouter {
    /// A router with no workloads.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Router for DevRouter {
    fn route_incoming_request(
        &self,
        request: &http::request::Parts,
    ) -> Result<WorkloadId, RouteError> {
        let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound
            .last()
            .cloned()
            .ok_or_else(|| RouteError::NoRoute(request.uri.path().to_owned()))
    }

    fn on_workload_resolved(&self, workload: &ResolvedWorkload) {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound.retain(|id| id != &workload.id);
        bound.push(workload.id.clone());
    }

    fn on_workload_unbind(&self, workload: &WorkloadId) {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound.retain(|id| id != workload);
    }
}
