//! The `mesh-host` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// mesh-host runs WebAssembly components that speak WASI HTTP and is itself a
/// service-mesh data plane.
#[derive(Debug, Parser)]
#[command(name = "mesh-host", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve components. With one COMPONENT and no --bootstrap: the embedded
    /// default (one listener, HTTP/1.1 and HTTP/2 on the same port, every
    /// request to that component, outbound denied). With --bootstrap: the
    /// listeners, routes and clusters of an Envoy v3 bootstrap file (and its
    /// ADS control plane), components bound with --workload.
    Run(Box<RunArgs>),
    /// Check an Envoy v3 bootstrap file or a mesh config file without
    /// serving: exits non-zero with errors that name the file, the field path
    /// and the problem.
    Validate(ValidateArgs),
}

/// Arguments of `mesh-host validate`: one file, of either form.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ValidateArgs {
    /// The Envoy v3 bootstrap file (YAML or JSON) to check.
    #[arg(long, value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,
    /// The mesh config file to check: its workloads and policies, the
    /// components it names, and the bootstrap it points at.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `mesh-host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The WASI HTTP component to serve: exporting
    /// `wasi:http/incoming-handler@0.2` or `wasi:http/handler@0.3`.
    #[arg(
        value_name = "COMPONENT.wasm",
        required_unless_present_any = ["bootstrap", "config"],
        conflicts_with_all = ["bootstrap", "config"]
    )]
    pub component: Option<PathBuf>,

    /// A mesh config file (YAML): an optional Envoy bootstrap, the workloads
    /// with their components and the clusters or hosts they serve, and each
    /// workload's policy (gRPC flags, egress rules, RBAC, limits).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["bootstrap", "workloads"])]
    pub config: Option<PathBuf>,

    /// An Envoy v3 bootstrap file (YAML or JSON): static listeners, routes
    /// and clusters, and optionally `dynamic_resources.ads_config`.
    #[arg(long, value_name = "FILE", requires = "workloads")]
    pub bootstrap: Option<PathBuf>,

    /// With --bootstrap: serve the xDS cluster CLUSTER with the component at
    /// PATH (repeatable).
    #[arg(long = "workload", value_name = "CLUSTER=PATH", value_parser = parse_workload, requires = "bootstrap")]
    pub workloads: Vec<(String, PathBuf)>,

    /// Address to listen on (embedded default only); HTTP/1.1, h2c (prior knowledge) and, with
    /// --tls-cert/--tls-key, TLS with ALPN (h2, http/1.1) share it.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// PEM certificate chain; turns on TLS (requires --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Let the component serve gRPC (policy `grpc.serve`); without it gRPC
    /// requests get PERMISSION_DENIED.
    #[arg(long)]
    pub grpc: bool,

    /// A value the component reads through `wasi:config/store`, as
    /// `KEY=VALUE` (like wasmtime's `-S config-var`); repeatable. With
    /// `--config`, values come from each workload's `config:` instead.
    #[arg(long = "config-var", value_name = "KEY=VALUE", value_parser = parse_config_var, conflicts_with = "config")]
    pub config_vars: Vec<(String, String)>,

    /// Let the `--workload` components make outbound gRPC calls (policy
    /// `grpc.outbound`).
    #[arg(long, requires = "bootstrap")]
    pub grpc_outbound: bool,

    /// An authority the `--workload` components may call (policy
    /// `egress.allow`: `api.example.com`, `*.example.com` or `*`, any port,
    /// method and scheme); repeatable. Without it nothing may leave.
    #[arg(long, value_name = "AUTHORITY", requires = "bootstrap")]
    pub egress_allow: Vec<String>,

    /// The listener whose routes carry components' outbound requests; by
    /// default the bootstrap's listener with `traffic_direction: OUTBOUND`.
    #[arg(long, value_name = "NAME", requires = "bootstrap")]
    pub egress_listener: Option<String>,

    /// Address of Envoy's admin endpoint (/config_dump, /clusters, /listeners, /server_info,
    /// /ready, /logging, /stats, /stats/prometheus); a bare port binds 127.0.0.1. Off when
    /// neither this, the config file nor the bootstrap's admin.address sets one.
    #[arg(long, value_name = "ADDR|PORT", value_parser = parse_admin)]
    pub admin: Option<SocketAddr>,

    /// Deadline of a request that does not carry `grpc-timeout`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Cap on the deadline a client may ask for with `grpc-timeout`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub max_request_timeout: Duration,

    /// Largest linear memory of one component instance.
    #[arg(long, value_name = "SIZE", default_value = "128MiB")]
    pub memory_limit: bytesize::ByteSize,

    /// Linear memory all component instances together may hold; a request
    /// whose instance would need more gets 503 (UNAVAILABLE for gRPC). A
    /// workload's share of it is its policy's `limits.memory_budget`.
    #[arg(long, value_name = "SIZE", default_value = "4GiB")]
    pub memory_budget: bytesize::ByteSize,

    /// Requests one instance serves before it is replaced.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_instance_reuse: usize,

    /// Requests one `wasi:http@0.3` instance handles at once; more go to
    /// further instances (`wasi:http@0.2` instances take one at a time).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instance_concurrency: u32,

    /// Requests in flight at once for the component; more get 503
    /// (UNAVAILABLE for gRPC).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_concurrent_requests: usize,

    /// Largest request body; a larger declared content-length gets 413.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    pub max_request_body: bytesize::ByteSize,

    /// Largest request header section; larger gets 431.
    #[arg(long, value_name = "SIZE", default_value = "64KiB")]
    pub max_request_headers: bytesize::ByteSize,

    /// After SIGTERM or ctrl-c, how long requests are discouraged before the listeners
    /// close (Envoy's --drain-time-s): HTTP/1.1 responses say `connection: close`, HTTP/2
    /// connections get GOAWAY, new connections are still taken, so a request already on
    /// its way is answered.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_time: Duration,

    /// Then, how long requests in flight may take to finish before their connections are
    /// dropped.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Downstream connections held at once across all listeners; more are closed as soon
    /// as they are accepted. Default: the bootstrap's overload manager limit
    /// (global_downstream_max_connections), else 90 % of the open-file limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Where compiled components are cached (default: ~/.cache/mesh-host).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Compile without the on-disk cache.
    #[arg(long)]
    pub no_cache: bool,
}

fn parse_config_var(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "expected KEY=VALUE with a non-empty KEY, got {value:?}"
        )),
    }
}

/// An address, or a port on the loopback interface: the admin is never exposed by accident.
fn parse_admin(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is neither an address (127.0.0.1:9901) nor a port"))
}

fn parse_workload(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((cluster, path)) if !cluster.is_empty() && !path.is_empty() => {
            Ok((cluster.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected CLUSTER=PATH.wasm, got {value:?}")),
    }
}
