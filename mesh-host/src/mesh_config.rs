//! The mesh config file (`mesh-host run --config mesh.yaml`): what an Envoy
//! bootstrap cannot say — which components serve which clusters, and each
//! workload's policy (gRPC flags, egress rules, authorization, limits).
//!
//! ```yaml
//! bootstrap: envoy.yaml          # optional Envoy v3 bootstrap, relative to this file
//! listen: 0.0.0.0:8080           # without a bootstrap: one listener, routing by Host
//! admin: 127.0.0.1:9901          # optional admin endpoint
//! workloads:
//! - name: greeter
//!   component: greeter.wasm      # relative to this file
//!   clusters: [greeter]          # xDS clusters it serves (with a bootstrap)
//!   hosts: [greeter.local]       # Host names it answers (without a bootstrap)
//!   policy:
//!     grpc: { serve: true, outbound: false }
//!     limits: { request_timeout: 10s, memory: 64MiB }
//!     tracing: { inject_traceparent: false }   # default true: the host writes traceparent
//!   config: { greeting: Hello }  # what the component reads through wasi:config/store
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_policies::{WorkloadPolicy, WorkloadPolicyConfig};
use serde::Deserialize;
use thiserror::Error;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeshConfig {
    bootstrap: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    tls: Option<RawTls>,
    egress_listener: Option<String>,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    workloads: Vec<RawWorkload>,
}

/// Where workload identities live, as Istio names them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIdentity {
    trust_domain: String,
    namespace: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The namespace of workloads whose config names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The SPIFFE id of a workload, as Istio issues it.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: String,
    component: PathBuf,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    policy: WorkloadPolicyConfig,
    #[serde(default)]
    config: BTreeMap<String, String>,
    service_account: Option<String>,
}

/// A validated mesh config file; paths are resolved against its directory.
#[derive(Debug)]
pub struct MeshConfigFile {
    /// The Envoy bootstrap, if any.
    pub bootstrap: Option<PathBuf>,
    /// The listener of the Host-routing handler used without a bootstrap.
    pub listen: Option<SocketAddr>,
    /// The admin endpoint.
    pub admin: Option<SocketAddr>,
    /// Certificate and key for `listen`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The bootstrap listener that routes outbound requests (default: the
    /// one with `traffic_direction: OUTBOUND`).
    pub egress_listener: Option<String>,
    /// The workloads.
    pub workloads: Vec<WorkloadEntry>,
}

/// One workload of the file.
#[derive(Debug)]
pub struct WorkloadEntry {
    /// Its id.
    pub name: String,
    /// The component file.
    pub component: PathBuf,
    /// xDS clusters it serves.
    pub clusters: Vec<String>,
    /// Host names it answers.
    pub hosts: Vec<String>,
    /// Its validated policy.
    pub policy: Arc<WorkloadPolicy>,
    /// The values its component reads through `wasi:config/store`.
    pub config: BTreeMap<String, String>,
    /// Its SPIFFE id, the principal of its requests to other local workloads.
    pub principal: String,
}

/// Why the file was rejected; every message names the file and the path
/// inside it.
#[derive(Debug, Error)]
pub enum MeshConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {cause}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The YAML does not have the expected shape.
    #[error("{file}: {path}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// Where in the file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Values that parse but do not validate, all of them.
    #[error("{file}: {}", .problems.join("; "))]
    Invalid {
        /// The file.
        file: String,
        /// Each problem with its path.
        problems: Vec<String>,
    },
}

