//! One port, every protocol: HTTP/1.1, h2c prior knowledge and TLS with ALPN
//! reach the same component (of either kind); headers, streamed bodies and trailers pass
//! through; header and body limits answer 431 and 413.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_host_tests::client::{self, TestBody};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::tls::TestCert;
use mesh_host_tests::{component, for_each_kind, peers};
use tokio::process::Command;

const HELLO: &str = "Hello from mesh-host!\n";

async fn curl(args: &[&str]) -> (String, String) {
    let curl = peers::require("curl").expect("curl");
    let output = Command::new(curl)
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

for_each_kind! {
async fn hello_answers_curl_http1_h2c_nghttp_and_hyper_on_one_port(kind: Kind) {
    let host = MeshHost::run(&kind.component("hello"), &[]);
    let url = host.url("/");

    let (body, _) = curl(&["-w", "%{http_version}", "--http1.1", &url]).await;
    assert_eq!(body, format!("{HELLO}1.1"));

    let (body, _) = curl(&["-w", "%{http_version}", "--http2-prior-knowledge", &url]).await;
    assert_eq!(body, format!("{HELLO}2"));

    let nghttp = peers::require("nghttp").expect("nghttp");
    let output = Command::new(nghttp)
        .args(["-n", "-s", &url])
        .output()
        .await
        .expect("nghttp");
    assert!(
        output.status.success(),
        "nghttp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(peers::require("nghttp").expect("nghttp"))
        .arg(&url)
        .output()
        .await
        .expect("nghttp");
    assert_eq!(String::from_utf8_lossy(&output.stdout), HELLO);

    let request = || {
        Request::get("/")
            .header("host", "hello.test")
            .body(client::empty())
            .expect("request")
    };
    let (status, _, body, _) = client::read_all(client::http1(host.addr, request()).await).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from(HELLO)));
    let (status, _, body, _) = client::read_all(client::h2c(host.addr, request()).await).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from(HELLO)));
}
}

