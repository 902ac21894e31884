//! The Kubernetes manifests under deploy/ against the binary they run: every flag they pass
//! is one `mesh-host run` takes, their ports and probe paths are the ones the host serves,
//! and the ConfigMap's files (and the ADS bootstrap examples) pass `mesh-host validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_host_tests::{Kind, mesh_host_bin, workspace_root};
use serde_yaml::Value;

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("YAML document"))
        .collect()
}

fn kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|document| document["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifests"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn mesh_host(args: &[&str]) -> (bool, String) {
    let output = Command::new(mesh_host_bin())
        .args(args)
        .output()
        .expect("run mesh-host");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn deploy() -> PathBuf {
    workspace_root().join("deploy/kubernetes")
}

#[test]
fn the_deployment_passes_only_flags_ports_and_probe_paths_the_host_has() {
    let manifests = documents(&deploy().join("deployment.yaml"));
    let config = documents(&deploy().join("configmap.yaml"));
    let deployment = kind(&manifests, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let (ok, help) = mesh_host(&["run", "--help"]);
    assert!(ok, "{help}");

    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(text)
        .collect();
    assert_eq!(args[0], "run");
    for flag in args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(
            help.split_whitespace()
                .any(|word| word.trim_end_matches(',') == *flag),
            "{flag} is not a flag of `mesh-host run`:\n{help}"
        );
    }

    // The container's ports are those the ConfigMap's files bind.
    let mesh = config[0]["data"]["mesh.yaml"].as_str().expect("mesh.yaml");
    let mesh: Value = serde_yaml::from_str(mesh).expect("mesh.yaml is YAML");
    let bootstrap = config[0]["data"]["bootstrap.yaml"]
        .as_str()
        .expect("bootstrap.yaml");
    let bootstrap: Value = serde_yaml::from_str(bootstrap).expect("bootstrap.yaml is YAML");
    let admin_port: u64 = text(&mesh["admin"])
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("admin port");
    let listener_port = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
        ["port_value"]
        .as_u64()
        .expect("listener port");
    let port = |name: &str| {
        container["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .find(|port| port["name"] == name)
            .and_then(|port| port["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    assert_eq!(port("admin"), admin_port);
    assert_eq!(port("http"), listener_port);

    // The probes read admin paths the host serves (named in `--admin`'s help).
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "admin", "{probe} asks the admin");
        let path = text(&get["path"]);
        assert!(
            help.contains(path),
            "{probe} path {path} is no admin endpoint:\n{help}"
        );
    }
    assert_eq!(
        text(&container["readinessProbe"]["httpGet"]["path"]),
        "/ready"
    );

    // The drain fits inside the grace period.
    let drain = args
        .iter()
        .position(|arg| *arg == "--drain-timeout")
        .map(|at| {
            args[at + 1]
                .trim_end_matches('s')
                .parse::<u64>()
                .expect("seconds")
        })
        .expect("--drain-timeout");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        drain < grace,
        "drain {drain}s must end before the {grace}s grace period"
    );

    // The ConfigMap is mounted where --config points.
    let config_path = args[args
        .iter()
        .position(|arg| *arg == "--config")
        .expect("--config")
        + 1];
    let mounts = container["volumeMounts"].as_sequence().expect("mounts");
    let config_mount = mounts
        .iter()
        .find(|mount| mount["name"] == "config")
        .expect("config mount");
    assert!(config_path.starts_with(text(&config_mount["mountPath"])));
}

#[test]
fn the_configmap_files_and_bootstrap_examples_pass_validate() {
    let config = documents(&deploy().join("configmap.yaml"));
    let manifests = documents(&deploy().join("deployment.yaml"));
    let container = &kind(&manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let components_mount = container["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|mount| mount["name"] == "components")
        .map(|mount| text(&mount["mountPath"]).to_owned())
        .expect("components mount");

    // The ConfigMap's files as the pod sees them, the components volume holding the test
    // build of each component the config names.
    let dir = tempfile::tempdir().expect("tempdir");
    let components = dir.path().join("components");
    std::fs::create_dir(&components).expect("components dir");
    let data = config[0]["data"].as_mapping().expect("data");
    for (name, contents) in data {
        let contents = text(contents).replace(
            &format!("{components_mount}/"),
            &format!("{}/", components.display()),
        );
        std::fs::write(dir.path().join(text(name)), contents).expect("write config file");
    }
    let mesh: Value = serde_yaml::from_str(text(&config[0]["data"]["mesh.yaml"])).expect("mesh");
    for workload in mesh["workloads"].as_sequence().expect("workloads") {
        let file = Path::new(text(&workload["component"]))
            .file_name()
            .expect("component file name")
            .to_owned();
        let stem = Path::new(&file)
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        std::fs::copy(Kind::P2.component(&stem), components.join(&file)).expect("copy component");
    }
    let config_file = dir.path().join("mesh.yaml");
    let (ok, printed) = mesh_host(&["validate", "--config", &config_file.display().to_string()]);
    assert!(ok, "the ConfigMap does not validate:\n{printed}");
    assert!(printed.contains("OK (1 workloads)"), "{printed}");

    for example in ["istiod.yaml", "envoy-gateway.yaml"] {
        let path = workspace_root().join("deploy/bootstrap").join(example);
        let (ok, printed) = mesh_host(&["validate", "--bootstrap", &path.display().to_string()]);
        assert!(ok, "{example} does not validate:\n{printed}");
        assert!(
            printed.contains(", ADS)"),
            "{example} takes its config over ADS: {printed}"
        );
    }
}
