//! mesh-xds: the xDS side of mesh-host.
//!
//! It turns Envoy v3 configuration — from a bootstrap file, from a control plane over ADS
//! (Istio, Envoy Gateway, any ADS server), or both — into validated, immutable
//! [`config::MeshConfig`] snapshots that the host's front end and egress path read. Nothing
//! outside this crate sees a protobuf type.
//!
//! - [`bootstrap`]: Envoy bootstrap files (YAML or JSON): node identity, static resources,
//!   the ADS server to use. Errors name the file, the field path and the problem.
//! - [`translate`]: `TryFrom` conversions of `Listener`, `RouteConfiguration`, `Cluster`,
//!   `ClusterLoadAssignment` and `Secret`. Fields that change behaviour and are not implemented are
//!   rejected by path (`virtual_hosts[0].routes[2].match.connect_matcher is not supported`).
//! - [`ads`]: the ADS client, state of the world or incremental: a sans-IO state machine
//!   ([`ads::AdsState`]: ACK/NACK, subscriptions, warming) and the task that drives it over
//!   gRPC with reconnects and backoff ([`ads::AdsClient`]).
//! - [`field_policy`]: how every field of the translated messages is treated (honoured, no
//!   effect, or refused), the source of `docs/xds-support.md`.
//! - [`dump`]: Envoy's `/config_dump` of the bootstrap and the accepted resources.
//! - [`store`]: [`store::ConfigStore`] publishes snapshots (static base layer plus dynamic
//!   resources) through an `ArcSwap` and a `watch` channel; SDS names in TLS contexts are
//!   replaced by the secrets' key material there, so the host never sees one.
//! - `test_control_plane` (feature `test-control-plane`): a snapshot-based ADS server for tests.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use mesh_xds::ads::{AdsClient, AdsClientConfig};
//! use mesh_xds::bootstrap::Bootstrap;
//! use mesh_xds::store::ConfigStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bootstrap = Bootstrap::load("envoy.yaml".as_ref())?;
//! let store = Arc::new(ConfigStore::new(bootstrap.static_config.clone()));
//! let _client = bootstrap
//!     .ads
//!     .as_ref()
//!     .map(|ads| AdsClient::spawn(AdsClientConfig::from_source(ads, bootstrap.node.clone()), store.clone()));
//!
//! let mut changes = store.subscribe();
//! loop {
//!     let config = store.load();
//!     for (name, listener) in &config.listeners {
//!         println!("v{}: listener {name} on {}", config.version, listener.address);
//!     }
//!     changes.changed().await?;
//! }
//! # }
//! ```

pub mod ads;
pub mod bootstrap;
pub mod config;
pub mod dump;
pub mod field_policy;
mod secrets;
pub mod store;
#[cfg(feature = "test-control-plane")]
pub mod test_control_plane;
pub mod translate;

/// The proto crates this crate speaks, re-exported so control planes, tests and benchmarks
/// build resources with exactly the versions mesh-xds decodes.
pub use {envoy_types, prost};
