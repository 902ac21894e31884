//! Builders of Envoy protos shared by the integration tests.

#![allow(dead_code, missing_docs)]

pub mod ads;

pub use mesh_xds::test_control_plane::resources::*;
