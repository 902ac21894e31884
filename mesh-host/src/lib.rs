//! mesh-host runs WebAssembly components that speak WASI HTTP and is itself a
//! service-mesh data plane: a [`handler::HostHandler`] replaces the canonical
//! HTTP server of a Wasm host with a front end that auto-negotiates HTTP/1.1,
//! HTTP/2 and gRPC on one port, applies per-component policy, and is the only
//! exit for a component's outbound requests.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod cli;
pub mod egress;
pub mod filters;
pub mod frontend;
pub mod handler;
pub mod inbound;
pub mod mesh;
pub mod mesh_config;
pub mod metrics;
pub mod outbound;
pub mod routing;
pub mod runtime;
pub mod shared;
pub mod snapshot;
pub mod tcp_proxy;
pub mod trace;
