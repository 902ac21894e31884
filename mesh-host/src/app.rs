//! Wires the runtime, the handler and the signals together for the binary.

use std::sync::Arc;

use anyhow::Context;
use mesh_policies::grpc::GrpcFlags;
use tracing_subscriber::EnvFilter;

use crate::cli::RunArgs;
use crate::frontend::{FrontEndConfig, RequestLimits, TlsFiles};
use crate::handler::{
    DevRouter, HostHandler, ResolvedWorkload, RouterHandler, RouterHandlerConfig, WorkloadId,
};
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

/// `mesh-host run`: the embedded default, one component behind one listener.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let memory_bytes =
        usize::try_from(args.memory_limit.as_u64()).context("--memory-limit is too large")?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        },
        max_memory_bytes: args.memory_limit.as_u64(),
        ..RuntimeConfig::default()
    })?;
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
    handler.bind()?;
    let image = {
        let runtime = runtime.clone();
        let path = args.component.clone();
        tokio::task::spawn_blocking(move || ComponentImage::load(&runtime, &path))
            .await
            .context("component compilation panicked")??
    };

    let id = WorkloadId::new(&workload_name(&args.component))?;
    handler.clone().on_workload_resolved(ResolvedWorkload {
        id,
        image: Arc::new(image),
        settings: WorkloadSettings {
            max_instance_reuse: args.max_instance_reuse,
            memory_bytes,
            max_concurrent_requests: args.max_concurrent_requests,
            max_request_timeout: args.max_request_timeout,
            ..WorkloadSettings::default()
        },
        hosts: Vec::new(),
        grpc: GrpcFlags {
            serve: args.grpc,
            outbound: false,
        },
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
    if let Some(admin) = args.admin {
        let addr = crate::admin::serve(admin, metrics)
            .await
            .with_context(|| format!("cannot listen on {admin} for the admin endpoint"))?;
        eprintln!("Admin on http://{addr}/");
    }

    shutdown_signal().await?;
    tracing::info!(drain = ?args.drain_timeout, "shutting down");
    handler.stop(args.drain_timeout).await;
    Ok(())
}

/// The workload id of the embedded default: the component's file stem.
fn workload_name(component: &std::path::Path) -> String {
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
