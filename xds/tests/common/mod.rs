//! Builders of Envoy protos shared by the integration tests.

#![allow(dead_code, missing_docs)]

#[macro_use]
pub mod ads;
pub mod envoy;

pub use mesh_xds::test_control_plane::resources::*;
