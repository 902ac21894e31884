//! mesh-host's HTTP/1 codec against Envoy 1.40's, over raw sockets: framing that two
//! parsers could read differently (Content-Length with Transfer-Encoding, codings other
//! than chunked, malformed chunk sizes and lengths), request lines, header names and
//! values, `Host`, line ends, pipelining. Both proxies load the same bootstrap and forward
//! to the same upstream; for every case they must answer the same statuses and both keep,
//! or both close, the connection. Each case also states what Envoy does, so the list
//! documents Envoy's rules and a change in Envoy shows up as such.

use std::net::SocketAddr;

use mesh_host_tests::component;
use mesh_host_tests::differential::{self, ListenerSpec};
use mesh_host_tests::echo_upstream::EchoUpstream;
use mesh_host_tests::envoy::{Envoy, free_port};
use mesh_host_tests::process::MeshHost;
use mesh_host_tests::raw_http1::{Exchange, exchange};

const ROUTES: &str = r#"
name: codec
virtual_hosts:
- {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: echo}}]}
"#;

/// A malformed (or deliberately odd) request and Envoy's answer to it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    statuses: &'static [u16],
    closed: bool,
}

/// Served: 200 and the connection kept.
fn served(name: &'static str, bytes: &str) -> Case {
    answered(name, bytes, &[200], false)
}

/// Refused with `status` and the connection closed.
fn refused(name: &'static str, bytes: &str, status: u16) -> Case {
    let statuses: &'static [u16] = match status {
        400 => &[400],
        426 => &[426],
        431 => &[431],
        501 => &[501],
        other => panic!("no case refuses with {other}"),
    };
    answered(name, bytes, statuses, true)
}

fn answered(name: &'static str, bytes: &str, statuses: &'static [u16], closed: bool) -> Case {
    Case {
        name,
        // Every byte below 0x100 as itself (obs-text included).
        bytes: bytes
            .chars()
            .map(|c| u8::try_from(u32::from(c)).expect("one byte"))
            .collect(),
        statuses,
        closed,
    }
}

fn post(headers: &str, body: &str) -> String {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n\r\n{body}")
}

fn chunked(body: &str) -> String {
    post("Transfer-Encoding: chunked", body)
}

fn get_with(header: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n")
}

