//! Raw HTTP/1 over a socket: bytes no well-behaved client would send, and what the server
//! did with them (the statuses it answered and whether it kept the connection).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the first answer may take.
const FIRST_ANSWER: Duration = Duration::from_secs(10);
/// With one answer read, how long to wait for more (pipelined requests).
const MORE_ANSWERS: Duration = Duration::from_millis(400);
/// How long a server may take to close a connection it has decided to close (Envoy
/// waits up to 1 s for the client to close first).
const CLOSE_WAIT: Duration = Duration::from_secs(4);

/// A request sent after the case's bytes to tell a kept connection from a closed one.
const PROBE: &[u8] = b"GET / HTTP/1.1\r\nHost: probe.test\r\n\r\n";

/// What a server did with some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The statuses it answered, in order.
    pub statuses: Vec<u16>,
    /// It closed the connection (rather than answer a further request on it).
    pub closed: bool,
}

/// Sends `bytes` on a new connection to `addr` and reads every answer.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<Exchange, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .write_all(bytes)
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut reader = Reader::default();
    let mut statuses = Vec::new();
    loop {
        let wait = if statuses.is_empty() {
            FIRST_ANSWER
        } else {
            MORE_ANSWERS
        };
        match reader.response(&mut stream, wait).await? {
            Read::Response { status, .. } => statuses.push(status),
            Read::Closed => {
                return Ok(Exchange {
                    statuses,
                    closed: true,
                });
            }
            Read::Idle if statuses.is_empty() => return Err("no answer".into()),
            Read::Idle => break,
        }
    }
    // A server that closes may write nothing more; one that keeps the connection
    // answers the probe.
    if stream.write_all(PROBE).await.is_err() {
        return Ok(Exchange {
            statuses,
            closed: true,
        });
    }
    let closed = match reader.response(&mut stream, CLOSE_WAIT).await? {
        Read::Response { .. } => false,
        Read::Closed => true,
        Read::Idle => return Err("neither answered the probe nor closed".into()),
    };
    Ok(Exchange { statuses, closed })
}

enum Read {
    Response { status: u16 },
    Closed,
    Idle,
}

#[derive(Default)]
struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    /// Fills the buffer; `false` at EOF (or reset), `None` when nothing came in `wait`.
    async fn fill(&mut self, stream: &mut TcpStream, wait: Duration) -> Option<bool> {
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Err(_) => None,
            Ok(Ok(0) | Err(_)) => Some(false),
            Ok(Ok(read)) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                Some(true)
            }
        }
    }

    async fn response(&mut self, stream: &mut TcpStream, wait: Duration) -> Result<Read, String> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            match self.fill(stream, wait).await {
                None => return Ok(Read::Idle),
                Some(false) if self.buffer.is_empty() => return Ok(Read::Closed),
                Some(false) => return Err("connection closed inside a response head".into()),
                Some(true) => {}
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not a response: {head:?}"))?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        self.buffer.drain(..head_end);
        if let Some(length) = header("content-length") {
            let length: usize = length.parse().map_err(|_| "bad content-length")?;
            while self.buffer.len() < length {
                if self.fill(stream, FIRST_ANSWER).await != Some(true) {
                    return Err("connection closed inside a response body".into());
                }
            }
            self.buffer.drain(..length);
        } else if header("transfer-encoding").is_some_and(|coding| coding.contains("chunked")) {
            // The bodies read here are text, where the last-chunk marker cannot appear.
            let end = loop {
                if self.buffer.starts_with(b"0\r\n\r\n") {
                    break 5;
                }
                if let Some(end) = find(&self.buffer, b"\r\n0\r\n\r\n") {
                    break end + 7;
                }
                if self.fill(stream, FIRST_ANSWER).await != Some(true) {
                    return Err("connection closed inside a chunked body".into());
                }
            };
            self.buffer.drain(..end);
        }
        Ok(Read::Response { status })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
