//! Wires the runtime, the handlers and the signals together for the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mesh_policies::WorkloadPolicy;
use mesh_policies::egress::{EgressConfig, EgressRuleConfig, EgressRules};
use mesh_policies::grpc::GrpcFlags;
use mesh_policies::limits::Limits;
use mesh_xds::ads::{AdsClient, AdsClientConfig};
use mesh_xds::bootstrap::Bootstrap;
use mesh_xds::store::ConfigStore;
use tracing_subscriber::EnvFilter;

use crate::cli::{RunArgs, ValidateArgs};
use crate::frontend::{
    ConnectionSettings, FrontEndConfig, GlobalConnections, RequestLimits, TlsFiles,
};
use crate::handler::{
    DevRouter, HostHandler, HostHeaderRouter, ResolvedWorkload, Router, RouterHandler,
    RouterHandlerConfig, WorkloadId,
};
use crate::mesh::{MeshHandler, MeshHandlerConfig};
use crate::mesh_config::{
    DEFAULT_NAMESPACE, DEFAULT_TRUST_DOMAIN, MeshConfigFile, WorkloadEntry, spiffe_id,
};
use crate::metrics::Metrics;
use crate::runtime::{ComponentImage, Runtime, RuntimeConfig, WorkloadSettings, default_cache_dir};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); colours only on a terminal, so
/// that a log file or a supervisor's capture reads `limit=1024` as written.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// File descriptors kept out of the connection cap derived from the open-file limit, at
/// least: listeners, upstream connections, the compilation cache, logs.
const MIN_RESERVED_FILES: u64 = 32;

/// Raises the soft open-file limit to the hard one; the limit in force afterwards
/// ([`log_connection_limits`] reports it once the host serves, so that bad input is
/// still answered with one line).
fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!("cannot read or raise the open file limit: {error}");
            None
        }
    }
}

/// The connection cap when none is configured: what the open-file limit leaves after
/// a reserve of a tenth of it, so that accepting never runs out of descriptors.
fn default_max_connections(open_files: u64) -> u64 {
    let reserve = (open_files / 10).max(MIN_RESERVED_FILES);
    open_files.saturating_sub(reserve).max(1)
}

/// The process-wide connection cap: `--max-connections`, else the bootstrap's, else
/// derived from the open-file limit.
fn global_connections(
    args: &RunArgs,
    open_files: Option<u64>,
    from_bootstrap: Option<u64>,
) -> Option<Arc<GlobalConnections>> {
    let max = args
        .max_connections
        .or(from_bootstrap)
        .or(open_files.map(default_max_connections))?;
    if let Some(open_files) = open_files
        && max > open_files
    {
        tracing::warn!(
            max,
            open_files,
            "the connection limit is above the open file limit; accepting may fail first"
        );
    }
    Some(GlobalConnections::new(
        usize::try_from(max).unwrap_or(usize::MAX),
    ))
}

/// Logs the open-file limit and the process-wide connection cap in force.
fn log_connection_limits(open_files: Option<u64>, global: Option<&GlobalConnections>) {
    if let Some(limit) = open_files {
        tracing::info!(limit, "open file limit");
    }
    if let Some(global) = global {
        tracing::info!(max = global.max(), "downstream connection limit");
    }
}

/// `mesh-host run`: the embedded default, a config file, or the mesh handler
/// on a bootstrap.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let open_files = raise_open_file_limit();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        if let Some(config) = &args.config {
            return run_config_file(&args, config, open_files).await;
        }
        match (&args.component, &args.bootstrap) {
            (_, Some(bootstrap)) => {
                let workloads = flag_workloads(&args)?;
                let egress_listener = args.egress_listener.clone();
                let mesh = MeshRun {
                    workloads,
                    admin: args.admin,
                    egress_listener,
                    open_files,
                };
                run_mesh(&args, bootstrap, mesh).await
            }
            (Some(component), None) => run_embedded(&args, component, open_files).await,
            (None, None) => {
                anyhow::bail!("give a COMPONENT.wasm, --bootstrap with --workload, or --config")
            }
        }
    })
}

