//! SDS: certificates and CA bundles delivered as secrets over ADS. A listener whose
//! certificate has not arrived binds nothing, then serves it; a new secret version under
//! HTTP/2 load fails no request and new connections see the new certificate (SotW and
//! delta); an upstream CA by SDS (in a `combined_validation_context`) decides whether the
//! upstream is trusted; a bad secret is NACKed and the last good one keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_host_tests::bootstrap::{ads_header, http_listener, xds_cluster};
use mesh_host_tests::component;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;
use mesh_xds::bootstrap::AdsApi;
use mesh_xds::envoy_types::pb::envoy::config::cluster::v3 as cds;
use mesh_xds::envoy_types::pb::envoy::config::listener::v3 as lds;
use mesh_xds::envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use mesh_xds::test_control_plane::resources::{
    ads_secret, certificate_secret, downstream_tls_sds, listener, prefix_route, route_config,
    static_cluster, tls_socket, validation_secret,
};
use mesh_xds::test_control_plane::{ReceivedRequest, Snapshot, TestControlPlane};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const NODE: &str = "mesh-sds";
const ENVOY_NODE: &str = "envoy-sds";
const SECRET: &str = "server-cert";
const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const HELLO: &[u8] = b"Hello from mesh-host!\n";
const WAIT: Duration = Duration::from_secs(30);

fn bootstrap(api: AdsApi, static_port: u16, control_plane_port: u16) -> String {
    let listener = http_listener(
        "static",
        static_port,
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }]"#,
    );
    let header = ads_header(NODE, true);
    let header = match api {
        AdsApi::StateOfTheWorld => header,
        AdsApi::Delta => header.replace("api_type: GRPC", "api_type: DELTA_GRPC"),
    };
    format!(
        "{header}\nstatic_resources:\n  listeners:{listener}\n  clusters:{}\n",
        xds_cluster(control_plane_port)
    )
}

/// mesh-host on ADS from `plane`, serving the cluster `hello` with that component; the
/// directory holds the bootstrap and lives as long as the host.
fn start_mesh_host(plane: &TestControlPlane, api: AdsApi) -> (tempfile::TempDir, MeshHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap(api, free_port(), plane.addr().port()))
        .expect("write bootstrap");
    let host = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("hello={}", component("hello").display()),
    ]);
    (dir, host)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("read PEM")
}

/// The secret `server-cert` holding `cert` and its key (or `key`'s key, to make a bad one).
fn server_secret(cert: &TestCert, key: &TestCert) -> tls::Secret {
    certificate_secret(SECRET, &read(&cert.cert), &read(&key.key))
}

/// A listener on `port` serving TLS (h2, http/1.1) with the ADS secret `server-cert`,
/// routing everything to `hello`.
fn tls_listener(port: u16) -> lds::Listener {
    let mut l = listener("tls", port, "routes");
    l.filter_chains[0].transport_socket =
        Some(tls_socket(&downstream_tls_sds(SECRET, &["h2", "http/1.1"])));
    l
}

fn snapshot(version: &str, port: u16, secret: Option<tls::Secret>) -> Snapshot {
    Snapshot {
        version: version.to_owned(),
        listeners: vec![tls_listener(port)],
        routes: vec![route_config("routes", vec![prefix_route("/", "hello")])],
        secrets: secret.into_iter().collect(),
        ..Default::default()
    }
}

