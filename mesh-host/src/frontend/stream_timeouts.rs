//! The per-stream timers of Envoy's HTTP connection manager:
//! `stream_idle_timeout` (no bytes either way for that long) and
//! `request_timeout` (the whole request must arrive within it).
//!
//! Neither fits a tower `Timeout` layer or hyper's `header_read_timeout`
//! (which also runs while a keep-alive connection waits for its next
//! request): the idle timer restarts on every body frame in either
//! direction, and the request timer stops when the request body has
//! arrived. So both watch the bodies: the request body (read as it arrives)
//! and the response body report activity to one shared clock, and whoever
//! awaits the response (the head first, then the body) checks that clock
//! when a deadline passes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error as HttpError;

use crate::body::ResponseBody;
use crate::shared::Failure;

/// A chain's stream timers; `None` disables one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// How long a stream may see no activity (no request or response body
    /// frame, no response head) before it is ended. Before the response
    /// starts, the answer is a 408 while the request is still arriving and
    /// a 504 once it has arrived (Envoy 1.40 does the same); after, the
    /// stream is reset (HTTP/2) or the connection closed (HTTP/1.1).
    /// Envoy's default is 5 minutes.
    pub idle: Option<Duration>,
    /// How long the whole request may take to arrive, from the moment its
    /// head is read: 408 when it is exceeded. The timer stops when the last
    /// byte of the request arrives or the response starts. Disabled by
    /// default.
    pub request: Option<Duration>,
}

/// Which timer ended a stream before its response started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StreamTimeout {
    /// `stream_idle_timeout` passed with no activity.
    #[error("stream timeout")]
    Idle {
        /// The whole request had arrived.
        request_complete: bool,
    },
    /// `request_timeout` passed before the request was complete.
    #[error("request timeout")]
    Request,
}

/// The activity of one stream, shared by its request and response bodies.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the latest activity.
    last_ms: AtomicU64,
    /// The request body has ended.
    request_complete: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// The timers of one stream, started when its request head is read.
#[derive(Debug)]
pub(super) struct StreamTimer {
    timeouts: StreamTimeouts,
    /// `None` when both timers are disabled: nothing is tracked at all.
    activity: Option<Arc<Activity>>,
}

impl StreamTimer {
    /// Starts the timers.
    pub(super) fn start(timeouts: StreamTimeouts) -> Self {
        let activity = (timeouts.idle.is_some() || timeouts.request.is_some()).then(|| {
            Arc::new(Activity {
                started: Instant::now(),
                last_ms: AtomicU64::new(0),
                request_complete: AtomicBool::new(false),
            })
        });
        Self { timeouts, activity }
    }

    /// The request body as the component reads it. With a timer running,
    /// a task reads the client's body ahead of the component (a few frames,
    /// as Envoy buffers what it receives), so that bytes arriving count as
    /// activity and the last one stops the request timer, however fast the
    /// component reads.
    pub(super) fn watch_request<B>(&self, body: B) -> RequestBody<B>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Send + 'static,
    {
        let Some(activity) = &self.activity else {
            return RequestBody::Direct { body };
        };
        if body.is_end_stream() {
            // A request without a body is whole once its head is read.
            activity.request_complete.store(true, Ordering::Relaxed);
            return RequestBody::Direct { body };
        }
        let (frames, receiver) = mpsc::channel(READ_AHEAD_FRAMES);
        tokio::spawn(read_ahead(body, frames, activity.clone()));
        RequestBody::ReadAhead { receiver }
    }

