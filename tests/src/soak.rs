//! The soak harness: mesh-host on loopback for a set time under mixed HTTP/1.1, h2c and
//! gRPC load, with a configuration pushed over ADS every few seconds, the control plane
//! restarted once, the upstream killed and restarted once, and one route to a component
//! that traps on every request. It counts every request by what it was allowed to end
//! as, and samples mesh-host's resident memory.
//!
//! A request may fail only where a fault explains it: `/trap` answers 500, and
//! `/upstream` may fail while its upstream is down (and for [`RECOVERY`] after it is back).
//! Anything else is an unexpected failure. Memory is compared between the first
//! [`MEMORY_WINDOW`] after the warm-up (a fifth of the run, at least 20 s) and the last.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_xds::test_control_plane::resources::{
    listener, prefix_route, route_config, static_cluster,
};
use mesh_xds::test_control_plane::{Snapshot, TestControlPlane};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::bootstrap::{ads_header, http_listener, xds_cluster};
use crate::envoy::free_port;
use crate::process::MeshHost;
use crate::proto::helloworld::HelloRequest;
use crate::proto::helloworld::greeter_client::GreeterClient;
use crate::{client, component};

const NODE: &str = "soak";
const HELLO: &[u8] = b"Hello from mesh-host!\n";
/// How often a new configuration is pushed.
const PUSH_EVERY: Duration = Duration::from_secs(3);
/// How long the control plane and the upstream stay down.
const OUTAGE: Duration = Duration::from_secs(5);
/// After the upstream is back, how long failures to reach it are still its outage's.
const RECOVERY: Duration = Duration::from_secs(3);
/// HTTP/1.1 `/hello`, `/trap` and `/upstream`, h2c and gRPC.
const LOAD_KINDS: usize = 5;
/// The windows whose memory is compared.
const MEMORY_WINDOW: Duration = Duration::from_secs(10);

/// What one kind of traffic saw.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Requests sent.
    pub requests: u64,
    /// Answered as they should be.
    pub ok: u64,
    /// Failed as a fault explains (the trapping component, the upstream's outage).
    pub expected_failures: u64,
    /// Failed otherwise.
    pub unexpected_failures: u64,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct SoakReport {
    /// How long the load ran.
    pub duration: Duration,
    /// Counts by kind of traffic.
    pub traffic: BTreeMap<&'static str, Counts>,
    /// Configuration versions pushed.
    pub config_pushes: u64,
    /// Control plane restarts.
    pub control_plane_restarts: u32,
    /// Upstream kills and restarts.
    pub upstream_restarts: u32,
    /// Average resident memory over the first window after the warm-up, KiB.
    pub rss_after_warmup_kib: u64,
    /// Average resident memory over the last window, KiB.
    pub rss_end_kib: u64,
    /// The first few unexpected failures, for the report.
    pub unexpected: Vec<String>,
}

impl SoakReport {
    /// Growth of resident memory from after the warm-up to the end, in percent.
    pub fn rss_growth_percent(&self) -> f64 {
        if self.rss_after_warmup_kib == 0 {
            return f64::INFINITY;
        }
        (self.rss_end_kib as f64 - self.rss_after_warmup_kib as f64) * 100.0
            / self.rss_after_warmup_kib as f64
    }

    /// Every kind of traffic ran without an unexpected failure, memory grew by less than
    /// 5 %, and every fault happened.
    pub fn passed(&self) -> bool {
        self.traffic.len() == LOAD_KINDS
            && self
                .traffic
                .values()
                .all(|counts| counts.requests > 0 && counts.unexpected_failures == 0)
            && self.rss_growth_percent() < 5.0
            && self.control_plane_restarts == 1
            && self.upstream_restarts == 1
    }

