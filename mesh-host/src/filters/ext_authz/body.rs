//! Buffering the request body for a check (`with_request_body`): up to `max_request_bytes`
//! are read; the request goes on with the same bytes, then whatever was not read.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use mesh_xds::config::BufferSettings;
use wasmtime_wasi_http::WasiBody;

use crate::shared::Failure;

/// What a check sends of the body.
pub(crate) struct Buffered {
    /// At most `max_request_bytes` of it.
    pub(crate) bytes: Bytes,
    /// The body was longer than what the check carries.
    pub(crate) partial: bool,
    /// How many bytes were read (the check's `size`), possibly more than it carries.
    pub(crate) read: usize,
    /// Whether to send it as `raw_body`.
    pub(crate) pack_as_bytes: bool,
}

/// Reads the body up to the limit and puts it back in front of the rest. `None` when the
/// request has no body (Envoy buffers nothing then).
pub(crate) async fn buffer(
    body: &mut WasiBody,
    settings: BufferSettings,
) -> Result<Option<Buffered>, Failure> {
    if body.is_end_stream() {
        return Ok(None);
    }
    let limit = usize::try_from(settings.max_request_bytes).unwrap_or(usize::MAX);
    let mut data = BytesMut::new();
    let mut trailers = None;
    let mut ended = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Failure::BadRequest(format!("request body: {error}")))?;
        match frame.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                break;
            }
        }
        if data.len() >= limit {
            ended = body.is_end_stream();
            break;
        }
    }
    let read = data.freeze();
    let partial = read.len() > limit || !ended;
    if partial && !settings.allow_partial_message {
        return Err(Failure::BufferLimitExceeded);
    }
    let mut frames = vec![Ok(Frame::data(read.clone()))];
    if let Some(trailers) = trailers {
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let rest = std::mem::replace(
        body,
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    let replayed = futures::stream::iter(frames).chain(BodyStream::new(rest));
    *body = StreamBody::new(replayed).boxed_unsync();
    Ok(Some(Buffered {
        bytes: read.slice(..read.len().min(limit)),
        partial,
        read: read.len(),
        pack_as_bytes: settings.pack_as_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn body(text: &'static str) -> WasiBody {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn settings(max: u32, partial: bool) -> BufferSettings {
        BufferSettings {
            max_request_bytes: max,
            allow_partial_message: partial,
            pack_as_bytes: false,
        }
    }

    #[tokio::test]
    async fn the_whole_body_is_checked_and_still_sent() {
        let mut request = body("hello");
        let buffered = buffer(&mut request, settings(100, false))
            .await
            .expect("fits")
            .expect("has a body");
        assert_eq!(buffered.bytes, "hello");
        assert!(!buffered.partial);
        let sent = request.collect().await.expect("body").to_bytes();
        assert_eq!(sent, "hello");
    }

    #[tokio::test]
    async fn a_longer_body_is_cut_for_the_check_or_refused() {
        let mut request = body("hello world");
        let buffered = buffer(&mut request, settings(5, true))
            .await
            .expect("partial allowed")
            .expect("has a body");
        assert_eq!(buffered.bytes, "hello");
        assert!(buffered.partial);
        let sent = request.collect().await.expect("body").to_bytes();
        assert_eq!(sent, "hello world", "the upstream gets every byte");

        let mut refused = body("hello world");
        assert_eq!(
            buffer(&mut refused, settings(5, false)).await.err(),
            Some(Failure::BufferLimitExceeded)
        );
    }
}