/// `mesh-host validate`: parse and translate a bootstrap, or a mesh config
/// file and everything it names, and report the result.
pub fn validate(args: &ValidateArgs) -> anyhow::Result<()> {
    match (&args.bootstrap, &args.config) {
        (Some(bootstrap), _) => validate_bootstrap(bootstrap),
        (None, Some(config)) => validate_config_file(config),
        (None, None) => anyhow::bail!("give --bootstrap FILE or --config FILE"),
    }
}

fn validate_bootstrap(path: &Path) -> anyhow::Result<()> {
    let bootstrap = Bootstrap::load(path)?;
    let config = &bootstrap.static_config;
    println!(
        "{}: OK ({} listeners, {} clusters{})",
        path.display(),
        config.listeners.len(),
        config.clusters.len(),
        if bootstrap.ads.is_some() { ", ADS" } else { "" }
    );
    Ok(())
}

fn validate_config_file(path: &Path) -> anyhow::Result<()> {
    let file = MeshConfigFile::load(path)?;
    let unreadable: Vec<String> = file
        .workloads
        .iter()
        .enumerate()
        .filter_map(|(index, workload)| {
            std::fs::metadata(&workload.component).err().map(|error| {
                format!(
                    "workloads[{index}].component: cannot read {}: {error}",
                    workload.component.display()
                )
            })
        })
        .collect();
    if !unreadable.is_empty() {
        anyhow::bail!("{}: {}", path.display(), unreadable.join("; "));
    }
    if let Some(bootstrap) = &file.bootstrap {
        validate_bootstrap(bootstrap)?;
    }
    println!(
        "{}: OK ({} workloads)",
        path.display(),
        file.workloads.len()
    );
    Ok(())
}

fn frontend_limits(args: &RunArgs) -> anyhow::Result<RequestLimits> {
    Ok(RequestLimits {
        max_request_header_bytes: usize::try_from(args.max_request_headers.as_u64())
            .context("--max-request-headers is too large")?,
        max_request_body_bytes: usize::try_from(args.max_request_body.as_u64())
            .context("--max-request-body is too large")?,
    })
}

fn runtime(args: &RunArgs) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        max_memory_bytes: args.memory_limit.as_u64(),
        memory_budget_bytes: Some(args.memory_budget.as_u64()),
        ..RuntimeConfig::default()
    })?)
}

/// The policy the command-line flags describe (the embedded default and
/// `--workload` bindings): gRPC per `--grpc`/`--grpc-outbound`, egress to
/// the `--egress-allow` authorities only.
fn cli_policy(args: &RunArgs) -> anyhow::Result<Arc<WorkloadPolicy>> {
    let egress = EgressConfig {
        allow: args
            .egress_allow
            .iter()
            .map(|authority| EgressRuleConfig {
                authority: authority.clone(),
                ports: None,
                methods: None,
                schemes: None,
                allow_ip_literal: false,
            })
            .collect(),
    };
    let egress = EgressRules::from_config(&egress).map_err(|errors| {
        let problems: Vec<String> = errors
            .errors
            .iter()
            .map(|error| format!("--egress-allow: {}", error.message))
            .collect();
        anyhow::anyhow!(problems.join("; "))
    })?;
    Ok(Arc::new(WorkloadPolicy {
        grpc: GrpcFlags {
            serve: args.grpc,
            outbound: args.grpc_outbound,
        },
        egress,
        limits: Limits {
            max_request_body_bytes: args.max_request_body.as_u64(),
            max_request_header_bytes: args.max_request_headers.as_u64(),
            request_timeout: args.request_timeout,
            max_request_timeout: args.max_request_timeout,
            max_concurrent_requests: u32::try_from(args.max_concurrent_requests)
                .context("--max-concurrent-requests is too large")?,
            memory_bytes: args.memory_limit.as_u64(),
            memory_budget_bytes: None,
        },
        ..WorkloadPolicy::default()
    }))
}

