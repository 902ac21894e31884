//! The component runtime: components compiled once (and cached on disk),
//! pre-instantiated and served with instance reuse. `wasi:http@0.2`
//! components take a direct path on an engine of their own (one plain guest
//! call per request, no component-model tasks); `wasi:http@0.3` components
//! run concurrent requests per instance through wasmtime-wasi-http's
//! `ProxyHandler`. Both share one store setup, one deadline rule, one memory
//! budget and one egress exit.

mod component;
mod engine;
mod epoch;
mod memory;
mod outbound;
mod p2;
mod p3;
mod p3_client;
mod store;
mod workload;

pub use component::{ComponentError, ComponentImage, ComponentKind};
pub use engine::{
    DEFAULT_MEMORY_BUDGET_BYTES, Runtime, RuntimeConfig, RuntimeError, default_cache_dir,
};
pub use outbound::{OutboundSender, OutgoingFuture};
pub use store::EgressHooks;
pub use workload::{ServeError, Workload, WorkloadSettings};
