//! Body wrappers for cross-cutting concerns: holding a resource for as long as
//! a streaming body lives, bounding the gap between frames, and converting
//! between the front end's and the runtime's body types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

pin_project! {
    /// A body that keeps `guard` alive until the body is finished or dropped,
    /// so a limit (an in-flight permit, a drain guard) covers the whole
    /// streaming response, not just its head.
    pub struct HoldPermit<B, G> {
        #[pin]
        body: B,
        guard: Option<G>,
    }
}

impl<B, G> HoldPermit<B, G> {
    /// Wraps `body`, releasing `guard` when the body ends.
    pub fn new(body: B, guard: G) -> Self {
        Self {
            body,
            guard: Some(guard),
        }
    }
}

impl<B: Body, G> Body for HoldPermit<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project! {
    /// A body that fails with `connection-read-timeout` when no frame arrives
    /// within `limit` of the previous one (or of the response head): the
    /// `between-bytes-timeout` a component sets in its request options.
    pub struct BetweenBytes<B> {
        #[pin]
        body: B,
        #[pin]
        idle: Sleep,
        limit: Duration,
    }
}

impl<B> BetweenBytes<B> {
    /// Wraps `body`; the first frame is due within `limit` from now.
    pub fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            idle: tokio::time::sleep(limit),
            limit,
        }
    }
}

impl<B: Body<Error = HttpError>> Body for BetweenBytes<B> {
    type Data = B::Data;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                this.idle.as_mut().reset(Instant::now() + *this.limit);
                Poll::Ready(Some(frame))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The body type the front end answers with.
pub type ResponseBody = UnsyncBoxBody<Bytes, HttpError>;

/// A response body with fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty response body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Fails a body's stream with `HTTP-request-body-size` once it exceeds `limit` bytes (a
/// workload's own limit, below the listener's).
pub fn limit_body(body: WasiBody, limit: u64) -> WasiBody {
    let bound = usize::try_from(limit).unwrap_or(usize::MAX);
    Limited::new(body, bound)
        .map_err(move |error| match error.downcast::<HttpError>() {
            Ok(inner) => *inner,
            Err(other) if other.is::<LengthLimitError>() => {
                HttpError::HttpRequestBodySize(Some(limit))
            }
            Err(other) => HttpError::InternalError(Some(other.to_string())),
        })
        .boxed_unsync()
}

/// Turns an incoming hyper body (possibly wrapped) into the runtime's body
/// type, failing the stream with `HTTP-request-body-size` once it exceeds
/// `limit` bytes.
pub fn limited_request_body<B>(body: B, limit: usize) -> WasiBody
where
    B: Body<Data = Bytes, Error = hyper::Error> + Send + 'static,
{
    Limited::new(body, limit)
        .map_err(move |error| {
            if error.is::<LengthLimitError>() {
                HttpError::HttpRequestBodySize(Some(limit as u64))
            } else {
                match error.downcast::<hyper::Error>() {
                    Ok(hyper_error) => HttpError::Hyper(*hyper_error),
                    Err(other) => HttpError::InternalError(Some(other.to_string())),
                }
            }
        })
        .boxed_unsync()
}
