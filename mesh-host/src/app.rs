//! Wires the runtime, the handlers and the signals together for the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use mesh_policies::WorkloadPolicy;
use mesh_policies::egress::{EgressConfig, EgressRuleConfig, EgressRules};
use mesh_policies::grpc::GrpcFlags;
use mesh_policies::limits::Limits;
use mesh_xds::ads::{AdsClient, AdsClientConfig};
use mesh_xds::bootstrap::{Bootstrap, NodeIdentity};
use mesh_xds::store::ConfigStore;
use tracing_subscriber::{EnvFilter, reload};

use crate::admin::{Admin, LogLevels, MeshView};

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
use crate::metrics::{ClusterLive, LiveStats, Metrics, XdsUpdates};
use crate::runtime::{ComponentImage, Runtime, RuntimeConfig, WorkloadSettings, default_cache_dir};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); the admin's `/logging` changes
/// the filter through the returned levels. Colours only on a terminal, so that a log file or a
/// supervisor's capture reads `limit=1024` as written.
pub fn init_logging() -> LogLevels {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let initial = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directive| EnvFilter::builder().parse(directive).is_ok())
        .unwrap_or_else(|| "info".to_owned());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&initial));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .init();
    LogLevels::new(initial, move |filter| handle.reload(filter))
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
pub fn run(args: RunArgs, logging: LogLevels) -> anyhow::Result<()> {
    let open_files = raise_open_file_limit();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let host = Host {
        args: &args,
        logging,
        started: SystemTime::now(),
        open_files,
    };
    tokio.block_on(async {
        if let Some(config) = &args.config {
            return run_config_file(&host, config).await;
        }
        match (&args.component, &args.bootstrap) {
            (_, Some(bootstrap)) => {
                let workloads = flag_workloads(&args)?;
                let egress_listener = args.egress_listener.clone();
                run_mesh(&host, bootstrap, workloads, args.admin, egress_listener).await
            }
            (Some(component), None) => run_embedded(&host, component).await,
            (None, None) => {
                anyhow::bail!("give a COMPONENT.wasm, --bootstrap with --workload, or --config")
            }
        }
    })
}

/// What every way of running the host shares besides its flags.
struct Host<'a> {
    args: &'a RunArgs,
    logging: LogLevels,
    started: SystemTime,
    /// The open-file limit after raising it, if it could be read.
    open_files: Option<u64>,
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

/// Compiles each workload's component and binds it to `handler`; returns each workload as
/// `/config_dump` shows it.
async fn bind_workloads(
    args: &RunArgs,
    runtime: &Runtime,
    handler: Arc<dyn HostHandler>,
    workloads: Vec<WorkloadEntry>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut described = Vec::new();
    for workload in workloads {
        let image = load(runtime, &workload.component).await?;
        described.push(describe_workload(&workload, &image));
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
    Ok(described)
}

/// A workload in the `/config_dump` workloads section: its component (path, digest, kind),
/// the clusters it serves and its policy.
fn describe_workload(workload: &WorkloadEntry, image: &ComponentImage) -> serde_json::Value {
    let policy = &workload.policy;
    let limits = &policy.limits;
    serde_json::json!({
        "name": workload.name,
        "component": image.path().display().to_string(),
        "digest": image.digest(),
        "kind": format!("{:?}", image.kind()),
        "clusters": workload.clusters,
        "hosts": workload.hosts,
        "principal": workload.principal,
        "policy": {
            "grpc": { "serve": policy.grpc.serve, "outbound": policy.grpc.outbound },
            "egress_rules": policy.egress.len(),
            "rbac": policy.rbac.is_some(),
            "rate_limit": policy.rate_limit.is_some(),
            "limits": {
                "max_request_body_bytes": limits.max_request_body_bytes,
                "max_request_header_bytes": limits.max_request_header_bytes,
                "request_timeout": humantime::format_duration(limits.request_timeout).to_string(),
                "max_concurrent_requests": limits.max_concurrent_requests,
                "memory_bytes": limits.memory_bytes,
            },
        },
    })
}

/// The embedded default: one listener, every request to one component.
async fn run_embedded(host: &Host<'_>, component: &Path) -> anyhow::Result<()> {
    let args = host.args;
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
    };
    run_router(host, DevRouter::new(), listener, vec![workload]).await
}

