use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::epoch::EpochTicker;

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
    /// How many instances may be live at once across all workloads
    /// (sizes the pooling allocator).
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_memory_bytes: 128 * 1024 * 1024,
            max_instances: 1000,
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

/// The engine plus the background ticker that drives epoch deadlines.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    cache: Option<Cache>,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Builds the engine: component model, async support, the pooling
    /// allocator and epoch interruption are always on.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(true);

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 4)
            .total_memories(config.max_instances * 4)
            .total_tables(config.max_instances * 4)
            .total_stacks(config.max_instances)
            .max_memory_size(config.max_memory_bytes as usize);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let cache = match &config.cache_dir {
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
        };
        wasm.cache(cache.clone());

        let engine = Engine::new(&wasm).map_err(RuntimeError::Engine)?;
        let ticker =
            EpochTicker::spawn(engine.clone(), EPOCH_TICK).map_err(RuntimeError::Ticker)?;
        Ok(Self {
            engine,
            config,
            cache,
            _ticker: Arc::new(ticker),
        })
    }

    /// The shared wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many compilations were served from the on-disk cache so far
    /// (`None` without a cache).
    pub fn cache_hits(&self) -> Option<usize> {
        self.cache.as_ref().map(Cache::cache_hits)
    }

    /// The settings the engine was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}