    /// Awaits the response head under both timers, then hands back the
    /// response with its body under the idle timer.
    pub(super) async fn guard<F>(
        self,
        head: F,
    ) -> Result<http::Response<ResponseBody>, StreamTimeout>
    where
        F: Future<Output = http::Response<ResponseBody>>,
    {
        let Some(activity) = self.activity.clone() else {
            return Ok(head.await);
        };
        let mut head = std::pin::pin!(head);
        let response = loop {
            let Some(deadline) = self.next_deadline(&activity) else {
                break head.await;
            };
            tokio::select! {
                response = &mut head => break response,
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(timeout) = self.expired(&activity, Instant::now()) {
                        return Err(timeout);
                    }
                }
            }
        };
        activity.touch();
        Ok(match self.timeouts.idle {
            None => response,
            Some(idle) => response.map(|body| {
                IdleResponseBody {
                    inner: body,
                    sleep: tokio::time::sleep_until(activity.idle_deadline(idle)),
                    activity,
                    idle,
                }
                .boxed_unsync()
            }),
        })
    }

    /// The earliest moment a timer could fire, `None` when none can.
    fn next_deadline(&self, activity: &Activity) -> Option<Instant> {
        let idle = self.timeouts.idle.map(|idle| activity.idle_deadline(idle));
        let request = self
            .timeouts
            .request
            .filter(|_| !activity.request_complete.load(Ordering::Relaxed))
            .map(|request| activity.started + request);
        match (idle, request) {
            (Some(idle), Some(request)) => Some(idle.min(request)),
            (idle, request) => idle.or(request),
        }
    }

    fn expired(&self, activity: &Activity, now: Instant) -> Option<StreamTimeout> {
        let request_late = self.timeouts.request.is_some_and(|request| {
            !activity.request_complete.load(Ordering::Relaxed) && now >= activity.started + request
        });
        if request_late {
            return Some(StreamTimeout::Request);
        }
        let idle_late = self
            .timeouts
            .idle
            .is_some_and(|idle| now >= activity.idle_deadline(idle));
        idle_late.then(|| StreamTimeout::Idle {
            request_complete: activity.request_complete.load(Ordering::Relaxed),
        })
    }
}

/// Frames read ahead of the component, at most.
const READ_AHEAD_FRAMES: usize = 8;

/// Reads the client's body into `frames`, recording activity and the end of
/// the request, until the body ends or the component side is gone (it
/// answered, failed or was cancelled: the rest of the body is not wanted).
async fn read_ahead<B>(
    mut body: B,
    frames: mpsc::Sender<Result<Frame<Bytes>, B::Error>>,
    activity: Arc<Activity>,
) where
    B: Body<Data = Bytes> + Unpin,
{
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = frames.closed() => return,
        };
        activity.touch();
        let Some(frame) = frame else {
            activity.request_complete.store(true, Ordering::Relaxed);
            return;
        };
        let last = frame.is_err() || body.is_end_stream();
        if frame.is_ok() && last {
            activity.request_complete.store(true, Ordering::Relaxed);
        }
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}

pin_project! {
    /// A request body read directly, or through the read-ahead task.
    #[project = RequestBodyProjection]
    pub(super) enum RequestBody<B: Body> {
        /// No timer runs, or there is no body: nothing to watch.
        Direct {
            #[pin]
            body: B,
        },
        /// Frames the read-ahead task received.
        ReadAhead {
            receiver: mpsc::Receiver<Result<Frame<Bytes>, B::Error>>,
        },
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            RequestBodyProjection::Direct { body } => body.poll_frame(cx),
            RequestBodyProjection::ReadAhead { receiver } => receiver.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Direct { body } => body.is_end_stream(),
            RequestBody::ReadAhead { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Direct { body } => body.size_hint(),
            RequestBody::ReadAhead { .. } => SizeHint::default(),
        }
    }
}

pin_project! {
    /// A response body that fails (which resets the stream) once the stream
    /// has been idle for `idle`.
    struct IdleResponseBody {
        #[pin]
        inner: ResponseBody,
        #[pin]
        sleep: Sleep,
        activity: Arc<Activity>,
        idle: Duration,
    }
}

