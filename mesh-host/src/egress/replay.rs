//! A request body that can be sent again: retries need the bytes an earlier
//! try already consumed. The body streams to the first try as it arrives
//! (a streaming gRPC call is not held back) while a copy is kept, up to a
//! limit; a later try replays the copy, then goes on reading the source.
//! Past the limit the copy is dropped and the request is not retried, as
//! Envoy does when a request outgrows its buffer limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Envoy's default per-request buffer limit.
pub(super) const DEFAULT_REPLAY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Recorded {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Recorded::Data(data) => Frame::data(data.clone()),
            Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
        }
    }
}

struct Shared {
    source: WasiBody,
    recorded: Vec<Recorded>,
    recorded_bytes: usize,
    limit: usize,
    overflowed: bool,
    ended: bool,
}

/// One try's view of a replayable body.
pub(super) struct ReplayBody {
    shared: Arc<Mutex<Shared>>,
    position: usize,
}

impl ReplayBody {
    /// Wraps `source`, keeping up to `limit` bytes for replays.
    pub(super) fn new(source: WasiBody, limit: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                source,
                recorded: Vec::new(),
                recorded_bytes: 0,
                limit,
                overflowed: false,
                ended: false,
            })),
            position: 0,
        }
    }

    /// A body for another try, starting from the first byte; `None` once
    /// the copy was dropped for exceeding the limit.
    pub(super) fn replay(&self) -> Option<ReplayBody> {
        let overflowed = self
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .overflowed;
        (!overflowed).then(|| ReplayBody {
            shared: self.shared.clone(),
            position: 0,
        })
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let mut shared = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if !shared.overflowed
            && let Some(recorded) = shared.recorded.get(this.position)
        {
            this.position += 1;
            return Poll::Ready(Some(Ok(recorded.frame())));
        }
        if shared.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut shared.source).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if !shared.overflowed => {
                let recorded = if let Some(data) = frame.data_ref() {
                    shared.recorded_bytes += data.len();
                    Recorded::Data(data.clone())
                } else if let Some(trailers) = frame.trailers_ref() {
                    Recorded::Trailers(trailers.clone())
                } else {
                    return polled;
                };
                if shared.recorded_bytes > shared.limit {
                    shared.overflowed = true;
                    shared.recorded = Vec::new();
                } else {
                    shared.recorded.push(recorded);
                    this.position += 1;
                }
            }
            Poll::Ready(None) => shared.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.ended && (shared.overflowed || self.position >= shared.recorded.len())
    }

    fn size_hint(&self) -> SizeHint {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if self.position == 0 && shared.recorded.is_empty() && !shared.ended {
            shared.source.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn source(chunks: &[&'static str], trailers: bool) -> WasiBody {
        let mut frames: Vec<Result<Frame<Bytes>, HttpError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        if trailers {
            let mut map = HeaderMap::new();
            map.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push(Ok(Frame::trailers(map)));
        }
        StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    async fn read(body: ReplayBody) -> (Vec<u8>, Option<HeaderMap>) {
        let collected = body.collect().await.expect("body");
        let trailers = collected.trailers().cloned();
        (collected.to_bytes().to_vec(), trailers)
    }

    #[tokio::test]
    async fn a_replay_sees_every_frame_including_trailers() {
        let first = ReplayBody::new(source(&["ab", "cd"], true), 1024);
        let second = first.replay().expect("within limit");
        let (bytes, trailers) = read(first).await;
        assert_eq!(bytes, b"abcd");
        assert!(trailers.is_some());
        let (bytes, trailers) = read(second).await;
        assert_eq!(bytes, b"abcd");
        assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
    }

    #[tokio::test]
    async fn a_try_dropped_midway_is_continued_by_the_replay() {
        let mut first = ReplayBody::new(source(&["ab", "cd", "ef"], false), 1024);
        let frame = first.frame().await.expect("frame").expect("ok");
        assert_eq!(frame.into_data().expect("data"), "ab");
        let second = first.replay().expect("within limit");
        drop(first);
        assert_eq!(read(second).await.0, b"abcdef");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_cannot_be_replayed() {
        let first = ReplayBody::new(source(&["abcd", "efgh"], false), 6);
        let (bytes, _) = read(first.replay().expect("nothing read yet")).await;
        assert_eq!(bytes, b"abcdefgh");
        assert!(first.replay().is_none());
    }
}
