//! Shared harness for the end-to-end tests: locating the `mesh-host` binary,
//! the guest components and the real peers (curl, nghttp, Envoy, grpcio), and
//! running mesh-host as a child process on loopback.

pub mod auth_peers;
pub mod bootstrap;
pub mod client;
pub mod differential;
pub mod echo_upstream;
pub mod envoy;
pub mod grpcio;
pub mod inprocess;
pub mod otlp;
pub mod peers;
pub mod process;
pub mod prometheus;
pub mod proto;
pub mod raw_http1;
pub mod soak;
pub mod tls;
pub mod upstream;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The `.wasm` file of a guest component from `tests/components/`.
///
/// Panics with the build command when it has not been built: the test cannot
/// mean anything without it.
pub fn component(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("tests/components/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest component {name} is not built ({} is missing): run `bash tests/components/build.sh`",
        path.display()
    );
    path
}

/// The kind of a guest component: the `wasi:http` world it exports. Tests
/// that must hold for both run once per kind (see [`for_each_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `wasi:http/incoming-handler@0.2` (the plain guest names).
    P2,
    /// `wasi:http/handler@0.3.0` (the guests built as `<name>_p3.wasm`).
    P3,
}

impl Kind {
    /// The `.wasm` file of guest `name` in this kind.
    pub fn component(self, name: &str) -> PathBuf {
        match self {
            Kind::P2 => component(name),
            Kind::P3 => component(&format!("{name}_p3")),
        }
    }

    /// The workload name mesh-host gives the embedded default for guest
    /// `name` of this kind (the file stem).
    pub fn workload(self, name: &str) -> String {
        match self {
            Kind::P2 => name.to_owned(),
            Kind::P3 => format!("{name}_p3"),
        }
    }
}

/// Defines a test that runs once per component kind: `async fn NAME(kind:
/// Kind) { ... }` becomes module `NAME` with tests `p2` and `p3`.
#[macro_export]
macro_rules! for_each_kind {
    ($(#[doc = $doc:literal])* async fn $name:ident($kind:ident: Kind) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            use super::*;

            async fn run($kind: $crate::Kind) $body

            #[tokio::test(flavor = "multi_thread")]
            async fn p2() {
                run($crate::Kind::P2).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn p3() {
                run($crate::Kind::P3).await
            }
        }
    };
}

/// The `mesh-host` binary under test: `$MESH_HOST_BIN`, or the debug build
/// in the workspace's target directory.
pub fn mesh_host_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MESH_HOST_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("debug/mesh-host");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p mesh-host` first (scripts/test.sh does)",
        path.display()
    );
    path
}