fn cases() -> Vec<Case> {
    vec![
        served("plain get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        served("content-length body", &post("Content-Length: 5", "hello")),
        served("chunked body", &chunked("5\r\nhello\r\n0\r\n\r\n")),
        // Framing.
        refused(
            "content-length then chunked",
            &post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        refused(
            "chunked then content-length",
            &post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        refused(
            "identity with content-length",
            &post("Transfer-Encoding: identity\r\nContent-Length: 5", "hello"),
            400,
        ),
        refused(
            "identity, chunked",
            &post(
                "Transfer-Encoding: identity, chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        refused(
            "chunked, identity",
            &post(
                "Transfer-Encoding: chunked, identity",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        refused(
            "transfer-encoding repeated",
            &post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        refused(
            "chunked, chunked",
            &post(
                "Transfer-Encoding: chunked, chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        refused(
            "gzip, chunked",
            &post(
                "Transfer-Encoding: gzip, chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        refused("gzip alone", &post("Transfer-Encoding: gzip", "hello"), 501),
        refused(
            "xchunked",
            &post("Transfer-Encoding: xchunked", "5\r\nhello\r\n0\r\n\r\n"),
            501,
        ),
        refused(
            "empty transfer-encoding",
            &post("Transfer-Encoding:", ""),
            501,
        ),
        served(
            "Chunked in another case",
            &post("Transfer-Encoding: Chunked", "5\r\nhello\r\n0\r\n\r\n"),
        ),
        refused(
            "vertical tab after chunked",
            &post("Transfer-Encoding: chunked\u{b}", "5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "space before the colon of transfer-encoding",
            &post("Transfer-Encoding : chunked", "5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "two different content-lengths",
            &post("Content-Length: 5\r\nContent-Length: 6", "hello!"),
            400,
        ),
        refused(
            "two equal content-lengths",
            &post("Content-Length: 5\r\nContent-Length: 5", "hello"),
            400,
        ),
        refused(
            "content-length list",
            &post("Content-Length: 5, 5", "hello"),
            400,
        ),
        refused(
            "content-length with a sign",
            &post("Content-Length: +5", "hello"),
            400,
        ),
        refused(
            "negative content-length",
            &post("Content-Length: -5", "hello"),
            400,
        ),
        refused(
            "content-length not a number",
            &post("Content-Length: abc", "hello"),
            400,
        ),
        refused(
            "content-length with a space inside",
            &post("Content-Length: 5 5", "hello"),
            400,
        ),
        refused(
            "content-length too large",
            &post("Content-Length: 99999999999999999999999", "hello"),
            400,
        ),
        refused("empty content-length", &post("Content-Length:", ""), 400),
        served(
            "content-length with leading zeros",
            &post("Content-Length: 0005", "hello"),
        ),
        // Chunks.
        refused(
            "chunk size not hex",
            &chunked("g\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "negative chunk size",
            &chunked("-5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "chunk size overflow",
            &chunked("ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "chunk size with 0x",
            &chunked("0x5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "chunk size after a space",
            &chunked(" 5\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused("empty chunk size", &chunked("\r\nhello\r\n0\r\n\r\n"), 400),
        refused(
            "chunk size line ended by LF",
            &chunked("5\nhello\n0\n\n"),
            400,
        ),
        refused(
            "chunk data not followed by a line end",
            &chunked("5\r\nhelloXX0\r\n\r\n"),
            400,
        ),
        served(
            "chunk size then a space",
            &chunked("5 \r\nhello\r\n0\r\n\r\n"),
        ),
        served("chunk extension", &chunked("5;a=b\r\nhello\r\n0\r\n\r\n")),
        served(
            "chunk extension with a control byte",
            &chunked("5;\u{1}\r\nhello\r\n0\r\n\r\n"),
        ),
        served("trailers", &chunked("5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")),
        // Line ends and layout.
        served("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n"),
        served(
            "bare LF after a header",
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        ),
        refused("bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        served(
            "two spaces in the request line",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        served(
            "tabs in the request line",
            "GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        served(
            "empty lines before the request",
            "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        served("folded header", &get_with("X-A: b\r\n c")),
        refused(
            "first header folded",
            "GET / HTTP/1.1\r\n X-A: b\r\nHost: a\r\n\r\n",
            400,
        ),
        // Host.
        served(
            "two different hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        refused(
            "host list with a space",
            "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
            400,
        ),
        refused(
            "host with a space",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
        ),
        refused(
            "host with a quote",
            "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n",
            400,
        ),
        refused("no host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400),
        served(
            "absolute target naming another host",
            "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        // Header names and values.
        refused("space before a colon", &get_with("X-A : b"), 400),
        refused("NUL in a value", &get_with("X-A: b\u{0}c"), 400),
        refused("control byte in a value", &get_with("X-A: b\u{1}c"), 400),
        refused("DEL in a value", &get_with("X-A: b\u{7f}c"), 400),
        served("obs-text in a value", &get_with("X-A: b\u{e9}c")),
        refused("parenthesis in a name", &get_with("X(A): b"), 400),
        refused("empty name", &get_with(": b"), 400),
        refused("no colon", &get_with("XA"), 400),
        served("underscore in a name", &get_with("X_A: b")),
        refused(
            "headers too large",
            &get_with(&format!("X-A: {}", "a".repeat(70_000))),
            431,
        ),
        // Request line.
        refused("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        refused("unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        refused(
            "method with a parenthesis",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "HTTP/1.0 by default",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            426,
        ),
        refused(
            "HTTP/1.0 with chunked",
            "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            426,
        ),
        refused("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 426),
        refused(
            "HTTP/2.0 in a request line",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            426,
        ),
        refused("HTTP/0.9", "GET /\r\n\r\n", 426),
        refused(
            "lowercase version",
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "space in the target",
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "control byte in the target",
            "GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "fragment in the target",
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "asterisk target with GET",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "target without a slash",
            "GET a HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "byte above 0x7f in the target",
            "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        served(
            "backslash in the target",
            "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        refused(
            "CONNECT to a path",
            "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        // Pipelining.
        answered(
            "pipelined request refused after a good one",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[200, 400],
            true,
        ),
        answered(
            "two good pipelined requests",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
            &[200, 200],
            false,
        ),
    ]
}

/// The connection manager settings that relax the codec's rules
/// (`http_protocol_options`).
const LENIENT: &str = "http_protocol_options: { accept_http_10: true, allow_chunked_length: true, allow_custom_methods: true }";

/// Requests the default rules refuse, on a listener whose connection manager allows them.
fn lenient_cases() -> Vec<Case> {
    vec![
        answered(
            "HTTP/1.0 with accept_http_10",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            &[200],
            true,
        ),
        served(
            "HTTP/1.0 keep-alive with accept_http_10",
            "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        ),
        served(
            "content-length then chunked with allow_chunked_length",
            &post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        served(
            "unknown method with allow_custom_methods",
            "FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        served(
            "lowercase method with allow_custom_methods",
            "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        refused(
            "content-length with gzip, chunked despite allow_chunked_length",
            &post(
                "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_and_mesh_host_answer_malformed_http1_alike() {
    let cases = cases();
    let malformed = cases.iter().filter(|case| case.closed).count();
    assert!(malformed >= 40, "{malformed} malformed cases");

    let upstream = EchoUpstream::start("echo").await.expect("echo upstream");
    let bootstrap = |port, lenient_port| {
        differential::bootstrap(
            &[
                ListenerSpec {
                    name: "main",
                    port,
                    routes: ROUTES,
                    filters: "",
                    tls: None,
                    manager: "",
                },
                ListenerSpec {
                    name: "lenient",
                    port: lenient_port,
                    routes: ROUTES,
                    filters: "",
                    tls: None,
                    manager: LENIENT,
                },
            ],
            std::slice::from_ref(&upstream),
        )
    };
    let (envoy_port, envoy_lenient_port) = (free_port(), free_port());
    let Some(envoy) = Envoy::start(&bootstrap(envoy_port, envoy_lenient_port)).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let (mesh_port, mesh_lenient_port) = (free_port(), free_port());
    std::fs::write(&path, bootstrap(mesh_port, mesh_lenient_port)).expect("write bootstrap");
    let _mesh = MeshHost::spawn(&[
        "run".into(),
        "--bootstrap".into(),
        path.display().to_string(),
        "--workload".into(),
        format!("unused={}", component("hello").display()),
    ]);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let runs = [
        (cases, local(envoy_port), local(mesh_port)),
        (
            lenient_cases(),
            local(envoy_lenient_port),
            local(mesh_lenient_port),
        ),
    ];

    let mut envoy_unexpected = Vec::new();
    let mut disagreements = Vec::new();
    for (case, envoy_addr, mesh_addr) in runs
        .iter()
        .flat_map(|(cases, envoy, mesh)| cases.iter().map(move |case| (case, *envoy, *mesh)))
    {
        let expected = Exchange {
            statuses: case.statuses.to_vec(),
            closed: case.closed,
        };
        let from_envoy = exchange(envoy_addr, &case.bytes).await;
        let from_mesh = exchange(mesh_addr, &case.bytes).await;
        if from_envoy.as_ref() != Ok(&expected) {
            envoy_unexpected.push(format!(
                "{}: expected {expected:?}, Envoy {from_envoy:?}",
                case.name
            ));
        }
        if from_envoy != from_mesh {
            disagreements.push(format!(
                "{}: Envoy {from_envoy:?}, mesh-host {from_mesh:?}",
                case.name
            ));
        }
    }
    assert!(
        envoy_unexpected.is_empty() && disagreements.is_empty(),
        "Envoy departed from the cases:\n{}\n\nmesh-host departed from Envoy:\n{}\n{}",
        envoy_unexpected.join("\n"),
        disagreements.join("\n"),
        if envoy_unexpected.is_empty() {
            String::new()
        } else {
            envoy.log()
        }
    );
}
