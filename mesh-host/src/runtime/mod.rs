//! The component runtime: one wasmtime [`Engine`] shared by every workload,
//! components compiled once (and cached on disk), pre-instantiated, and served
//! with instance reuse through wasmtime-wasi-http's `ProxyHandler`.

mod component;
mod engine;
mod epoch;
mod outbound;
mod store;
mod workload;

pub use component::{ComponentError, ComponentImage};
pub use engine::{Runtime, RuntimeConfig, RuntimeError, default_cache_dir};
pub use outbound::{OutboundSender, OutgoingFuture};
pub use store::EgressHooks;
pub use workload::{ServeError, Workload, WorkloadSettings};