/// A TLS client trusting `certs`, offering h2.
fn client_config(certs: &[&TestCert]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        let pem = read(&cert.cert);
        for der in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(der.expect("PEM")).expect("trust");
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` and the leaf certificate the server presented.
async fn connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<(TlsStream<TcpStream>, CertificateDer<'static>)> {
    let stream = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, stream)
        .await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .cloned()
        .ok_or_else(|| std::io::Error::other("no peer certificate"))?;
    Ok((stream, leaf))
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection over `stream`.
async fn h2(stream: TlsStream<TcpStream>) -> Result<H2, String> {
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One GET on an HTTP/2 connection; `Ok` only for the workload's answer.
async fn get(sender: &mut H2) -> Result<(), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let request = Request::get("https://localhost/")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status == 200 && body.as_ref() == HELLO {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

/// Waits until a new connection to `addr` presents `expected`, then checks it serves.
async fn served_with(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, expected: &TestCert) {
    let wanted = pem_der(expected);
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match connect(addr, config).await {
            Ok((stream, leaf)) if leaf == wanted => {
                let mut sender = h2(stream).await.expect("h2");
                get(&mut sender).await.expect("served over TLS and h2");
                return;
            }
            Ok(_) => last = "another certificate".to_owned(),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never served the expected certificate; last: {last}");
}

fn pem_der(cert: &TestCert) -> CertificateDer<'static> {
    let pem = read(&cert.cert);
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM")
}

/// Waits for a request of `node` for secrets that satisfies `check`.
async fn secret_request(
    plane: &TestControlPlane,
    check: impl Fn(&ReceivedRequest) -> bool,
) -> Option<ReceivedRequest> {
    plane
        .wait_for_request(WAIT, |r| {
            r.node_id == NODE && r.request.type_url() == SECRET_TYPE && check(&r.request)
        })
        .await
        .map(|r| r.request)
}

fn names_secret(request: &ReceivedRequest) -> bool {
    match request {
        ReceivedRequest::Sotw(q) => q.resource_names.iter().any(|n| n == SECRET),
        ReceivedRequest::Delta(q) => q.resource_names_subscribe.iter().any(|n| n == SECRET),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_binds_nothing_until_its_certificate_arrives_then_serves_it() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    plane.set_snapshot(NODE, &snapshot("1", port, None));
    let (_dir, _host) = start_mesh_host(&plane, AdsApi::StateOfTheWorld);

    // The listener arrived (its secret is asked for by name), and warms: nothing is bound.
    assert!(
        secret_request(&plane, names_secret).await.is_some(),
        "mesh-host asks for the listener's secret by name"
    );
    for _ in 0..10 {
        let refused = TcpStream::connect(addr).await;
        assert!(
            matches!(&refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "the warming listener must not accept connections: {refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cert = TestCert::generate();
    plane.set_snapshot(
        NODE,
        &snapshot("2", port, Some(server_secret(&cert, &cert))),
    );
    served_with(addr, &client_config(&[&cert]), &cert).await;
}

/// What the clients of the rotation test saw.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn record(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => self.failures.lock().expect("lock").push(error),
        }
    }
}

/// One client connection of the rotation test: started at `opened`, handshake finished at `done`.
#[derive(Clone, Copy, Debug)]
struct Handshake {
    opened: Instant,
    done: Instant,
    is_new: bool,
}

async fn rotation_under_h2_load(api: AdsApi) {
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (old, new) = (TestCert::generate(), TestCert::generate());
    let trust = client_config(&[&old, &new]);
    plane.set_snapshot(NODE, &snapshot("1", port, Some(server_secret(&old, &old))));
    let (_dir, _host) = start_mesh_host(&plane, api);
    served_with(addr, &trust, &old).await;

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let push_sent = Arc::new(AtomicBool::new(false));
    let long_lived_after_push = Arc::new(AtomicU64::new(0));
    let (old_der, new_der) = (pem_der(&old), pem_der(&new));
    // Long-lived HTTP/2 connections, opened before the push, sending all along.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (stream, leaf) = connect(addr, &trust).await.expect("connect");
        assert_eq!(leaf, old_der);
        let mut sender = h2(stream).await.expect("h2");
        let (load, stop, push_sent, after_push) = (
            load.clone(),
            stop.clone(),
            push_sent.clone(),
            long_lived_after_push.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = get(&mut sender).await;
                if result.is_ok() && push_sent.load(Ordering::Relaxed) {
                    after_push.fetch_add(1, Ordering::Relaxed);
                }
                load.record(result);
            }
        }));
    }
    // Clients opening a new connection for every request, noting when the connection was
    // started, when its handshake finished, and which certificate it saw.
    let seen: Arc<std::sync::Mutex<Vec<Handshake>>> = Arc::default();
    for _ in 0..2 {
        let (load, stop, seen, trust, new_der) = (
            load.clone(),
            stop.clone(),
            seen.clone(),
            trust.clone(),
            new_der.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let opened = Instant::now();
                let result = match connect(addr, &trust).await {
                    Ok((stream, leaf)) => {
                        seen.lock().expect("lock").push(Handshake {
                            opened,
                            done: Instant::now(),
                            is_new: leaf == new_der,
                        });
                        match h2(stream).await {
                            Ok(mut sender) => get(&mut sender).await,
                            Err(error) => Err(error),
                        }
                    }
                    Err(error) => Err(format!("connect: {error}")),
                };
                load.record(result);
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_push = load.ok.load(Ordering::Relaxed);
    push_sent.store(true, Ordering::Relaxed);
    plane.set_snapshot(NODE, &snapshot("2", port, Some(server_secret(&new, &new))));
    let pushed = Instant::now();
    // Load continues until new connections have seen the new certificate for a while.
    let deadline = pushed + WAIT;
    let first_new = loop {
        let found = seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|handshake| handshake.is_new)
            .map(|handshake| handshake.done)
            .min();
        if let Some(at) = found {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no new connection saw the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }

    let failures = load.failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {failures:?}",
        failures.len()
    );
    let ok = load.ok.load(Ordering::Relaxed);
    assert!(
        ok > before_push + 20,
        "requests went on during the rotation: {before_push} then {ok}"
    );
    // Once one handshake has finished with the new certificate the swap has happened, so every
    // connection started after that moment sees only the new one. (Ordering by start times alone
    // would race: of two clients connecting at once, the later starter may be accepted first.)
    let seen = seen.lock().expect("lock").clone();
    let late_old: Vec<_> = seen
        .iter()
        .filter(|handshake| handshake.opened > first_new && !handshake.is_new)
        .collect();
    assert!(
        late_old.is_empty(),
        "connections saw the old certificate after the new one: {}",
        late_old.len()
    );
    assert!(
        seen.iter()
            .filter(|handshake| handshake.opened > first_new)
            .count()
            > 3,
        "new connections were opened after the rotation"
    );
    // The connections opened before the push kept serving on their certificate.
    assert!(
        long_lived_after_push.load(Ordering::Relaxed) > 10,
        "the connections open during the push went on serving"
    );
    assert_ne!(old_der, new_der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_http2_load_fails_no_request_sotw() {
    rotation_under_h2_load(AdsApi::StateOfTheWorld).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_http2_load_fails_no_request_delta() {
    rotation_under_h2_load(AdsApi::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secret_is_nacked_and_the_last_good_certificate_keeps_serving() {
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let envoy_port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (good, other) = (TestCert::generate(), TestCert::generate());
    let trust = client_config(&[&good, &other]);
    plane.set_snapshot(
        NODE,
        &snapshot("1", port, Some(server_secret(&good, &good))),
    );
    plane.set_snapshot(
        ENVOY_NODE,
        &snapshot("1", envoy_port, Some(server_secret(&good, &good))),
    );
    let (_dir, _host) = start_mesh_host(&plane, AdsApi::StateOfTheWorld);
    // A real Envoy, a second client of the same control plane, is the oracle of the
    // decisions on the same snapshots.
    let envoy = Envoy::start(&format!(
        "{}\nstatic_resources:\n  clusters:{}\n",
        ads_header(ENVOY_NODE, true),
        xds_cluster(plane.addr().port())
    ))
    .await;
    served_with(addr, &trust, &good).await;
    if envoy.is_some() {
        let acked = decision(&plane, ENVOY_NODE, "1").await;
        assert_eq!(acked, Some(None), "Envoy accepts the good secret");
    }

    // Another certificate with the old key: the key does not match.
    plane.set_snapshot(
        NODE,
        &snapshot("2", port, Some(server_secret(&other, &good))),
    );
    plane.set_snapshot(
        ENVOY_NODE,
        &snapshot("2", envoy_port, Some(server_secret(&other, &good))),
    );
    let message = decision(&plane, NODE, "2")
        .await
        .expect("mesh-host answers the bad secret")
        .expect("the bad secret is NACKed");
    assert!(
        message.contains(
            "secret \"server-cert\": tls_certificate.private_key: does not match the certificate"
        ),
        "{message}"
    );
    if envoy.is_some() {
        let envoy_answer = decision(&plane, ENVOY_NODE, "2").await;
        assert!(
            matches!(envoy_answer, Some(Some(_))),
            "Envoy NACKs the bad secret too: {envoy_answer:?}"
        );
    }
    served_with(addr, &trust, &good).await;
}

/// `node`'s answer to the push of secrets at SotW `version`: `Some(None)` for an ACK,
/// `Some(Some(message))` for a NACK, `None` when it did not answer.
async fn decision(plane: &TestControlPlane, node: &str, version: &str) -> Option<Option<String>> {
    let answer = plane
        .wait_for_request(WAIT, |r| {
            r.node_id == node
                && r.request.type_url() == SECRET_TYPE
                && !r.request.response_nonce().is_empty()
                && match &r.request {
                    ReceivedRequest::Sotw(q) => {
                        q.error_detail.is_some() || q.version_info == version
                    }
                    ReceivedRequest::Delta(_) => false,
                }
        })
        .await?;
    Some(answer.request.error_message().map(str::to_owned))
}

/// A TLS server on 127.0.0.1 presenting `cert` that answers every HTTP/1.1 request
/// `over tls` and closes.
async fn tls_upstream(cert: &TestCert) -> u16 {
    let chain = rustls_pemfile::certs(&mut read(&cert.cert).as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate");
    let key = rustls_pemfile::private_key(&mut read(&cert.key).as_bytes())
        .expect("key PEM")
        .expect("a key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nover tls")
                    .await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_ca_by_sds_in_a_combined_validation_context_decides_whom_to_trust() {
    let upstream_cert = TestCert::generate();
    let stranger = TestCert::generate();
    let upstream_port = tls_upstream(&upstream_cert).await;
    let plane = TestControlPlane::start().await.expect("control plane");
    let port = free_port();
    let mut cluster: cds::Cluster = static_cluster("backend", upstream_port);
    cluster.transport_socket = Some(tls_socket(&tls::UpstreamTlsContext {
        sni: "localhost".to_owned(),
        common_tls_context: Some(tls::CommonTlsContext {
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(Default::default()),
                        validation_context_sds_secret_config: Some(ads_secret("backend-ca")),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let snapshot = |version: &str, ca: Option<&TestCert>| Snapshot {
        version: version.to_owned(),
        listeners: vec![listener("front", port, "routes")],
        routes: vec![route_config("routes", vec![prefix_route("/", "backend")])],
        clusters: vec![cluster.clone()],
        secrets: ca
            .map(|ca| validation_secret("backend-ca", &read(&ca.cert)))
            .into_iter()
            .collect(),
        ..Default::default()
    };
    plane.set_snapshot(NODE, &snapshot("1", None));
    let (_dir, _host) = start_mesh_host(&plane, AdsApi::StateOfTheWorld);
    let ask = || async {
        let request = Request::get("/")
            .header("host", "any.test")
            .body(mesh_host_tests::client::empty())
            .expect("request");
        let (status, _, body, _) = mesh_host_tests::client::read_all(
            mesh_host_tests::client::http1(([127, 0, 0, 1], port).into(), request).await,
        )
        .await;
        (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
    };
    let until = |wanted: fn(&(u16, String)) -> bool, what: &'static str| async move {
        let deadline = Instant::now() + WAIT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                let answer = ask().await;
                if wanted(&answer) {
                    return answer;
                }
                assert!(Instant::now() < deadline, "{what}: last answer {answer:?}");
            } else {
                assert!(
                    Instant::now() < deadline,
                    "{what}: the listener never bound"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The cluster warms on its CA: no upstream to send to.
    assert!(
        secret_request(&plane, |r| match r {
            ReceivedRequest::Sotw(q) => q.resource_names.iter().any(|n| n == "backend-ca"),
            ReceivedRequest::Delta(q) =>
                q.resource_names_subscribe.iter().any(|n| n == "backend-ca"),
        })
        .await
        .is_some()
    );
    let (status, _) = until(|a| a.0 != 200, "no CA yet").await;
    assert_eq!(status, 503);

    // A CA that did not sign the upstream's certificate: the handshake fails.
    plane.set_snapshot(NODE, &snapshot("2", Some(&stranger)));
    secret_request(&plane, |r| match r {
        ReceivedRequest::Sotw(q) => q.version_info == "2" && r.error_message().is_none(),
        ReceivedRequest::Delta(q) => !q.response_nonce.is_empty() && r.error_message().is_none(),
    })
    .await
    .expect("the stranger's CA is ACKed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = ask().await;
    assert_ne!(
        (status, body.as_str()),
        (200, "over tls"),
        "an untrusted upstream was reached"
    );

    // The upstream's own CA: trusted.
    plane.set_snapshot(NODE, &snapshot("3", Some(&upstream_cert)));
    let (_, body) = until(|a| a.0 == 200, "the right CA").await;
    assert_eq!(body, "over tls");
}