async fn run_config_file(host: &Host<'_>, path: &Path) -> anyhow::Result<()> {
    let file = MeshConfigFile::load(path)?;
    let admin = file.admin.or(host.args.admin);
    match &file.bootstrap {
        Some(bootstrap) => {
            let egress_listener = file.egress_listener.clone();
            run_mesh(host, bootstrap, file.workloads, admin, egress_listener).await
        }
        None => {
            let listener = RouterListener {
                listen: file.listen.context("the config file sets no `listen`")?,
                tls: file.tls.clone(),
                admin,
            };
            run_router(host, HostHeaderRouter::new(), listener, file.workloads).await
        }
    }
}

/// Where a router handler listens.
struct RouterListener {
    listen: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    admin: Option<SocketAddr>,
}

/// A [`RouterHandler`] on one listener.
async fn run_router<R: Router>(
    host: &Host<'_>,
    router: R,
    listener: RouterListener,
    workloads: Vec<WorkloadEntry>,
) -> anyhow::Result<()> {
    let args = host.args;
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let global = global_connections(args, host.open_files, None);
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
    let workloads = bind_workloads(args, &runtime, handler.clone(), workloads).await?;
    handler.clone().start().await?;
    let admin = listener.admin.map(|addr| {
        let state = Admin {
            metrics,
            mesh: None,
            workloads,
            logging: host.logging.clone(),
            node: NodeIdentity::default(),
            started: host.started,
        };
        (addr, Arc::new(state))
    });
    log_connection_limits(host.open_files, global.as_deref());
    serve_until_signal(args, handler.as_ref(), admin).await
}

/// The mesh handler on an Envoy bootstrap (and its control plane).
async fn run_mesh(
    host: &Host<'_>,
    bootstrap_path: &Path,
    workloads: Vec<WorkloadEntry>,
    admin: Option<SocketAddr>,
    egress_listener: Option<String>,
) -> anyhow::Result<()> {
    let args = host.args;
    let bootstrap = Bootstrap::load(bootstrap_path)?;
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(ConfigStore::from_bootstrap(&bootstrap));
    let limits = &bootstrap.connection_limits;
    let global = global_connections(args, host.open_files, limits.global);
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
    let workloads = bind_workloads(args, &runtime, handler.clone(), workloads).await?;
    handler.clone().start().await?;
    metrics.set_live(Arc::new(LiveMesh {
        handler: handler.clone(),
        store: store.clone(),
    }));
    let admin = admin.or(bootstrap.admin).map(|addr| {
        let state = Admin {
            metrics: metrics.clone(),
            mesh: Some(MeshView {
                handler: handler.clone(),
                store: store.clone(),
                ads: bootstrap.ads.is_some(),
            }),
            workloads,
            logging: host.logging.clone(),
            node: bootstrap.node.clone(),
            started: host.started,
        };
        (addr, Arc::new(state))
    });
    log_connection_limits(host.open_files, global.as_deref());
    let ads = bootstrap.ads.as_ref().map(|source| {
        tracing::info!(cluster = %source.cluster_name, endpoint = %source.endpoint, "connecting to the ADS control plane");
        AdsClient::spawn(AdsClientConfig::from_source(source, bootstrap.node.clone()), store.clone())
    });
    let served = serve_until_signal(args, handler.as_ref(), admin).await;
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
    admin: Option<(SocketAddr, Arc<Admin>)>,
) -> anyhow::Result<()> {
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in handler.bound_addrs() {
        eprintln!("Serving HTTP on {scheme}://{addr}/");
    }
    if let Some((admin, state)) = admin {
        let addr = crate::admin::serve(admin, state)
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

/// The mesh handler's clusters and the store's xDS update counts, read at every scrape.
struct LiveMesh {
    handler: Arc<MeshHandler>,
    store: Arc<ConfigStore>,
}

impl LiveStats for LiveMesh {
    fn clusters(&self) -> Vec<ClusterLive> {
        self.handler
            .clusters()
            .into_iter()
            .map(|cluster| {
                let ejected = cluster.hosts.iter().filter(|h| h.ejected).count() as u64;
                let healthy = cluster
                    .hosts
                    .iter()
                    .filter(|h| !h.ejected && !h.failed_active_hc && h.health.is_routable())
                    .count() as u64;
                ClusterLive {
                    membership_total: cluster.hosts.len() as u64,
                    membership_healthy: healthy,
                    ejections_active: ejected,
                    cx_active: cluster.cx_active,
                    rq_active: cluster.rq_active,
                    name: cluster.name,
                }
            })
            .collect()
    }

    fn xds_updates(&self) -> Vec<XdsUpdates> {
        self.store
            .update_counts()
            .into_iter()
            .map(|(kind, counts)| XdsUpdates {
                scope: kind.stat_scope(),
                attempt: counts.attempt,
                success: counts.success,
                rejected: counts.rejected,
            })
            .collect()
    }
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