/// The `--workload CLUSTER=PATH` flags as workload entries with the
/// command-line policy.
fn flag_workloads(args: &RunArgs) -> anyhow::Result<Vec<WorkloadEntry>> {
    let policy = cli_policy(args)?;
    Ok(args
        .workloads
        .iter()
        .map(|(cluster, path)| WorkloadEntry {
            name: cluster.clone(),
            component: path.clone(),
            clusters: vec![cluster.clone()],
            hosts: Vec::new(),
            policy: policy.clone(),
            config: args.config_vars.iter().cloned().collect(),
            principal: default_principal(cluster),
        })
        .collect())
}

async fn load(runtime: &Runtime, path: &Path) -> anyhow::Result<Arc<ComponentImage>> {
    let runtime = runtime.clone();
    let path = path.to_owned();
    let image = tokio::task::spawn_blocking(move || ComponentImage::load(&runtime, &path))
        .await
        .context("component compilation panicked")??;
    Ok(Arc::new(image))
}

/// Compiles each workload's component and binds it to `handler`.
async fn bind_workloads(
    args: &RunArgs,
    runtime: &Runtime,
    handler: Arc<dyn HostHandler>,
    workloads: Vec<WorkloadEntry>,
) -> anyhow::Result<()> {
    for workload in workloads {
        let image = load(runtime, &workload.component).await?;
        handler.clone().on_workload_resolved(ResolvedWorkload {
            id: WorkloadId::new(&workload.name)?,
            image,
            settings: WorkloadSettings {
                max_instance_reuse: args.max_instance_reuse,
                max_instance_concurrency: args.max_instance_concurrency as usize,
                config: Arc::new(workload.config),
                ..WorkloadSettings::from_limits(&workload.policy.limits)
            },
            hosts: workload.hosts,
            clusters: workload.clusters,
            policy: workload.policy,
            principal: workload.principal.into(),
        })?;
    }
    Ok(())
}

/// The embedded default: one listener, every request to one component.
async fn run_embedded(
    args: &RunArgs,
    component: &Path,
    open_files: Option<u64>,
) -> anyhow::Result<()> {
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    let name = workload_name(component);
    let workload = WorkloadEntry {
        principal: default_principal(&name),
        name,
        component: component.to_owned(),
        clusters: Vec::new(),
        hosts: Vec::new(),
        policy: cli_policy(args)?,
        config: args.config_vars.iter().cloned().collect(),
    };
    let listener = RouterListener {
        listen: args.listen,
        tls,
        admin: args.admin,
        open_files,
    };
    run_router(args, DevRouter::new(), listener, vec![workload]).await
}

async fn run_config_file(
    args: &RunArgs,
    path: &Path,
    open_files: Option<u64>,
) -> anyhow::Result<()> {
    let file = MeshConfigFile::load(path)?;
    let admin = file.admin.or(args.admin);
    match &file.bootstrap {
        Some(bootstrap) => {
            let mesh = MeshRun {
                workloads: file.workloads,
                admin,
                egress_listener: file.egress_listener.clone(),
                open_files,
            };
            run_mesh(args, bootstrap, mesh).await
        }
        None => {
            let listener = RouterListener {
                listen: file.listen.context("the config file sets no `listen`")?,
                tls: file.tls.clone(),
                admin,
                open_files,
            };
            run_router(args, HostHeaderRouter::new(), listener, file.workloads).await
        }
    }
}

/// Where a router handler listens.
struct RouterListener {
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    admin: Option<SocketAddr>,
    open_files: Option<u64>,
}

