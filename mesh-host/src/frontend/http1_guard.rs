//! What hyper reads on an HTTP/1 connection: the client's bytes after
//! [`RequestStream`] has checked and rewritten them. A refused request ends what hyper
//! reads; once hyper has answered every request before it and closes the connection, the
//! guard writes the refusal's answer (Envoy's status and body) and `connection: close`.
//! The guard also runs Envoy's `request_headers_timeout`: from the first byte of a head
//! to its last, answered with 408 when it passes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::http_settings::ServerHeader;
use super::http1_framing::RequestStream;
use crate::shared::Failure;

/// How much is read from the client at once.
const READ_SIZE: usize = 16 * 1024;

/// An HTTP/1 connection as hyper sees it.
pub(super) struct Http1Guard<I> {
    io: I,
    requests: RequestStream,
    buffer: Box<[u8]>,
    client_closed: bool,
    head_timeout: Option<Duration>,
    head_timer: Option<Pin<Box<Sleep>>>,
    /// The answer to a refused request, written when hyper closes the connection.
    answer: Vec<u8>,
    written: usize,
    server_header: ServerHeader,
    peer: SocketAddr,
}

impl<I> Http1Guard<I> {
    pub(super) fn new(
        io: I,
        requests: RequestStream,
        head_timeout: Option<Duration>,
        server_header: ServerHeader,
        peer: SocketAddr,
    ) -> Self {
        Self {
            io,
            requests,
            buffer: vec![0; READ_SIZE].into_boxed_slice(),
            client_closed: false,
            head_timeout,
            head_timer: None,
            answer: Vec::new(),
            written: 0,
            server_header,
            peer,
        }
    }

    fn refuse(&mut self, failure: &Failure) {
        tracing::debug!(peer = %self.peer, status = %failure.status(), "{failure}");
        self.answer = answer_bytes(failure, &self.server_header);
    }

    /// Runs the head timer while a head arrives; whether it has passed.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.head_timeout.filter(|_| self.requests.in_head()) else {
            self.head_timer = None;
            return false;
        };
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        timer.as_mut().poll(cx).is_ready()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Http1Guard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.requests.has_output() {
                this.requests.take(buf);
                return Poll::Ready(Ok(()));
            }
            // End of input for hyper: it finishes what it has, then closes.
            if this.requests.refused() || this.client_closed {
                return Poll::Ready(Ok(()));
            }
            if this.head_timed_out(cx) {
                this.requests.refuse_rest();
                this.refuse(&Failure::RequestHeaderTimeout);
                continue;
            }
            let mut read = ReadBuf::new(&mut this.buffer);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            let filled = read.filled().len();
            if filled == 0 {
                this.client_closed = true;
                continue;
            }
            if let Err(refusal) = this.requests.feed(&this.buffer[..filled]) {
                let failure = Failure::Codec {
                    status: refusal.rejection.status,
                    details: refusal.rejection.details,
                };
                if refusal.handed_over {
                    tracing::debug!(peer = %this.peer, "{failure}; closing after its answer");
                } else {
                    this.refuse(&failure);
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Http1Guard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.written < this.answer.len() {
            let written =
                ready!(Pin::new(&mut this.io).poll_write(cx, &this.answer[this.written..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.written += written;
        }
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The host's answer to a request hyper never saw, as HTTP/1.1 bytes.
fn answer_bytes(failure: &Failure, server_header: &ServerHeader) -> Vec<u8> {
    let mut response = failure.response(false);
    server_header.apply(response.headers_mut());
    let body = failure.text();
    let status = response.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::super::http1_head::Http1Rules;
    use super::*;

    fn guard(
        io: tokio::io::DuplexStream,
        head_timeout: Option<Duration>,
    ) -> Http1Guard<tokio::io::DuplexStream> {
        let requests = RequestStream::new(Http1Rules::default(), 8192);
        let server = ServerHeader::Overwrite(http::HeaderValue::from_static("mesh-host"));
        Http1Guard::new(
            io,
            requests,
            head_timeout,
            server,
            SocketAddr::from(([127, 0, 0, 1], 1)),
        )
    }

    #[tokio::test]
    async fn requests_before_a_refused_one_pass_and_the_refusal_is_answered_at_close() {
        let (mut client, server) = duplex(65536);
        let mut guard = guard(server, None);
        client
            .write_all(
                b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await
            .expect("write");
        let mut seen = Vec::new();
        guard.read_to_end(&mut seen).await.expect("read");
        assert_eq!(seen, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
        guard.shutdown().await.expect("shutdown");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("answer");
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nserver: mesh-host\r\n"), "{answer}");
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nBad Request"), "{answer}");
    }

    #[tokio::test]
    async fn a_closed_connection_without_a_refusal_writes_nothing_more() {
        let (mut client, server) = duplex(65536);
        let mut guard = guard(server, None);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        drop(client.shutdown().await);
        let mut seen = Vec::new();
        guard.read_to_end(&mut seen).await.expect("read");
        guard.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_stops_arriving_is_answered_408_at_the_timeout() {
        let (mut client, server) = duplex(65536);
        let mut guard = guard(server, Some(Duration::from_secs(10)));
        client
            .write_all(b"GET / HTTP/1.1\r\nHo")
            .await
            .expect("write");
        let mut seen = Vec::new();
        let started = tokio::time::Instant::now();
        guard.read_to_end(&mut seen).await.expect("read");
        assert!(seen.is_empty(), "hyper never sees the partial head");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        guard.shutdown().await.expect("shutdown");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("answer");
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with("request header timeout"), "{answer}");
    }
}
