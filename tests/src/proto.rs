//! tonic stubs for the test protos (`tests/protos`).

#![allow(missing_docs, clippy::all)]

/// `helloworld.Greeter`.
pub mod helloworld {
    tonic::include_proto!("helloworld");
}

/// `routeguide.RouteGuide`.
pub mod routeguide {
    tonic::include_proto!("routeguide");
}
