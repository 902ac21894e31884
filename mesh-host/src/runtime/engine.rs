//! The runtime: one wasmtime engine per component kind (created when the first component of
//! that kind loads), the compilation cache and the memory budget shared by every workload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use thiserror::Error;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::component::ComponentKind;
use super::epoch::EpochTicker;
use super::memory::MemoryBudget;

/// How often the engine's epoch advances. Deadlines are checked at this
/// granularity, so it bounds how late a runaway guest is stopped.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings, shared by every workload of the host.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory for compiled-code caching; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Largest linear memory any instance may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// How many instances may be live at once across all workloads, per
    /// component kind (sizes each engine's pooling allocator).
    pub max_instances: u32,
    /// Total linear memory of every instance of the host at once, in bytes;
    /// an instance that would take more fails its request as overloaded.
    /// `None` leaves it unbounded (only the pool's slots bound it).
    pub memory_budget_bytes: Option<u64>,
}

/// Default total linear memory of all instances: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 4 * 1024 * 1024 * 1024;

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_memory_bytes: 128 * 1024 * 1024,
            max_instances: 1000,
            memory_budget_bytes: Some(DEFAULT_MEMORY_BUDGET_BYTES),
        }
    }
}

/// The conventional per-user cache location (`$XDG_CACHE_HOME/mesh-host` or
/// `~/.cache/mesh-host`).
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("mesh-host"))
}

/// Errors building the engine.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The compilation cache directory could not be set up.
    #[error("cannot use compilation cache directory {dir}: {cause}")]
    Cache {
        /// The directory that was configured.
        dir: PathBuf,
        /// What wasmtime reported.
        cause: wasmtime::Error,
    },
    /// The epoch thread could not be started, so deadlines could not be enforced.
    #[error("cannot start the epoch thread: {0}")]
    Ticker(std::io::Error),
    /// wasmtime rejected the engine configuration.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(wasmtime::Error),
}

/// The engines plus the background ticker that drives epoch deadlines, and
/// the host's memory budget.
///
/// `wasi:http@0.2` components run on an engine without the component model's
/// concurrency support: each host call is then a plain call instead of a
/// component-model task. `wasi:http@0.3` components need that support and get
/// an engine of their own. Each engine (and the address space its pooling
/// allocator reserves) is created when the first component of its kind is
/// loaded.
#[derive(Clone)]
pub struct Runtime {
    engines: Arc<Engines>,
    config: RuntimeConfig,
    cache: Option<Cache>,
    memory: Arc<MemoryBudget>,
    _ticker: Arc<EpochTicker>,
}

/// The engines created so far; the ticker advances each of them.
pub(crate) struct Engines {
    p2: OnceLock<Engine>,
    concurrent: OnceLock<Engine>,
    creating: Mutex<()>,
}

impl Engines {
    pub(crate) fn created(&self) -> impl Iterator<Item = &Engine> {
        [self.p2.get(), self.concurrent.get()].into_iter().flatten()
    }
}

impl Runtime {
    /// Sets up the runtime: the compilation cache, the memory budget and the
    /// epoch ticker. Engines come later, one per kind of component loaded.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let cache = cache(&config)?;
        let engines = Arc::new(Engines {
            p2: OnceLock::new(),
            concurrent: OnceLock::new(),
            creating: Mutex::new(()),
        });
        let ticker =
            EpochTicker::spawn(engines.clone(), EPOCH_TICK).map_err(RuntimeError::Ticker)?;
        let memory = Arc::new(MemoryBudget::new(
            config.memory_budget_bytes.unwrap_or(u64::MAX),
        ));
        Ok(Self {
            engines,
            config,
            cache,
            memory,
            _ticker: Arc::new(ticker),
        })
    }

    /// The engine of components of `kind`, created on first use: component
    /// model, async support, the pooling allocator and epoch interruption are
    /// always on; the component model's concurrency only for `wasi:http@0.3`.
    pub fn engine(&self, kind: ComponentKind) -> Result<&Engine, RuntimeError> {
        let slot = match kind {
            ComponentKind::P2 => &self.engines.p2,
            ComponentKind::P3 => &self.engines.concurrent,
        };
        if let Some(engine) = slot.get() {
            return Ok(engine);
        }
        let _creating = self
            .engines
            .creating
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(engine) = slot.get() {
            return Ok(engine);
        }
        let mut config = engine_config(&self.config, self.cache.clone());
        match kind {
            ComponentKind::P2 => config.concurrency_support(false),
            ComponentKind::P3 => config.wasm_component_model_async(true),
        };
        let engine = Engine::new(&config).map_err(RuntimeError::Engine)?;
        Ok(slot.get_or_init(|| engine))
    }

    /// How many compilations were served from the on-disk cache so far
    /// (`None` without a cache).
    pub fn cache_hits(&self) -> Option<usize> {
        self.cache.as_ref().map(Cache::cache_hits)
    }

    /// The settings the engines were built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Bytes of linear memory that live instances hold right now.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.used()
    }

    pub(crate) fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }
}

fn engine_config(config: &RuntimeConfig, cache: Option<Cache>) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true).epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(config.max_instances)
        .total_core_instances(config.max_instances * 4)
        .total_memories(config.max_instances * 4)
        .total_tables(config.max_instances * 4)
        .total_stacks(config.max_instances)
        .max_memory_size(config.max_memory_bytes as usize);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm.cache(cache);
    wasm
}

fn cache(config: &RuntimeConfig) -> Result<Option<Cache>, RuntimeError> {
    Ok(match &config.cache_dir {
        Some(dir) => {
            let mut cache_config = CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = Cache::new(cache_config).map_err(|cause| RuntimeError::Cache {
                dir: dir.clone(),
                cause,
            })?;
            Some(cache)
        }
        None => None,
    })
}
