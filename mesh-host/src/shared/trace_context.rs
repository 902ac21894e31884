//! W3C Trace Context (`traceparent`, `tracestate`) and the spans of one request as every area
//! sees them: the inbound pipeline opens the server span, the runtime carries the component
//! span's context to the component's outbound requests, the outbound area opens client spans.
//! Finished spans go to a [`SpanSink`]; what it does with them (the OTLP exporter) is the
//! `trace` area's business.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The position of a span in a trace, as `traceparent` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, never all zero.
    pub trace_id: [u8; 16],
    /// The span, never all zero.
    pub span_id: [u8; 8],
    /// The `sampled` flag: spans of this trace are recorded.
    pub sampled: bool,
    /// The vendors' `tracestate`, carried through unchanged.
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The context a request arrived with: a valid `traceparent` (exactly one header), and
    /// its `tracestate`. Anything malformed is ignored, as W3C Trace Context says: the
    /// request then starts a new trace.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let (trace_id, span_id, sampled) = parse_traceparent(value.as_bytes())?;
        Some(TraceContext {
            trace_id,
            span_id,
            sampled,
            tracestate: join_tracestate(headers),
        })
    }

    /// A new trace with a new span.
    pub fn root(sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            sampled,
            tracestate: None,
        }
    }

    /// A new span of the same trace, with the same flag and state.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: new_span_id(),
            ..self.clone()
        }
    }

    /// The `traceparent` value naming this span as the parent (version `00`).
    pub fn traceparent(&self) -> HeaderValue {
        let mut text = String::with_capacity(55);
        text.push_str("00-");
        push_hex(&mut text, &self.trace_id);
        text.push('-');
        push_hex(&mut text, &self.span_id);
        text.push_str(if self.sampled { "-01" } else { "-00" });
        HeaderValue::from_str(&text).expect("hex and dashes are a valid header value")
    }

    /// Writes this span as the parent of a request: `traceparent` replaces any the request
    /// had, `tracestate` is this context's (removed when it has none).
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT, self.traceparent());
        match &self.tracestate {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }
}

/// Reads a `traceparent` value: `version-traceid-parentid-flags` in lower-case hex. Version
/// `ff` and all-zero ids are invalid; a version above `00` may carry more fields after a dash
/// (they are ignored), version `00` may not.
pub fn parse_traceparent(value: &[u8]) -> Option<([u8; 16], [u8; 8], bool)> {
    if value.len() < 55 {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff || (version == 0 && value.len() != 55) {
        return None;
    }
    if value.len() > 55 && value[55] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, byte) in trace_id.iter_mut().enumerate() {
        *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span_id = [0u8; 8];
    for (i, byte) in span_id.iter_mut().enumerate() {
        *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id, flags & 1 == 1))
}

/// Two lower-case hex digits (W3C allows no upper case).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

fn push_hex(text: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
}

/// Several `tracestate` headers are one list, joined with commas.
fn join_tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    let rest: Vec<&HeaderValue> = values.collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut joined = first.as_bytes().to_vec();
    for value in rest {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// A random trace id, never all zero.
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A random span id, never all zero.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// What a span is to its trace (OpenTelemetry's span kinds that mesh-host makes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A request the host received.
    Server,
    /// Work inside the host (a component's execution).
    Internal,
    /// A request the host sent.
    Client,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    /// Text.
    Text(Cow<'static, str>),
    /// A whole number (an HTTP status).
    Int(i64),
}

/// A finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// The span's own context.
    pub context: TraceContext,
    /// The parent span, if any.
    pub parent_span_id: Option<[u8; 8]>,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes, in the order they were set.
    pub attributes: Vec<(Cow<'static, str>, AttributeValue)>,
    /// Whether it failed (a 5xx, or no response).
    pub error: bool,
}

/// Where finished spans go. Recording never blocks: a sink that cannot keep up drops spans.
pub trait SpanSink: Send + Sync + 'static {
    /// Takes a finished span.
    fn record(&self, span: SpanRecord);
}

/// The trace a request belongs to, passed beside it from the inbound pipeline to the
/// component, and carried in the extensions of the component's outbound requests.
#[derive(Clone)]
pub struct RequestTrace {
    /// The span the next span is a child of (or, unsampled, the context to propagate).
    pub context: TraceContext,
    /// Where spans of this trace go; `None` when the trace is not sampled.
    pub sink: Option<Arc<dyn SpanSink>>,
    /// Whether `traceparent` is written into requests sent upstream (the connection
    /// manager's `no_context_propagation` unset).
    pub propagate: bool,
}

