//! mesh-host as a child process, with its listening addresses read from its
//! stderr and its log kept for assertions.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long mesh-host may take to compile a component and start listening
/// (a cold compile of a debug build on a 2-core machine is slow).
const STARTUP: Duration = Duration::from_secs(120);

/// A running `mesh-host` process, killed on drop.
pub struct MeshHost {
    child: Child,
    /// The data-plane address.
    pub addr: SocketAddr,
    /// The admin address, when `--admin` was given.
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl MeshHost {
    /// Starts `mesh-host run <component> --listen 127.0.0.1:0 <extra>` and
    /// waits until it serves.
    pub fn run(component: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["run".to_owned(), component.display().to_string()];
        args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        Self::spawn(&args)
    }

    /// Starts `mesh-host <args>` and waits for its "Serving HTTP on" line.
    pub fn spawn(args: &[String]) -> Self {
        Self::spawn_command(Command::new(crate::mesh_host_bin()), args)
    }

    /// Starts `mesh-host <args>` under `prlimit` with this open-file limit (soft and
    /// hard), and waits for it to serve.
    pub fn spawn_with_open_files(open_files: u64, args: &[String]) -> Self {
        let prlimit = crate::peers::require("prlimit")
            .expect("prlimit (util-linux) is needed to limit open files");
        let mut command = Command::new(prlimit);
        command
            .arg(format!("--nofile={open_files}:{open_files}"))
            .arg("--")
            .arg(crate::mesh_host_bin());
        Self::spawn_command(command, args)
    }

    fn spawn_command(mut command: Command, args: &[String]) -> Self {
        let mut child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mesh-host");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[mesh-host] {line}");
                    log.lock().expect("log lock").push(line.clone());
                    let _ = lines_tx.send(line);
                }
            }
        });
        let deadline = Instant::now() + STARTUP;
        let mut addr = None;
        let mut admin = None;
        let wants_admin = args.iter().any(|arg| arg == "--admin");
        while addr.is_none() || (wants_admin && admin.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = address_after(&line, "Serving HTTP on ") {
                        addr = Some(found);
                    }
                    if let Some(found) = address_after(&line, "Admin on ") {
                        admin = Some(found);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "mesh-host did not start within {STARTUP:?}; log:\n{}",
                        log.lock().expect("log").join("\n")
                    );
                }
            }
        }
        Self {
            child,
            addr: addr.expect("address"),
            admin,
            log,
        }
    }

    /// The process id, for reading its memory use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://<addr>` of the data plane.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything mesh-host has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Waits (up to 10 s) until mesh-host's stderr contains `needle`: its log
    /// is read by another thread, so a line may land just after the response
    /// that caused it.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The value of a counter from the admin endpoint's `/metrics`, summed
    /// over the series whose labels contain `label` (e.g. `workload="hello"`).
    pub async fn metric(&self, name: &str, label: &str) -> u64 {
        let admin = self.admin.expect("mesh-host was started without --admin");
        let (_, _, body) = crate::client::get(&format!("http://{admin}/metrics")).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.lines()
            .filter(|line| line.starts_with(name) && line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|value| value as u64)
            .sum()
    }
}

impl MeshHost {
    /// Waits (up to 30 s) until a counter reaches `at_least`: a way to know
    /// a request is in flight without guessing with sleeps.
    pub async fn wait_for_metric(&self, name: &str, label: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(name, label).await;
            if value >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{{{label}}} stayed at {value}, wanted {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = rest.split("://").nth(1)?;
    rest.trim_end_matches('/').trim().parse().ok()
}

impl Drop for MeshHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