    /// The report as a Markdown table and a few lines.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| traffic | requests | ok | failed as the fault explains | failed otherwise |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for (kind, counts) in &self.traffic {
            let _ = writeln!(
                out,
                "| {kind} | {} | {} | {} | {} |",
                counts.requests, counts.ok, counts.expected_failures, counts.unexpected_failures
            );
        }
        let _ = writeln!(
            out,
            "\nduration {:?}; {} configuration pushes; {} control plane restart(s); {} upstream kill(s) and restart(s); \
             RSS {} KiB after warm-up, {} KiB at the end ({:+.1} %)",
            self.duration,
            self.config_pushes,
            self.control_plane_restarts,
            self.upstream_restarts,
            self.rss_after_warmup_kib,
            self.rss_end_kib,
            self.rss_growth_percent()
        );
        for failure in &self.unexpected {
            let _ = writeln!(out, "- unexpected: {failure}");
        }
        out
    }
}

/// An upstream that can be killed (listener and connections at once) and restarted on
/// the same port.
struct Upstream {
    tasks: JoinSet<()>,
}

impl Upstream {
    async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = connections.clone();
        tasks.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                        b"upstream",
                    ))))
                });
                let serve = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                if let Ok(mut connections) = held.lock() {
                    connections.spawn(async move {
                        let _ = serve.await;
                    });
                }
            }
        });
        // Killing the upstream aborts its connections with it.
        tasks.spawn(async move {
            std::future::pending::<()>().await;
            drop(connections);
        });
        Ok(Self { tasks })
    }

    fn kill(mut self) {
        self.tasks.abort_all();
    }
}

/// Version `n`: the same answers for the load, with a route and a cluster of its own so
/// that every push changes both.
fn snapshot(n: u64, listener_port: u16, upstream_port: u16) -> Snapshot {
    let routes = route_config(
        "routes",
        vec![
            // Before `/hello`, which is a prefix of it.
            prefix_route("/helloworld.Greeter/", "greeter"),
            prefix_route(&format!("/version-{n}"), "hello"),
            prefix_route("/hello", "hello"),
            prefix_route("/trap", "trap"),
            prefix_route("/upstream", "upstream"),
        ],
    );
    Snapshot {
        version: n.to_string(),
        listeners: vec![listener("soak", listener_port, "routes")],
        routes: vec![routes],
        clusters: vec![
            static_cluster("upstream", upstream_port),
            static_cluster(&format!("unused-{n}"), upstream_port),
        ],
        ..Default::default()
    }
}

/// Shared counts of one kind of traffic.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<&'static str, Counts>>,
    unexpected: Mutex<Vec<String>>,
}

enum Outcome {
    Ok,
    Expected,
    Unexpected(String),
}

impl Tally {
    fn record(&self, kind: &'static str, outcome: Outcome) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let counts = counts.entry(kind).or_default();
        counts.requests += 1;
        match outcome {
            Outcome::Ok => counts.ok += 1,
            Outcome::Expected => counts.expected_failures += 1,
            Outcome::Unexpected(why) => {
                counts.unexpected_failures += 1;
                if let Ok(mut unexpected) = self.unexpected.lock()
                    && unexpected.len() < 20
                {
                    unexpected.push(format!("{kind}: {why}"));
                }
            }
        }
    }
}

/// When the upstream is down (from, until), shared with the load that reaches it.
type Outage = Arc<Mutex<Option<(Instant, Option<Instant>)>>>;

fn in_outage(outage: &Outage) -> bool {
    let now = Instant::now();
    outage
        .lock()
        .ok()
        .and_then(|window| *window)
        .is_some_and(|(from, until)| {
            now >= from && until.is_none_or(|until| now <= until + RECOVERY)
        })
}