/// A [`RouterHandler`] on one listener.
async fn run_router<R: Router>(
    args: &RunArgs,
    router: R,
    listener: RouterListener,
    workloads: Vec<WorkloadEntry>,
) -> anyhow::Result<()> {
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let global = global_connections(args, listener.open_files, None);
    let handler = Arc::new(RouterHandler::new(
        router,
        runtime.clone(),
        metrics.clone(),
        RouterHandlerConfig {
            frontend: FrontEndConfig {
                listen: listener.listen,
                tls: listener.tls.map(|(cert, key)| TlsFiles { cert, key }),
                limits: frontend_limits(args)?,
                connections: ConnectionSettings {
                    global: global.clone(),
                    ..ConnectionSettings::default()
                },
                drain_time: args.drain_time,
            },
        },
    ));
    // A taken port is reported before the (possibly slow) compilation.
    handler.bind()?;
    bind_workloads(args, &runtime, handler.clone(), workloads).await?;
    handler.clone().start().await?;
    log_connection_limits(listener.open_files, global.as_deref());
    serve_until_signal(args, handler.as_ref(), metrics, listener.admin).await
}

/// What the mesh handler serves besides its bootstrap.
struct MeshRun {
    workloads: Vec<WorkloadEntry>,
    admin: Option<SocketAddr>,
    egress_listener: Option<String>,
    open_files: Option<u64>,
}

/// The mesh handler on an Envoy bootstrap (and its control plane).
async fn run_mesh(args: &RunArgs, bootstrap_path: &Path, mesh: MeshRun) -> anyhow::Result<()> {
    let MeshRun {
        workloads,
        admin,
        egress_listener,
        open_files,
    } = mesh;
    let bootstrap = Bootstrap::load(bootstrap_path)?;
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(ConfigStore::new(bootstrap.static_config.clone()));
    let limits = &bootstrap.connection_limits;
    let global = global_connections(args, open_files, limits.global);
    let handler = Arc::new(MeshHandler::new(
        store.clone(),
        runtime.clone(),
        metrics.clone(),
        MeshHandlerConfig {
            listener_drain: args.drain_timeout,
            drain_time: args.drain_time,
            egress_listener,
            global_connections: global.clone(),
            listener_connection_limits: limits.per_listener.clone(),
        },
    ));
    bind_workloads(args, &runtime, handler.clone(), workloads).await?;
    handler.clone().start().await?;
    log_connection_limits(open_files, global.as_deref());
    let ads = bootstrap.ads.as_ref().map(|source| {
        tracing::info!(cluster = %source.cluster_name, endpoint = %source.endpoint, "connecting to the ADS control plane");
        AdsClient::spawn(AdsClientConfig::from_source(source, bootstrap.node.clone()), store.clone())
    });
    let served = serve_until_signal(args, handler.as_ref(), metrics, admin).await;
    if let Some(ads) = ads {
        ads.shutdown().await;
    }
    served
}

/// Announces the bound addresses, serves the admin endpoint, waits for
/// SIGTERM or ctrl-c and drains.
async fn serve_until_signal(
    args: &RunArgs,
    handler: &dyn HostHandler,
    metrics: Arc<Metrics>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in handler.bound_addrs() {
        eprintln!("Serving HTTP on {scheme}://{addr}/");
    }
    if let Some(admin) = admin {
        let addr = crate::admin::serve(admin, metrics)
            .await
            .with_context(|| format!("cannot listen on {admin} for the admin endpoint"))?;
        eprintln!("Admin on http://{addr}/");
    }
    shutdown_signal().await?;
    tracing::info!(drain_time = ?args.drain_time, drain_timeout = ?args.drain_timeout, "shutting down");
    handler.stop(args.drain_timeout).await;
    Ok(())
}

/// The SPIFFE id of a workload named on the command line: Istio's default trust domain and
/// namespace, the workload's name as its service account.
fn default_principal(name: &str) -> String {
    spiffe_id(DEFAULT_TRUST_DOMAIN, DEFAULT_NAMESPACE, name)
}

/// The workload id of the embedded default: the component's file stem.
fn workload_name(component: &Path) -> String {
    component
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".to_owned())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for ctrl-c")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_connection_cap_leaves_a_tenth_of_the_files_or_at_least_32() {
        assert_eq!(default_max_connections(1024), 922);
        assert_eq!(default_max_connections(100), 68);
        assert_eq!(default_max_connections(1_048_576), 943_719);
        assert_eq!(default_max_connections(10), 1);
    }
}