for_each_kind! {
async fn tls_alpn_picks_h2_for_h2_clients_and_http1_for_http1_only_clients(kind: Kind) {
    let cert = TestCert::generate();
    let host = MeshHost::run(
        &kind.component("hello"),
        &[
            "--tls-cert",
            cert.cert.to_str().expect("path"),
            "--tls-key",
            cert.key.to_str().expect("path"),
        ],
    );

    let (stream, alpn) = cert.connect(host.addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 over TLS");
    tokio::spawn(connection);
    let request = Request::get("https://localhost/")
        .body(client::empty())
        .expect("request");
    let (status, _, body, _) =
        client::read_all(sender.send_request(request).await.expect("h2 request")).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from(HELLO)));

    let (stream, alpn) = cert.connect(host.addr, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 over TLS");
    tokio::spawn(connection);
    let request = Request::get("/")
        .header("host", "localhost")
        .body(client::empty())
        .expect("request");
    let (status, _, body, _) =
        client::read_all(sender.send_request(request).await.expect("h1 request")).await;
    assert_eq!((status.as_u16(), body), (200, Bytes::from(HELLO)));

    let (body, _) = curl(&[
        "-w",
        "%{http_version}",
        "--cacert",
        cert.cert.to_str().expect("path"),
        "--http2",
        &format!("https://localhost:{}/", host.addr.port()),
        "--resolve",
        &format!("localhost:{}:127.0.0.1", host.addr.port()),
    ])
    .await;
    assert_eq!(body, format!("{HELLO}2"));
}
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_sees_te_trailers_and_other_headers_over_http1_and_h2() {
    let host = MeshHost::run(&component("echo"), &[]);
    for h2 in [false, true] {
        let request = Request::post("/some/path?q=1")
            .header("host", "echo.test")
            .header("te", "trailers")
            .header("x-custom", "value-1")
            .header("content-type", "text/plain")
            .body(client::full("ping"))
            .expect("request");
        let response = if h2 {
            client::h2c(host.addr, request).await
        } else {
            client::http1(host.addr, request).await
        };
        let (status, headers, body, trailers) = client::read_all(response).await;
        assert_eq!(status.as_u16(), 200, "h2={h2}");
        assert_eq!(headers["x-echo-method"], "POST");
        assert_eq!(headers["x-echo-path"], "/some/path?q=1");
        assert_eq!(
            headers["x-echo-req-te"], "trailers",
            "h2={h2}: te must reach the component"
        );
        assert_eq!(headers["x-echo-req-x-custom"], "value-1");
        assert_eq!(body, Bytes::from_static(b"ping"));
        // HTTP/1.1 chunked trailers are only sent by hyper for fields the
        // response declares in a `Trailer` header, which echo does not; the
        // contract is trailers on HTTP/2.
        if h2 {
            let trailers = trailers.expect("response trailers must reach an HTTP/2 client");
            assert_eq!(trailers["x-echo-bytes"], "4");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_streams_a_10_mib_body_and_passes_request_trailers_over_h2() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 160;
    let host = MeshHost::run(&component("echo"), &[]);

    let mut trailers = HeaderMap::new();
    trailers.insert("x-client-trailer", "sent-last".parse().expect("value"));
    let frames = futures::stream::iter(0..CHUNKS)
        .map(|i| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(
                vec![(i % 251) as u8; CHUNK],
            )))
        })
        .chain(futures::stream::once(async move {
            Ok(Frame::trailers(trailers))
        }));
    let body: TestBody = BodyExt::boxed(StreamBody::new(frames));
    let request = Request::post("/upload")
        .header("host", "echo.test")
        .header("te", "trailers")
        .body(body)
        .expect("request");
    let response = client::h2c(host.addr, request).await;
    assert_eq!(response.status().as_u16(), 200);
    let mut received = 0usize;
    let mut body = response.into_body();
    let mut response_trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("frame");
        match frame.into_data() {
            Ok(data) => {
                for (offset, byte) in data.iter().enumerate() {
                    let expected = (((received + offset) / CHUNK) % 251) as u8;
                    assert_eq!(*byte, expected, "byte {} corrupted", received + offset);
                }
                received += data.len();
            }
            Err(frame) => response_trailers = frame.into_trailers().ok(),
        }
    }
    assert_eq!(received, CHUNK * CHUNKS);
    let response_trailers = response_trailers.expect("response trailers");
    assert_eq!(
        response_trailers["x-echo-bytes"],
        (CHUNK * CHUNKS).to_string()
    );
    assert_eq!(
        response_trailers["x-echo-trailer-x-client-trailer"],
        "sent-last"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431_and_oversized_bodies_get_413() {
    let host = MeshHost::run(
        &component("echo"),
        &[
            "--max-request-headers",
            "16KiB",
            "--max-request-body",
            "1MiB",
        ],
    );
    let big = "x".repeat(32 * 1024);

    let request = Request::get("/")
        .header("host", "echo.test")
        .header("x-big", &big)
        .body(client::empty())
        .expect("request");
    let response = client::http1(host.addr, request).await;
    assert_eq!(response.status().as_u16(), 431);

    let stream = tokio::net::TcpStream::connect(host.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    let request = Request::get("http://echo.test/")
        .header("x-big", &big)
        .body(client::empty())
        .expect("request");
    match sender.send_request(request).await {
        Ok(response) => assert_eq!(response.status().as_u16(), 431),
        Err(error) => panic!("h2 oversized headers must get a 431 answer, got {error}"),
    }

    let request = Request::post("/")
        .header("host", "echo.test")
        .body(client::full(vec![0u8; 2 * 1024 * 1024]))
        .expect("request");
    let response = client::http1(host.addr, request).await;
    assert_eq!(response.status().as_u16(), 413);

    let request = Request::get("/")
        .header("host", "echo.test")
        .body(client::empty())
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), client::http1(host.addr, request))
        .await
        .expect("answer");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the host keeps serving after refusing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_stream_the_first_chunk_arrives_long_before_the_last_is_written() {
    let host = MeshHost::run(&component("slow"), &[]);
    for h2 in [false, true] {
        let request = Request::get("/?chunks=8&delay_ms=250&chunk=x")
            .header("host", "slow.test")
            .body(client::empty())
            .expect("request");
        let started = std::time::Instant::now();
        let response = if h2 {
            client::h2c(host.addr, request).await
        } else {
            client::http1(host.addr, request).await
        };
        let mut body = response.into_body();
        let first = body.frame().await.expect("a first frame").expect("frame");
        let first_at = started.elapsed();
        assert!(first.is_data());
        while body.frame().await.is_some() {}
        let all_at = started.elapsed();
        assert!(
            all_at >= Duration::from_millis(1700),
            "the component takes ~1.75 s, took {all_at:?}"
        );
        assert!(
            first_at < Duration::from_millis(1000),
            "h2={h2}: first chunk after {first_at:?}: the response was buffered"
        );
    }
}