async fn http_get(
    sender: &mut hyper::client::conn::http1::SendRequest<client::TestBody>,
    path: &str,
) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|error| error.to_string())?;
    let request = Request::get(path)
        .header("host", "soak.test")
        .body(client::empty())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn connect_http1(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<client::TestBody>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| error.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// HTTP/1.1 keep-alive load on `path`, judged by `judge`.
async fn http1_load(
    addr: SocketAddr,
    kind: &'static str,
    path: &'static str,
    pause: Duration,
    until: Instant,
    tally: Arc<Tally>,
    judge: impl Fn(Result<(u16, Bytes), String>) -> Outcome,
) {
    let mut sender = None;
    while Instant::now() < until {
        if sender.is_none() {
            sender = connect_http1(addr).await.ok();
        }
        let result = match &mut sender {
            Some(current) => http_get(current, path).await,
            None => Err("cannot connect".into()),
        };
        if result.is_err() {
            sender = None;
        }
        tally.record(kind, judge(result));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

async fn h2c_load(addr: SocketAddr, until: Instant, tally: Arc<Tally>) {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(error) => return tally.record("h2c /hello", Outcome::Unexpected(error.to_string())),
    };
    let Ok((sender, connection)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await
    else {
        return tally.record("h2c /hello", Outcome::Unexpected("handshake".into()));
    };
    tokio::spawn(connection);
    // Eight streams at a time on the one connection.
    let mut streams = JoinSet::new();
    for _ in 0..8 {
        let mut sender = sender.clone();
        let tally = tally.clone();
        streams.spawn(async move {
            while Instant::now() < until {
                let request = Request::get(format!("http://soak.test:{}/hello", addr.port()))
                    .body(client::empty())
                    .map_err(|error| error.to_string());
                let result = match request {
                    Ok(request) => match sender.send_request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.into_body().collect().await {
                                Ok(body) => Ok((status, body.to_bytes())),
                                Err(error) => Err(error.to_string()),
                            }
                        }
                        Err(error) => Err(error.to_string()),
                    },
                    Err(error) => Err(error),
                };
                tally.record("h2c /hello", hello_judge(result));
            }
        });
    }
    while streams.join_next().await.is_some() {}
}

async fn grpc_load(addr: SocketAddr, until: Instant, tally: Arc<Tally>) {
    let channel = match Channel::from_shared(format!("http://{addr}")) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(error) => return tally.record("gRPC SayHello", Outcome::Unexpected(error.to_string())),
    };
    let mut greeter = GreeterClient::new(channel);
    while Instant::now() < until {
        let reply = greeter
            .say_hello(HelloRequest {
                name: "soak".into(),
            })
            .await;
        let outcome = match reply {
            Ok(reply) if reply.get_ref().message == "Hello soak" => Outcome::Ok,
            Ok(reply) => Outcome::Unexpected(format!("answered {:?}", reply.get_ref().message)),
            Err(status) => Outcome::Unexpected(status.to_string()),
        };
        tally.record("gRPC SayHello", outcome);
    }
}