impl MeshConfigFile {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, MeshConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| MeshConfigError::Read {
            file: file.clone(),
            cause,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base)
    }

    /// Parses and validates `text`; `file` names it in errors and relative
    /// paths are resolved against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, MeshConfigError> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let raw: RawMeshConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                MeshConfigError::Syntax {
                    file: file.to_owned(),
                    path: error.path().to_string(),
                    message: error.inner().to_string(),
                }
            })?;
        let mut problems = Vec::new();
        if raw.bootstrap.is_none() && raw.listen.is_none() {
            problems.push(
                "set `bootstrap` (an Envoy v3 bootstrap) or `listen` (one Host-routing listener)"
                    .to_owned(),
            );
        }
        if raw.bootstrap.is_none() && raw.egress_listener.is_some() {
            problems
                .push("`egress_listener` names a listener of the `bootstrap`; set one".to_owned());
        }
        if raw.bootstrap.is_some() && (raw.listen.is_some() || raw.tls.is_some()) {
            problems.push(
                "`listen` and `tls` apply without a bootstrap; with one, listeners come from it"
                    .to_owned(),
            );
        }
        let mut workloads = Vec::new();
        for (index, workload) in raw.workloads.into_iter().enumerate() {
            if raw.bootstrap.is_some() && workload.clusters.is_empty() {
                problems.push(format!(
                    "workloads[{index}].clusters: name the xDS clusters `{}` serves",
                    workload.name
                ));
            }
            if raw.bootstrap.is_none() && workload.hosts.is_empty() {
                problems.push(format!(
                    "workloads[{index}].hosts: name the Host names `{}` answers",
                    workload.name
                ));
            }
            if workload.config.contains_key("") {
                problems.push(format!("workloads[{index}].config: keys must not be empty"));
            }
            let principal = spiffe_id(
                &raw.identity.trust_domain,
                &raw.identity.namespace,
                workload
                    .service_account
                    .as_deref()
                    .unwrap_or(&workload.name),
            );
            match WorkloadPolicy::from_config(&workload.policy) {
                Ok(policy) => workloads.push(WorkloadEntry {
                    principal,
                    name: workload.name,
                    component: base.join(workload.component),
                    clusters: workload.clusters,
                    hosts: workload.hosts,
                    policy: Arc::new(policy),
                    config: workload.config,
                }),
                Err(errors) => problems.extend(errors.errors.iter().map(|error| {
                    format!(
                        "workloads[{index}].policy.{}: {}",
                        error.path, error.message
                    )
                })),
            }
        }
        if !problems.is_empty() {
            return Err(MeshConfigError::Invalid {
                file: file.to_owned(),
                problems,
            });
        }
        Ok(Self {
            bootstrap: raw.bootstrap.map(|bootstrap| base.join(bootstrap)),
            listen: raw.listen,
            admin: raw.admin,
            tls: raw.tls.map(|tls| (base.join(tls.cert), base.join(tls.key))),
            egress_listener: raw.egress_listener,
            workloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "
bootstrap: envoy.yaml
workloads:
- name: greeter
  component: greeter.wasm
  clusters: [greeter]
  policy:
    grpc: { serve: true, outbound: true }
    limits: { request_timeout: 10s, memory: 64MiB }
";

    #[test]
    fn paths_are_relative_to_the_file_and_policies_are_compiled() {
        let config =
            MeshConfigFile::parse(EXAMPLE, "mesh.yaml", Path::new("/etc/mesh")).expect("valid");
        assert_eq!(
            config.bootstrap,
            Some(PathBuf::from("/etc/mesh/envoy.yaml"))
        );
        let greeter = &config.workloads[0];
        assert_eq!(greeter.component, PathBuf::from("/etc/mesh/greeter.wasm"));
        assert!(greeter.policy.grpc.serve && greeter.policy.grpc.outbound);
        assert_eq!(greeter.policy.limits.memory_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_name_the_file_and_the_path() {
        let text = EXAMPLE.replace("serve: true", "serv: true");
        let error = MeshConfigFile::parse(&text, "mesh.yaml", Path::new(".")).expect_err("typo");
        let message = error.to_string();
        assert!(
            message.starts_with("mesh.yaml: workloads[0].policy.grpc"),
            "{message}"
        );
        assert!(message.contains("serv"), "{message}");
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_path() {
        let text = EXAMPLE
            .replace("request_timeout: 10s", "request_timeout: soon")
            .replace("clusters: [greeter]", "clusters: []");
        let message = MeshConfigFile::parse(&text, "mesh.yaml", Path::new("."))
            .expect_err("bad")
            .to_string();
        assert!(message.contains("workloads[0].clusters"), "{message}");
        assert!(
            message.contains("workloads[0].policy.limits.request_timeout"),
            "{message}"
        );
    }
}
