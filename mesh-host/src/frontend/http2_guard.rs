//! What h2 reads and writes on an HTTP/2 connection, with Envoy's flood limits
//! ([`super::http2_frames`]) watched on the way. When a client breaks one, h2 is given
//! nothing more: a GOAWAY with `ENHANCE_YOUR_CALM` goes out between two of h2's frames,
//! and the connection ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::http2_frames::{Flood, GOAWAY_PATIENCE, Http2Limits, Inbound, Outbound, goaway};

/// An HTTP/2 connection as h2 sees it.
pub(super) struct Http2Guard<I> {
    io: I,
    inbound: Inbound,
    outbound: Outbound,
    flood: Option<Flood>,
    goaway: Vec<u8>,
    written: usize,
    /// How long the frame h2 is writing may take to end once a flood is seen.
    patience: Option<Pin<Box<Sleep>>>,
    peer: SocketAddr,
}

impl<I> Http2Guard<I> {
    pub(super) fn new(io: I, limits: Http2Limits, peer: SocketAddr) -> Self {
        Self {
            io,
            inbound: Inbound::new(limits),
            outbound: Outbound::default(),
            flood: None,
            goaway: Vec::new(),
            written: 0,
            patience: None,
            peer,
        }
    }

    fn flooded(&mut self, flood: Flood) {
        tracing::info!(peer = %self.peer, "HTTP/2 flood ({flood}): sending GOAWAY and closing");
        self.goaway = goaway(self.inbound.last_stream(), flood);
        self.flood = Some(flood);
    }

    fn aborted(&self) -> io::Error {
        let flood = self
            .flood
            .map(|flood| flood.to_string())
            .unwrap_or_default();
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("HTTP/2 flood: {flood}"),
        )
    }
}

impl<I: AsyncWrite + Unpin> Http2Guard<I> {
    /// Writes the GOAWAY once h2's current frame has ended, then flushes.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.written == 0 && self.outbound.frame_left() > 0 {
            let patience = self
                .patience
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(GOAWAY_PATIENCE)));
            ready!(patience.as_mut().poll(cx));
            return Poll::Ready(Err(self.aborted()));
        }
        while self.written < self.goaway.len() {
            let written =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.goaway[self.written..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += written;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for Http2Guard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.flood.is_none() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            match this
                .inbound
                .inspect(&buf.filled()[before..], &this.outbound)
            {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(flood) => {
                    buf.set_filled(before);
                    this.flooded(flood);
                }
            }
        }
        ready!(this.poll_goaway(cx))?;
        Poll::Ready(Err(this.aborted()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Http2Guard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let allowed = match this.flood {
            None => buf.len(),
            // Only the rest of the frame being written, then the GOAWAY.
            Some(_) if this.written == 0 => this.outbound.frame_left().min(buf.len()),
            Some(_) => 0,
        };
        if allowed == 0 {
            ready!(this.poll_goaway(cx))?;
            return Poll::Ready(Err(this.aborted()));
        }
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..allowed]))?;
        this.outbound.observe(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.flood.is_some() {
            let first = bufs
                .iter()
                .find(|buf| !buf.is_empty())
                .map_or(&[][..], |buf| &buf[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let written = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = written;
        for buf in bufs {
            let seen = left.min(buf.len());
            this.outbound.observe(&buf[..seen]);
            left -= seen;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(written))
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    fn ping() -> Vec<u8> {
        let mut frame = vec![0, 0, 8, 0x6, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&[0; 8]);
        frame
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_answered_with_goaway_between_frames() {
        let (mut client, server) = duplex(1 << 20);
        let limits = Http2Limits {
            max_outbound_control_frames: 3,
            ..Http2Limits::default()
        };
        let mut guard = Http2Guard::new(server, limits, SocketAddr::from(([127, 0, 0, 1], 1)));
        // h2 is half-way through writing a frame when the flood is seen.
        let settings = [0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        guard.write_all(&settings[..5]).await.expect("first half");
        let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..4 {
            flood.extend_from_slice(&ping());
        }
        client.write_all(&flood).await.expect("flood");
        let mut read = vec![0u8; 4096];
        let error = guard.read(&mut read).await.expect_err("flooded");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        let written = guard.write(&settings[5..]).await.expect("the frame ends");
        assert_eq!(written, settings.len() - 5);
        assert!(
            guard.write(b"more").await.is_err(),
            "nothing after the GOAWAY"
        );
        drop(guard);
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.expect("read");
        assert_eq!(&seen[..settings.len()], &settings);
        let goaway = &seen[settings.len()..];
        assert_eq!(goaway[3], 0x7, "GOAWAY");
        assert_eq!(&goaway[13..17], &0xbu32.to_be_bytes(), "ENHANCE_YOUR_CALM");
    }
}
