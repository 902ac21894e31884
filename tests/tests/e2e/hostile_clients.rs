//! `mesh-host run` with its defaults against clients that do not play fair: thousands of
//! sockets that send nothing under a small open-file limit, a connection that stops inside
//! the HTTP/2 preface, a PING flood, and a SIGTERM while HTTP/1.1 keep-alive clients are
//! busy. Each test is named for the rule it checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::{client, component};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The detection timeout of the embedded default (Envoy's `listener_filters_timeout`).
const DETECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a silent connection is safe from being closed for a new one at the cap.
const EVICTION_GRACE: Duration = Duration::from_secs(2);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn hello(addr: SocketAddr) -> Request<client::TestBody> {
    Request::get("/")
        .header("host", addr.to_string())
        .body(client::empty())
        .expect("request")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_idle_sockets_under_a_1024_file_limit_do_not_stop_a_new_client() {
    let args: Vec<String> = ["run", "--listen", "127.0.0.1:0"]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([component("hello").display().to_string()])
        .collect();
    let host = MeshHost::spawn_with_open_files(1024, &args);
    assert!(
        host.wait_for_log("open file limit limit=1024"),
        "the limit in force is logged:\n{}",
        host.log()
    );
    assert!(host.wait_for_log("downstream connection limit max=922"));

    let mut idle = Vec::new();
    for _ in 0..2000 {
        // A full backlog may drop a SYN; the rest still count.
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(host.addr)).await
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 1500, "{} idle sockets connected", idle.len());
    tokio::time::sleep(EVICTION_GRACE + Duration::from_millis(500)).await;

    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client::http1(host.addr, hello(host.addr)),
    )
    .await
    .expect("a new client is served while the idle sockets are open");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"Hello from mesh-host!\n");
    assert!(
        !host.log().contains("Too many open files"),
        "the host never ran out of descriptors:\n{}",
        host.log()
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_http2_preface_and_a_silent_socket_are_closed_at_the_detection_timeout() {
    let host = MeshHost::run(&component("hello"), &[]);
    let mut partial = TcpStream::connect(host.addr).await.expect("connect");
    partial
        .write_all(&PREFACE[..16])
        .await
        .expect("half a preface");
    let silent = TcpStream::connect(host.addr).await.expect("connect");
    let started = Instant::now();
    let closed_at = |mut stream: TcpStream| async move {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("closed within 30 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without an answer: {read:?}"
        );
        started.elapsed()
    };
    let (partial, silent) = tokio::join!(closed_at(partial), closed_at(silent));
    for (what, elapsed) in [("partial preface", partial), ("silent socket", silent)] {
        assert!(
            elapsed >= DETECTION_TIMEOUT - Duration::from_millis(500)
                && elapsed < DETECTION_TIMEOUT + Duration::from_secs(3),
            "{what} closed after {elapsed:?}"
        );
    }
    // A client that sends its preface in time is served.
    let response = client::h2c(host.addr, hello(host.addr)).await;
    assert_eq!(response.status(), 200);
}

/// What a raw HTTP/2 client saw.
#[derive(Debug, Default)]
struct Pings {
    acks: u64,
    goaway: Option<u32>,
    closed: bool,
}

/// Sends `per_tick` PINGs every 10 ms for `ticks` ticks on an h2c connection, reading
/// what comes back, and waits up to 3 s more for the end.
async fn ping(addr: SocketAddr, per_tick: usize, ticks: usize) -> Pings {
    let mut ping = vec![0, 0, 8, 0x6, 0, 0, 0, 0, 0];
    ping.extend_from_slice(&[0; 8]);
    flood(addr, &ping, per_tick, ticks).await
}

/// Sends `frame` `per_tick` times every 10 ms for `ticks` ticks on an h2c connection,
/// reading what comes back, and waits up to 3 s more for the end.
async fn flood(addr: SocketAddr, frame: &[u8], per_tick: usize, ticks: usize) -> Pings {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    writer.write_all(&hello).await.expect("preface");
    let done = Arc::new(AtomicBool::new(false));
    let read = tokio::spawn({
        let done = done.clone();
        async move {
            let mut seen = Pings::default();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                let read =
                    tokio::time::timeout(Duration::from_secs(3), reader.read(&mut chunk)).await;
                let read = match read {
                    Err(_) if done.load(Ordering::Relaxed) => return seen,
                    Err(_) => continue,
                    Ok(Ok(0) | Err(_)) => {
                        seen.closed = true;
                        return seen;
                    }
                    Ok(Ok(read)) => read,
                };
                buffer.extend_from_slice(&chunk[..read]);
                while buffer.len() >= 9 {
                    let length = usize::from(buffer[0]) << 16
                        | usize::from(buffer[1]) << 8
                        | usize::from(buffer[2]);
                    if buffer.len() < 9 + length {
                        break;
                    }
                    let (kind, flags) = (buffer[3], buffer[4]);
                    if kind == 0x6 && flags & 0x1 != 0 {
                        seen.acks += 1;
                    }
                    if kind == 0x7 && length >= 8 {
                        seen.goaway = Some(u32::from_be_bytes([
                            buffer[13], buffer[14], buffer[15], buffer[16],
                        ]));
                    }
                    buffer.drain(..9 + length);
                }
            }
        }
    });
    let burst = frame.repeat(per_tick);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..ticks {
        tick.tick().await;
        if writer.write_all(&burst).await.is_err() {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    read.await.expect("reader")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_pings_a_second_get_goaway_and_a_few_are_answered() {
    let host = MeshHost::run(&component("hello"), &[]);
    // 20 a second for 2 s: keepalive-like, every one answered.
    let calm = ping(host.addr, 1, 40).await;
    assert_eq!(calm.goaway, None, "{calm:?}");
    assert_eq!(calm.acks, 40, "{calm:?}");

    // 1,000 a second for 5 s.
    let flood = ping(host.addr, 10, 500).await;
    assert_eq!(
        flood.goaway,
        Some(0xb),
        "GOAWAY with ENHANCE_YOUR_CALM: {flood:?}"
    );
    assert!(flood.closed, "{flood:?}");
    assert!(flood.acks >= 1000 && flood.acks < 2000, "{flood:?}");
    assert!(host.wait_for_log("HTTP/2 flood (too many control frames)"));
    // The host itself is unharmed.
    let response = client::h2c(host.addr, hello(host.addr)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn priority_frames_beyond_100_per_stream_get_goaway() {
    let host = MeshHost::run(&component("hello"), &[]);
    // PRIORITY for stream 1 (never opened), depending on stream 0 with weight 16.
    let priority = [0, 0, 5, 0x2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 15];
    // 100 are within the allowance of a connection that opened no stream.
    let allowed = flood(host.addr, &priority, 100, 1).await;
    assert_eq!(allowed.goaway, None, "{allowed:?}");
    assert!(!allowed.closed, "{allowed:?}");

    let flooded = flood(host.addr, &priority, 50, 4).await;
    assert_eq!(
        flooded.goaway,
        Some(0xb),
        "GOAWAY with ENHANCE_YOUR_CALM: {flooded:?}"
    );
    assert!(flooded.closed, "{flooded:?}");
    assert!(host.wait_for_log("HTTP/2 flood (too many PRIORITY frames)"));
}

/// What one keep-alive client saw.
#[derive(Debug, Default)]
struct KeepAlive {
    answered: u64,
    unanswered: u64,
    told_to_close: bool,
}

/// Sends GET after GET on one keep-alive connection until an answer says
/// `connection: close` or a request goes unanswered.
async fn keep_alive(addr: SocketAddr, sent: Arc<AtomicU64>) -> KeepAlive {
    let mut seen = KeepAlive::default();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    loop {
        if sender.ready().await.is_err() {
            // Closed with no request on the wire.
            return seen;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        match sender.send_request(hello(addr)).await {
            Ok(response) => {
                let close = response
                    .headers()
                    .get(http::header::CONNECTION)
                    .is_some_and(|value| value == "close");
                match response.into_body().collect().await {
                    Ok(_) => seen.answered += 1,
                    Err(_) => seen.unanswered += 1,
                }
                if close {
                    seen.told_to_close = true;
                    return seen;
                }
            }
            Err(_) => {
                seen.unanswered += 1;
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_http1_keep_alive_load_with_64_connections_leaves_no_request_unanswered() {
    let mut host = MeshHost::run(&component("hello"), &["--drain-time", "2s"]);
    let sent = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..64)
        .map(|_| tokio::spawn(keep_alive(host.addr, sent.clone())))
        .collect();
    while sent.load(Ordering::Relaxed) < 2000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.terminate();
    let mut total = KeepAlive::default();
    let mut told = 0;
    for client in clients {
        let seen = client.await.expect("client");
        total.answered += seen.answered;
        total.unanswered += seen.unanswered;
        told += u32::from(seen.told_to_close);
    }
    assert_eq!(total.unanswered, 0, "{total:?}");
    assert_eq!(told, 64, "every connection was asked to close: {total:?}");
    assert!(total.answered >= 2000, "{total:?}");
    let status = host
        .wait(Duration::from_secs(20))
        .expect("exits after the drain");
    assert!(status.success(), "{status:?}");
}
