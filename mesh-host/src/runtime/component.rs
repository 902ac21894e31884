//! Components compiled once (and cached on disk), linked with WASI and WASI HTTP, and
//! pre-instantiated; the kind (wasi:http@0.2 or @0.3) read from the exports.

use std::path::{Path, PathBuf};

use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::engine::Runtime;
use super::store::StoreState;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Layer/version bytes that follow the magic in a component binary; a core
/// module has `01 00 00 00` there instead.
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Why a file could not become a servable component.
#[derive(Debug, Error)]
pub enum ComponentError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file that was given.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("{path} is not a WebAssembly file")]
    NotWasm {
        /// The file that was given.
        path: PathBuf,
    },
    /// The file is a core module, which cannot speak WASI HTTP.
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule {
        /// The file that was given.
        path: PathBuf,
    },
    /// wasmtime could not compile the component.
    #[error("cannot compile {path}: {cause}")]
    Compile {
        /// The file that was given.
        path: PathBuf,
        /// What wasmtime reported.
        cause: wasmtime::Error,
    },
    /// The component imports something the host does not provide.
    #[error("cannot link {path}: {cause}")]
    Link {
        /// The file that was given.
        path: PathBuf,
        /// What wasmtime reported.
        cause: wasmtime::Error,
    },
    /// The engine for the component's kind could not be created.
    #[error("cannot run {path}: {cause}")]
    Engine {
        /// The file that was given.
        path: PathBuf,
        /// Why the engine could not be created.
        cause: super::engine::RuntimeError,
    },
    /// The component exports neither `wasi:http/incoming-handler@0.2` nor
    /// `wasi:http/handler@0.3`.
    #[error(
        "{path} exports neither wasi:http/incoming-handler@0.2 nor wasi:http/handler@0.3: {cause}"
    )]
    NotHttpHandler {
        /// The file that was given.
        path: PathBuf,
        /// What wasmtime reported.
        cause: wasmtime::Error,
    },
}

/// Which `wasi:http` world a component serves; read from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// Exports `wasi:http/incoming-handler@0.2`: one request at a time per
    /// instance, served on the direct path.
    P2,
    /// Exports `wasi:http/handler@0.3`: concurrent requests per instance,
    /// served through the component model's concurrency.
    P3,
}

const P2_EXPORT: &str = "wasi:http/incoming-handler@0.2";
const P3_EXPORT: &str = "wasi:http/handler@0.3";

/// The pre-instance of a component, per kind.
pub(crate) enum ComponentPre {
    P2(wasmtime_wasi_http::p2::bindings::ProxyPre<StoreState>),
    P3(wasmtime_wasi_http::p3::bindings::ServicePre<StoreState>),
}

/// A compiled, linked and pre-instantiated WASI HTTP component, ready to be
/// bound to a workload. Cheap to share: instances are created from it on demand.
pub struct ComponentImage {
    path: PathBuf,
    digest: String,
    pre: ComponentPre,
}

impl ComponentImage {
    /// Reads, checks, compiles (or loads from the cache) and pre-instantiates
    /// the component at `path`.
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Self, ComponentError> {
        let bytes = std::fs::read(path).map_err(|cause| ComponentError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::from_bytes(runtime, path, &bytes)
    }

    /// Like [`ComponentImage::load`], for bytes already in memory; `path`
    /// only names the component in errors and logs.
    pub fn from_bytes(
        runtime: &Runtime,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Self, ComponentError> {
        check_component_header(path, bytes)?;
        let not_http = |cause| ComponentError::NotHttpHandler {
            path: path.to_owned(),
            cause,
        };
        let kind = exported_kind(bytes).map_err(not_http)?;
        let engine = runtime
            .engine(kind)
            .map_err(|cause| ComponentError::Engine {
                path: path.to_owned(),
                cause,
            })?;
        let hits_before = runtime.cache_hits();
        let started = std::time::Instant::now();
        let component = Component::new(engine, bytes).map_err(|cause| ComponentError::Compile {
            path: path.to_owned(),
            cause,
        })?;
        let how = if runtime.cache_hits() > hits_before {
            "loaded from the compilation cache"
        } else {
            "compiled"
        };
        tracing::info!(component = %path.display(), elapsed = ?started.elapsed(), ?kind, "{how}");
        let link = |cause| ComponentError::Link {
            path: path.to_owned(),
            cause,
        };
        let linker = linker(engine, kind).map_err(link)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(link)?;
        let pre = match kind {
            ComponentKind::P2 => ComponentPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre).map_err(not_http)?,
            ),
            ComponentKind::P3 => ComponentPre::P3(
                wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre)
                    .map_err(not_http)?,
            ),
        };
        Ok(Self {
            path: path.to_owned(),
            digest: digest(bytes),
            pre,
        })
    }

    /// Where the component was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The component's bytes' digest, `sha256:<hex>` as OCI registries name contents, so an
    /// operator can tell which build is running.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Which `wasi:http` world the component serves.
    pub fn kind(&self) -> ComponentKind {
        match self.pre {
            ComponentPre::P2(_) => ComponentKind::P2,
            ComponentPre::P3(_) => ComponentKind::P3,
        }
    }

    pub(crate) fn pre(&self) -> &ComponentPre {
        &self.pre
    }
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        // Writing into a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn check_component_header(path: &Path, bytes: &[u8]) -> Result<(), ComponentError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(ComponentError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes[4..8] != COMPONENT_VERSION {
        return Err(ComponentError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The kind named by the component's own (top-level) exports: the engine must
/// be chosen before compiling. A component exporting both is served as P3, as
/// `wasmtime serve` does.
fn exported_kind(bytes: &[u8]) -> wasmtime::Result<ComponentKind> {
    let mut depth = 0usize;
    let mut p2 = false;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload? {
            // Every nested module or component starts with its own header.
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    let name = export?.name.name;
                    if name.starts_with(P3_EXPORT) {
                        return Ok(ComponentKind::P3);
                    }
                    p2 |= name.starts_with(P2_EXPORT);
                }
            }
            _ => {}
        }
    }
    if p2 {
        Ok(ComponentKind::P2)
    } else {
        Err(wasmtime::format_err!("no such export"))
    }
}

/// The WASI interfaces a Rust-std component needs plus `wasi:http` and
/// `wasi:config`; outbound requests go through [`super::EgressHooks`]. A P3
/// component built with Rust's std imports WASI 0.2 for std besides the 0.3
/// interfaces it uses itself, so it gets both.
fn linker(engine: &Engine, kind: ComponentKind) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    if kind == ComponentKind::P3 {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        super::p3_client::add_traced_send(&mut linker)?;
    }
    wasmtime_wasi_config::add_to_linker(&mut linker, |state: &mut StoreState| {
        wasmtime_wasi_config::WasiConfig::from(&*state.config)
    })?;
    Ok(linker)
}
