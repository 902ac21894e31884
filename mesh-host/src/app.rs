//! Wires the runtime, the handler and the signals together for the binary.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use mesh_policies::grpc::GrpcFlags;
use mesh_xds::ads::{AdsClient, AdsClientConfig};
use mesh_xds::bootstrap::Bootstrap;
use mesh_xds::store::ConfigStore;
use tracing_subscriber::EnvFilter;

use crate::cli::{RunArgs, ValidateArgs};
use crate::frontend::{FrontEndConfig, RequestLimits, TlsFiles};
use crate::handler::{
    DevRouter, HostHandler, ResolvedWorkload, RouterHandler, RouterHandlerConfig, WorkloadId,
};
use crate::mesh::{MeshHandler, MeshHandlerConfig};
use crate::metrics::Metrics;
use crate::runtime::{ComponentImage, Runtime, RuntimeConfig, WorkloadSettings, default_cache_dir};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `mesh-host run`: the embedded default, or the mesh handler with a bootstrap.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        match (&args.component, &args.bootstrap) {
            (_, Some(bootstrap)) => run_mesh(&args, bootstrap).await,
            (Some(component), None) => run_embedded(&args, component).await,
            (None, None) => anyhow::bail!("give a COMPONENT.wasm, or --bootstrap with --workload"),
        }
    })
}

/// `mesh-host validate`: parse and translate a bootstrap, report the result.
pub fn validate(args: &ValidateArgs) -> anyhow::Result<()> {
    let bootstrap = Bootstrap::load(&args.bootstrap)?;
    let config = &bootstrap.static_config;
    println!(
        "{}: OK ({} listeners, {} clusters{})",
        args.bootstrap.display(),
        config.listeners.len(),
        config.clusters.len(),
        if bootstrap.ads.is_some() { ", ADS" } else { "" }
    );
    Ok(())
}

fn runtime(args: &RunArgs) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        max_memory_bytes: args.memory_limit.as_u64(),
        ..RuntimeConfig::default()
    })?)
}

async fn load(runtime: &Runtime, path: &Path) -> anyhow::Result<Arc<ComponentImage>> {
    let runtime = runtime.clone();
    let path = path.to_owned();
    let image = tokio::task::spawn_blocking(move || ComponentImage::load(&runtime, &path))
        .await
        .context("component compilation panicked")??;
    Ok(Arc::new(image))
}

fn workload_settings(args: &RunArgs) -> anyhow::Result<WorkloadSettings> {
    Ok(WorkloadSettings {
        max_instance_reuse: args.max_instance_reuse,
        memory_bytes: usize::try_from(args.memory_limit.as_u64())
            .context("--memory-limit is too large")?,
        max_concurrent_requests: args.max_concurrent_requests,
        max_request_timeout: args.max_request_timeout,
        ..WorkloadSettings::default()
    })
}

fn grpc_flags(args: &RunArgs) -> GrpcFlags {
    GrpcFlags {
        serve: args.grpc,
        outbound: false,
    }
}

async fn run_embedded(args: &RunArgs, component: &Path) -> anyhow::Result<()> {
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let handler = Arc::new(RouterHandler::new(
        DevRouter::new(),
        runtime.clone(),
        metrics.clone(),
        RouterHandlerConfig {
            frontend: FrontEndConfig {
                listen: args.listen,
                tls: args
                    .tls_cert
                    .clone()
                    .zip(args.tls_key.clone())
                    .map(|(cert, key)| TlsFiles { cert, key }),
                limits: RequestLimits {
                    max_request_header_bytes: usize::try_from(args.max_request_headers.as_u64())
                        .context("--max-request-headers is too large")?,
                    max_request_body_bytes: usize::try_from(args.max_request_body.as_u64())
                        .context("--max-request-body is too large")?,
                },
            },
            request_timeout: args.request_timeout,
            max_request_timeout: args.max_request_timeout,
        },
    ));
    // A taken port is reported before the (possibly slow) compilation.
    handler.bind()?;
    let image = load(&runtime, component).await?;
    handler.clone().on_workload_resolved(ResolvedWorkload {
        id: WorkloadId::new(&workload_name(component))?,
        image,
        settings: workload_settings(args)?,
        hosts: Vec::new(),
        clusters: Vec::new(),
        grpc: grpc_flags(args),
    })?;
    handler.clone().start().await?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    for addr in handler.bound_addrs() {
        eprintln!("Serving HTTP on {scheme}://{addr}/");
    }
    serve_admin(args, metrics).await?;
    shutdown_signal().await?;
    tracing::info!(drain = ?args.drain_timeout, "shutting down");
    handler.stop(args.drain_timeout).await;
    Ok(())
}

async fn run_mesh(args: &RunArgs, bootstrap_path: &Path) -> anyhow::Result<()> {
    let bootstrap = Bootstrap::load(bootstrap_path)?;
    let runtime = runtime(args)?;
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(ConfigStore::new(bootstrap.static_config.clone()));
    let handler = Arc::new(MeshHandler::new(
        store.clone(),
        runtime.clone(),
        metrics.clone(),
        MeshHandlerConfig {
            max_request_timeout: args.max_request_timeout,
            listener_drain: args.drain_timeout,
        },
    ));
    for (cluster, path) in &args.workloads {
        let image = load(&runtime, path).await?;
        handler.clone().on_workload_resolved(ResolvedWorkload {
            id: WorkloadId::new(cluster)?,
            image,
            settings: workload_settings(args)?,
            hosts: Vec::new(),
            clusters: vec![cluster.clone()],
            grpc: grpc_flags(args),
        })?;
    }
    handler.clone().start().await?;
    for addr in handler.bound_addrs() {
        eprintln!("Serving HTTP on http://{addr}/");
    }
    let ads = bootstrap.ads.as_ref().map(|source| {
        tracing::info!(cluster = %source.cluster_name, endpoint = %source.endpoint, "connecting to the ADS control plane");
        AdsClient::spawn(AdsClientConfig::from_source(source, bootstrap.node.clone()), store.clone())
    });
    serve_admin(args, metrics).await?;
    shutdown_signal().await?;
    tracing::info!(drain = ?args.drain_timeout, "shutting down");
    if let Some(ads) = ads {
        ads.shutdown().await;
    }
    handler.stop(args.drain_timeout).await;
    Ok(())
}

async fn serve_admin(args: &RunArgs, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    if let Some(admin) = args.admin {
        let addr = crate::admin::serve(admin, metrics)
            .await
            .with_context(|| format!("cannot listen on {admin} for the admin endpoint"))?;
        eprintln!("Admin on http://{addr}/");
    }
    Ok(())
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
