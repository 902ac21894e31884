//! Telling HTTP/2 (prior knowledge) from HTTP/1 by a connection's first bytes, as
//! Envoy's HTTP inspector does, and handing the bytes read on to the codec.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// Reads until the first bytes tell the protocol: the whole HTTP/2 preface, or a byte
/// that departs from it. `None` when the client closed first. The bytes read are in
/// `seen`.
pub(super) async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    seen: &mut Vec<u8>,
) -> io::Result<Option<Protocol>> {
    let mut chunk = [0u8; PREFACE.len()];
    loop {
        let matched = seen.len().min(PREFACE.len());
        if seen[..matched] != PREFACE[..matched] {
            return Ok(Some(Protocol::Http1));
        }
        if matched == PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        let read = io.read(&mut chunk[..PREFACE.len() - matched]).await?;
        if read == 0 {
            return Ok(None);
        }
        seen.extend_from_slice(&chunk[..read]);
    }
}

/// A stream whose first bytes were already read: they are read again first.
pub(super) struct Prefixed<I> {
    prefix: Vec<u8>,
    read: usize,
    io: I,
}

impl<I> Prefixed<I> {
    pub(super) fn new(prefix: Vec<u8>, io: I) -> Self {
        Self {
            prefix,
            read: 0,
            io,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            this.read += count;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
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
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn detect(input: &[&[u8]]) -> (Option<Protocol>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        for piece in input {
            client.write_all(piece).await.expect("write");
        }
        drop(client);
        let mut seen = Vec::new();
        let protocol = sniff(&mut server, &mut seen).await.expect("read");
        (protocol, seen)
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_anything_else_http1() {
        let (protocol, _) = detect(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n\0\0"]).await;
        assert_eq!(protocol, Some(Protocol::Http2));
        let (protocol, seen) = detect(&[b"GET / HTTP/1.1\r\n"]).await;
        assert_eq!(protocol, Some(Protocol::Http1));
        assert!(!seen.is_empty());
        let (protocol, _) = detect(&[b"PRI * HTTP/1.1\r\n"]).await;
        assert_eq!(protocol, Some(Protocol::Http1));
        let (protocol, _) = detect(&[b"PRI * HT"]).await;
        assert_eq!(protocol, None, "closed inside the preface");
    }

    #[tokio::test]
    async fn the_bytes_read_are_read_again() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b" world").await.expect("write");
        drop(client);
        let mut prefixed = Prefixed::new(b"hello".to_vec(), server);
        let mut all = String::new();
        prefixed.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