impl RequestTrace {
    /// The trace as seen from a child hop: a new span id, so a receiver can tell the hop
    /// apart, the same flag and state. When the trace is sampled the child is also a span,
    /// open from now and named by `name`, which is called only then (most requests are not
    /// sampled, and every one of them passes here).
    pub fn child_span(
        &self,
        name: impl FnOnce() -> String,
        kind: SpanKind,
    ) -> (Option<OpenSpan>, RequestTrace) {
        let context = self.context.child();
        let span = self.sink.as_ref().map(|sink| {
            OpenSpan::new(
                sink.clone(),
                context.clone(),
                Some(self.context.span_id),
                name(),
                kind,
            )
        });
        let trace = RequestTrace {
            context,
            sink: self.sink.clone(),
            propagate: self.propagate,
        };
        (span, trace)
    }
}

/// A span being recorded: it is sent to its sink when dropped, so holding it in a response
/// body's guard ends it with the body.
pub struct OpenSpan {
    record: Option<SpanRecord>,
    sink: Arc<dyn SpanSink>,
}

impl OpenSpan {
    /// A span starting now.
    pub fn new(
        sink: Arc<dyn SpanSink>,
        context: TraceContext,
        parent_span_id: Option<[u8; 8]>,
        name: String,
        kind: SpanKind,
    ) -> OpenSpan {
        let now = SystemTime::now();
        OpenSpan {
            record: Some(SpanRecord {
                context,
                parent_span_id,
                name,
                kind,
                start: now,
                end: now,
                attributes: Vec::new(),
                error: false,
            }),
            sink,
        }
    }

    /// The span's context.
    pub fn context(&self) -> Option<&TraceContext> {
        self.record.as_ref().map(|r| &r.context)
    }

    /// Renames the span.
    pub fn rename(&mut self, name: impl Into<String>) {
        if let Some(record) = &mut self.record {
            record.name = name.into();
        }
    }

    /// Sets an attribute (a second value for the same key replaces the first).
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: AttributeValue) {
        let Some(record) = &mut self.record else {
            return;
        };
        let key = key.into();
        match record.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => record.attributes.push((key, value)),
        }
    }

    /// Sets a text attribute.
    pub fn set_text(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        self.set(key, AttributeValue::Text(value.into()));
    }

    /// Records the HTTP status (`http.status_code`); a 5xx marks the span failed.
    pub fn set_status(&mut self, status: u16) {
        self.set("http.status_code", AttributeValue::Int(i64::from(status)));
        if status >= 500
            && let Some(record) = &mut self.record
        {
            record.error = true;
        }
    }

    /// Marks the span failed (no response at all).
    pub fn fail(&mut self) {
        if let Some(record) = &mut self.record {
            record.error = true;
        }
    }
}

impl Drop for OpenSpan {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.end = SystemTime::now();
            self.sink.record(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_with_its_flag_and_state() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACESTATE, HeaderValue::from_static("a=1"));
        headers.append(TRACESTATE, HeaderValue::from_static("b=2"));
        let context = TraceContext::from_headers(&headers).expect("valid");
        assert_eq!(context.trace_id[0], 0x4b);
        assert_eq!(context.trace_id[15], 0x36);
        assert_eq!(
            context.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(context.sampled);
        assert_eq!(
            context.tracestate,
            Some(HeaderValue::from_static("a=1,b=2"))
        );
        assert_eq!(context.traceparent(), HeaderValue::from_static(VALID));
    }

    #[test]
    fn malformed_traceparents_are_ignored_as_w3c_says() {
        let malformed = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for value in malformed {
            assert_eq!(parse_traceparent(value.as_bytes()), None, "{value:?}");
        }
        let mut twice = HeaderMap::new();
        twice.append(TRACEPARENT, HeaderValue::from_static(VALID));
        twice.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceContext::from_headers(&twice), None);
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let (_, _, sampled) = parse_traceparent(later.as_bytes()).expect("valid");
        assert!(!sampled);
    }

    #[test]
    fn injecting_replaces_the_requests_traceparent_and_carries_the_state() {
        let context = TraceContext {
            tracestate: Some(HeaderValue::from_static("vendor=x")),
            ..TraceContext::root(false)
        };
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        context.inject(&mut headers);
        let written = TraceContext::from_headers(&headers).expect("valid");
        assert_eq!(written, context);
        assert_eq!(headers.get_all(TRACEPARENT).iter().count(), 1);
        assert!(
            headers
                .get(TRACEPARENT)
                .expect("set")
                .as_bytes()
                .ends_with(b"-00")
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_takes_a_new_span_id() {
        let root = TraceContext::root(true);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert!(child.sampled);
    }
}
