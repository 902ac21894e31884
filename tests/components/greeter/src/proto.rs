//! Message types generated from `tests/protos` by `build.rs`.

/// `helloworld.proto`.
pub mod helloworld {
    include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
}

/// `route_guide.proto`.
pub mod routeguide {
    include!(concat!(env!("OUT_DIR"), "/routeguide.rs"));
}