fn hello_judge(result: Result<(u16, Bytes), String>) -> Outcome {
    match result {
        Ok((200, body)) if body.as_ref() == HELLO => Outcome::Ok,
        Ok((status, body)) => {
            Outcome::Unexpected(format!("{status} {}", String::from_utf8_lossy(&body)))
        }
        Err(error) => Outcome::Unexpected(error),
    }
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn average(samples: &[(Instant, u64)], from: Instant, to: Instant) -> u64 {
    let window: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .map(|(_, rss)| *rss)
        .collect();
    if window.is_empty() {
        return 0;
    }
    window.iter().sum::<u64>() / window.len() as u64
}

/// Runs the soak for `duration` (at least a minute).
pub async fn run(duration: Duration) -> SoakReport {
    let duration = duration.max(Duration::from_secs(60));
    let mut plane = TestControlPlane::start().await.expect("control plane");
    let upstream_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let upstream = Upstream::start(upstream_addr).await.expect("upstream");
    let port = free_port();
    let mut version = 1;
    plane.set_snapshot(NODE, &snapshot(version, port, upstream_addr.port()));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    // mesh-host announces its static listeners once they serve; the load goes to the
    // listener that arrives over ADS.
    let health = http_listener(
        "health",
        free_port(),
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }]"#,
    );
    let bootstrap = format!(
        "{}\nstatic_resources:\n  listeners:{health}\n  clusters:{}\n",
        ads_header(NODE, true),
        xds_cluster(plane.addr().port())
    );
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--grpc".into(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
        "--workload".into(),
        format!("trap={}", component("trap").display()),
        "--workload".into(),
        format!("greeter={}", component("greeter").display()),
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ready = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut sender) = connect_http1(addr).await
            && matches!(http_get(&mut sender, "/hello").await, Ok((200, _)))
        {
            break;
        }
        assert!(Instant::now() < ready, "the ADS listener never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let until = started + duration;
    let tally = Arc::new(Tally::default());
    let outage: Outage = Arc::new(Mutex::new(None));
    let mut load = JoinSet::new();
    for _ in 0..4 {
        load.spawn(http1_load(
            addr,
            "HTTP/1.1 /hello",
            "/hello",
            Duration::ZERO,
            until,
            tally.clone(),
            hello_judge,
        ));
    }
    for _ in 0..2 {
        load.spawn(h2c_load(addr, until, tally.clone()));
        load.spawn(grpc_load(addr, until, tally.clone()));
    }
    load.spawn(http1_load(
        addr,
        "HTTP/1.1 /trap (traps)",
        "/trap",
        Duration::from_millis(100),
        until,
        tally.clone(),
        |result| match result {
            Ok((500, _)) => Outcome::Expected,
            Ok((status, _)) => Outcome::Unexpected(format!("{status} from a trapping component")),
            Err(error) => Outcome::Unexpected(error),
        },
    ));
    let watched = outage.clone();
    load.spawn(http1_load(
        addr,
        "HTTP/1.1 /upstream (killed once)",
        "/upstream",
        Duration::from_millis(20),
        until,
        tally.clone(),
        move |result| match result {
            Ok((200, body)) if body.as_ref() == b"upstream" => Outcome::Ok,
            _ if in_outage(&watched) => Outcome::Expected,
            Ok((status, _)) => Outcome::Unexpected(format!("{status} with the upstream up")),
            Err(error) => Outcome::Unexpected(error),
        },
    ));

    let pid = host.pid();
    let mut samples = Vec::new();
    let mut report = SoakReport {
        duration,
        ..SoakReport::default()
    };
    let plane_restart_at = started + duration * 3 / 10;
    let upstream_kill_at = started + duration * 11 / 20;
    let mut upstream = Some(upstream);
    let mut next_push = started + PUSH_EVERY;
    let mut next_sample = started;
    while Instant::now() < until {
        let now = Instant::now();
        if now >= next_sample {
            if let Some(rss) = rss_kib(pid) {
                samples.push((now, rss));
            }
            next_sample += Duration::from_secs(1);
        }
        if now >= next_push {
            version += 1;
            plane.set_snapshot(NODE, &snapshot(version, port, upstream_addr.port()));
            report.config_pushes += 1;
            next_push += PUSH_EVERY;
        }
        if report.control_plane_restarts == 0 && now >= plane_restart_at {
            plane.stop().await;
            tokio::time::sleep(OUTAGE).await;
            plane.restart().await.expect("control plane restart");
            report.control_plane_restarts += 1;
        }
        if report.upstream_restarts == 0 && now >= upstream_kill_at {
            if let Ok(mut window) = outage.lock() {
                *window = Some((Instant::now(), None));
            }
            if let Some(running) = upstream.take() {
                running.kill();
            }
            tokio::time::sleep(OUTAGE).await;
            upstream = Some(
                Upstream::start(upstream_addr)
                    .await
                    .expect("upstream restart"),
            );
            if let Ok(mut window) = outage.lock()
                && let Some((from, _)) = *window
            {
                *window = Some((from, Some(Instant::now())));
            }
            report.upstream_restarts += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while load.join_next().await.is_some() {}
    let warmup = (duration / 5).max(Duration::from_secs(20));
    report.rss_after_warmup_kib =
        average(&samples, started + warmup, started + warmup + MEMORY_WINDOW);
    report.rss_end_kib = average(&samples, until - MEMORY_WINDOW, until);
    report.traffic = tally
        .counts
        .lock()
        .map(|counts| counts.clone())
        .unwrap_or_default();
    report.unexpected = tally
        .unexpected
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    drop(upstream);
    report
}