impl Body for IdleResponseBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            this.activity.touch();
            return Poll::Ready(frame);
        }
        loop {
            // The request body may have moved the deadline since the sleep
            // was set.
            let deadline = this.activity.idle_deadline(*this.idle);
            if deadline <= Instant::now() {
                tracing::debug!(idle = ?this.idle, "stream idle timeout; resetting the stream");
                return Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
            }
            if this.sleep.deadline() != deadline {
                this.sleep.as_mut().reset(deadline);
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl From<StreamTimeout> for Failure {
    fn from(timeout: StreamTimeout) -> Self {
        match timeout {
            StreamTimeout::Idle { request_complete } => {
                Failure::StreamIdleTimeout { request_complete }
            }
            StreamTimeout::Request => Failure::RequestTimeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{empty, full};
    use http_body_util::{Empty, StreamBody};

    const SHORT: Duration = Duration::from_millis(100);

    fn response(body: ResponseBody) -> http::Response<ResponseBody> {
        http::Response::new(body)
    }

    /// A response body that sends `frames` frames `gap` apart.
    fn trickle(frames: usize, gap: Duration) -> ResponseBody {
        let stream = futures::stream::unfold(0, move |sent| async move {
            if sent == frames {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((
                Ok::<_, HttpError>(Frame::data(Bytes::from_static(b"x"))),
                sent + 1,
            ))
        });
        StreamBody::new(stream).boxed_unsync()
    }

    #[tokio::test]
    async fn without_timeouts_the_response_is_passed_through() {
        let timer = StreamTimer::start(StreamTimeouts::default());
        assert!(timer.activity.is_none(), "nothing is tracked");
        let answer = timer.guard(async { response(full("ok")) }).await;
        let body = answer.expect("no timeout").into_body().collect().await;
        assert_eq!(body.expect("body").to_bytes(), "ok");
    }

    #[tokio::test]
    async fn a_response_head_slower_than_the_idle_timeout_is_a_stream_timeout() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT),
            request: None,
        };
        let timer = StreamTimer::start(timeouts);
        let _no_body = timer.watch_request(Empty::<Bytes>::new());
        let slow = async {
            tokio::time::sleep(SHORT * 5).await;
            response(empty())
        };
        let started = Instant::now();
        assert_eq!(
            timer.guard(slow).await.err(),
            Some(StreamTimeout::Idle {
                request_complete: true
            })
        );
        assert!(started.elapsed() < SHORT * 4, "fired at the idle timeout");
    }

    #[tokio::test]
    async fn a_stalled_request_body_is_an_idle_timeout_before_completion() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT),
            request: None,
        };
        let timer = StreamTimer::start(timeouts);
        let body = timer.watch_request(trickle(2, SHORT * 5));
        let head = async move {
            let _ = body.collect().await;
            response(empty())
        };
        assert_eq!(
            timer.guard(head).await.err(),
            Some(StreamTimeout::Idle {
                request_complete: false
            })
        );
    }

    #[tokio::test]
    async fn a_body_the_component_does_not_read_still_counts_as_it_arrives() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT * 2),
            request: Some(SHORT * 10),
        };
        let timer = StreamTimer::start(timeouts);
        // Arrives whole after 4 SHORTs; the component never reads it and
        // answers after 9.
        let body = timer.watch_request(trickle(4, SHORT));
        let head = async move {
            let _unread = body;
            tokio::time::sleep(SHORT * 9).await;
            response(empty())
        };
        let started = Instant::now();
        let outcome = timer.guard(head).await.err();
        let fired = started.elapsed();
        assert_eq!(
            outcome,
            Some(StreamTimeout::Idle {
                request_complete: true
            }),
            "the request arrived whole (no request timeout), then nothing happened"
        );
        assert!(
            fired >= SHORT * 5 && fired < SHORT * 8,
            "arriving bytes kept the stream alive until 4 SHORTs; fired at {fired:?}"
        );
    }

    #[tokio::test]
    async fn request_body_activity_keeps_the_stream_alive() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT * 2),
            request: None,
        };
        let timer = StreamTimer::start(timeouts);
        // The body trickles one frame every SHORT for 6 SHORTs; the head
        // comes after it.
        let body = timer.watch_request(trickle(6, SHORT));
        let head = async move {
            let collected = body.collect().await.expect("body");
            response(full(collected.to_bytes()))
        };
        let answer = timer.guard(head).await.expect("activity kept it alive");
        let bytes = answer.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(bytes, "xxxxxx");
    }

    #[tokio::test]
    async fn a_stalled_response_body_fails_once_idle() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT * 2),
            request: None,
        };
        let timer = StreamTimer::start(timeouts);
        let answer = timer
            .guard(async { response(trickle(2, SHORT * 6)) })
            .await
            .expect("the head is immediate");
        let error = answer
            .into_body()
            .collect()
            .await
            .expect_err("the body stalls past the idle timeout");
        assert!(matches!(error, HttpError::HttpResponseTimeout), "{error:?}");
    }

    #[tokio::test]
    async fn a_steady_response_body_outlives_the_idle_timeout() {
        let timeouts = StreamTimeouts {
            idle: Some(SHORT * 2),
            request: None,
        };
        let timer = StreamTimer::start(timeouts);
        let answer = timer
            .guard(async { response(trickle(6, SHORT)) })
            .await
            .expect("head");
        let bytes = answer.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(bytes, "xxxxxx");
    }

    #[tokio::test]
    async fn a_request_body_slower_than_the_request_timeout_is_a_request_timeout() {
        let timeouts = StreamTimeouts {
            idle: None,
            request: Some(SHORT * 3),
        };
        let timer = StreamTimer::start(timeouts);
        // Steady activity: the idle timer would never fire, the request one must.
        let body = timer.watch_request(trickle(10, SHORT));
        let head = async move {
            let _ = body.collect().await;
            response(empty())
        };
        assert_eq!(timer.guard(head).await.err(), Some(StreamTimeout::Request));
    }

    #[tokio::test]
    async fn the_request_timer_stops_when_the_body_ends() {
        let timeouts = StreamTimeouts {
            idle: None,
            request: Some(SHORT * 2),
        };
        let timer = StreamTimer::start(timeouts);
        let body = timer.watch_request(trickle(2, SHORT / 2));
        let head = async move {
            let _ = body.collect().await;
            // The component takes long to answer after reading everything.
            tokio::time::sleep(SHORT * 4).await;
            response(full("late but fine"))
        };
        assert!(timer.guard(head).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_without_body_is_complete_from_the_start() {
        let timeouts = StreamTimeouts {
            idle: None,
            request: Some(SHORT),
        };
        let timer = StreamTimer::start(timeouts);
        let body = timer.watch_request(Empty::<Bytes>::new());
        assert!(
            matches!(body, RequestBody::Direct { .. }),
            "nothing to read ahead"
        );
        let head = async {
            tokio::time::sleep(SHORT * 3).await;
            response(empty())
        };
        assert!(timer.guard(head).await.is_ok());
    }

    #[test]
    fn stream_timers_answer_408_or_504_as_envoy_does() {
        for (timeout, status, grpc, reason) in [
            (
                StreamTimeout::Idle {
                    request_complete: false,
                },
                http::StatusCode::REQUEST_TIMEOUT,
                2,
                "stream_idle_timeout",
            ),
            (
                StreamTimeout::Idle {
                    request_complete: true,
                },
                http::StatusCode::GATEWAY_TIMEOUT,
                14,
                "stream_idle_timeout",
            ),
            (
                StreamTimeout::Request,
                http::StatusCode::REQUEST_TIMEOUT,
                2,
                "request_timeout",
            ),
        ] {
            let failure = Failure::from(timeout);
            assert_eq!(failure.status(), status, "{timeout:?}");
            assert_eq!(failure.grpc_code(), grpc, "{timeout:?}");
            assert_eq!(failure.reason(), reason);
        }
    }
}
