use std::path::{Path, PathBuf};

use thiserror::Error;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::handler::ProxyPre;

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
    /// The component does not export `wasi:http/incoming-handler`.
    #[error("{path} does not export wasi:http/incoming-handler@0.2: {cause}")]
    NotHttpHandler {
        /// The file that was given.
        path: PathBuf,
        /// What wasmtime reported.
        cause: wasmtime::Error,
    },
}

/// A compiled, linked and pre-instantiated WASI HTTP component, ready to be
/// bound to a workload. Cheap to share: instances are created from it on demand.
pub struct ComponentImage {
    path: PathBuf,
    pre: ProxyPre<StoreState>,
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
        let hits_before = runtime.cache_hits();
        let started = std::time::Instant::now();
        let component =
            Component::new(runtime.engine(), bytes).map_err(|cause| ComponentError::Compile {
                path: path.to_owned(),
                cause,
            })?;
        let how = if runtime.cache_hits() > hits_before {
            "loaded from the compilation cache"
        } else {
            "compiled"
        };
        tracing::info!(component = %path.display(), elapsed = ?started.elapsed(), "{how}");
        let linker = proxy_linker(runtime).map_err(|cause| ComponentError::Link {
            path: path.to_owned(),
            cause,
        })?;
        let instance_pre =
            linker
                .instantiate_pre(&component)
                .map_err(|cause| ComponentError::Link {
                    path: path.to_owned(),
                    cause,
                })?;
        let pre =
            wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre).map_err(|cause| {
                ComponentError::NotHttpHandler {
                    path: path.to_owned(),
                    cause,
                }
            })?;
        Ok(Self {
            path: path.to_owned(),
            pre: ProxyPre::P2(pre),
        })
    }

    /// Where the component was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pre(&self) -> &ProxyPre<StoreState> {
        &self.pre
    }
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

/// The WASI p2 interfaces a Rust-std component needs plus `wasi:http`; the
/// outgoing handler it links is routed through [`super::EgressHooks`].
fn proxy_linker(runtime: &Runtime) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(runtime.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_config::add_to_linker(&mut linker, |state: &mut StoreState| {
        wasmtime_wasi_config::WasiConfig::from(&*state.config)
    })?;
    Ok(linker)
}
