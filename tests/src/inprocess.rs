//! The canonical handler (Host-header routing) run inside the test process,
//! for tests that need several components behind one host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_host::frontend::{ConnectionSettings, FrontEndConfig, RequestLimits};
use mesh_host::handler::{
    HostHandler, HostHeaderRouter, ResolvedWorkload, RouterHandler, RouterHandlerConfig, WorkloadId,
};
use mesh_host::metrics::Metrics;
use mesh_host::runtime::{ComponentImage, Runtime, RuntimeConfig, WorkloadSettings};
use mesh_policies::WorkloadPolicy;
use mesh_policies::grpc::GrpcFlags;
use mesh_policies::limits::Limits;

/// A started canonical handler; each component answers the host
/// `<component>.test`.
pub struct CanonicalHost {
    /// The handler, for lifecycle calls.
    pub handler: Arc<RouterHandler<HostHeaderRouter>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts a canonical handler on 127.0.0.1 with `components` (guest names)
/// bound to `<name>.test`, each instance limited to `memory_bytes`.
pub async fn canonical_host(
    components: &[&str],
    grpc: GrpcFlags,
    request_timeout: Duration,
    memory_bytes: u64,
) -> CanonicalHost {
    let runtime = Runtime::new(RuntimeConfig {
        max_memory_bytes: memory_bytes,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let handler = Arc::new(RouterHandler::new(
        HostHeaderRouter::new(),
        runtime.clone(),
        Arc::new(Metrics::new()),
        RouterHandlerConfig {
            frontend: FrontEndConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                tls: None,
                limits: RequestLimits::default(),
                connections: ConnectionSettings::default(),
                drain_time: Duration::ZERO,
            },
        },
    ));
    let policy = Arc::new(WorkloadPolicy {
        grpc,
        limits: Limits {
            request_timeout,
            max_request_timeout: request_timeout,
            memory_bytes,
            ..Limits::default()
        },
        ..WorkloadPolicy::default()
    });
    for name in components {
        let image =
            ComponentImage::load(&runtime, &crate::component(name)).expect("load component");
        handler
            .clone()
            .on_workload_resolved(ResolvedWorkload {
                id: WorkloadId::new(name).expect("id"),
                image: Arc::new(image),
                settings: WorkloadSettings::from_limits(&policy.limits),
                hosts: vec![format!("{name}.test")],
                clusters: Vec::new(),
                policy: policy.clone(),
                principal: format!("spiffe://cluster.local/ns/default/sa/{name}").into(),
            })
            .expect("bind workload");
    }
    handler.clone().start().await.expect("start");
    let addr = handler.bound_addrs()[0];
    CanonicalHost { handler, addr }
}
