//! Per-filter-chain HTTP settings: what Envoy's `HttpConnectionManager`
//! decides about connections (accepted HTTP versions, header limits, idle and
//! lifetime timers, HTTP/2 keepalive and flood limits) and about every request
//! and response passing through (timeouts, forwarding headers, the `server`
//! header).

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::RequestLimits;
use super::forwarded::Forwarding;
use super::http1_head::{Http1Rules, MAX_HEADERS};
use super::http2_frames::Http2Limits;
use super::stream_timeouts::StreamTimeouts;

/// hyper's HTTP/1 read buffer cannot be smaller than this.
const MIN_HTTP1_BUFFER: usize = 8192;
/// The canonical head hyper reads can be a little longer than the client's (one space
/// after each header name's colon); the limit is enforced before hyper.
const CANONICAL_HEAD_SLACK: usize = 2 * MAX_HEADERS;
/// How long the TLS handshake may take once the client hello has arrived.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request head may take to arrive from its first byte when the connection
/// manager sets no `request_headers_timeout` (Envoy then has none; the host keeps slow
/// heads from holding connections).
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(30);
/// The embedded front end's connection idle timeout (Envoy's default, one hour, suits a
/// proxy behind a load balancer more than a server facing clients).
const EMBEDDED_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP/2 keepalive pings (Envoy's `connection_keepalive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Keepalive {
    /// How often a PING is sent on a connection that received nothing.
    pub interval: Duration,
    /// How long the answer may take before the connection is closed.
    pub timeout: Duration,
}

/// The HTTP versions a filter chain accepts (Envoy's `codec_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Codec {
    /// HTTP/1.1 and HTTP/2, told apart by the HTTP/2 connection preface
    /// (after ALPN on TLS).
    #[default]
    Auto,
    /// HTTP/1.1 only: an HTTP/2 preface (h2c prior knowledge, or h2 chosen
    /// by ALPN) ends the connection.
    Http1,
    /// HTTP/2 only: a connection that does not open with the HTTP/2 preface
    /// (an HTTP/1.1 request) is closed.
    Http2,
}

/// What the front end does to the `server` header of every response,
/// including the host's own error answers (Envoy's `server_name` and
/// `server_header_transformation`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ServerHeader {
    /// Leave it as the component set it, or absent.
    #[default]
    PassThrough,
    /// Always this value, replacing the component's.
    Overwrite(HeaderValue),
    /// This value when the component set none.
    AppendIfAbsent(HeaderValue),
}

impl ServerHeader {
    /// Applies the rule to a response's headers.
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        match self {
            ServerHeader::PassThrough => {}
            ServerHeader::Overwrite(value) => {
                headers.insert(header::SERVER, value.clone());
            }
            ServerHeader::AppendIfAbsent(value) => {
                headers
                    .entry(header::SERVER)
                    .or_insert_with(|| value.clone());
            }
        }
    }
}

/// How one filter chain serves HTTP. The default is the embedded front end's
/// behaviour: both HTTP versions, HTTP/1.0 served, no stream timers, a one-minute
/// connection idle timeout, request and response headers left alone.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Accepted HTTP versions.
    pub codec: Codec,
    /// Header and body size limits.
    pub limits: RequestLimits,
    /// Stream idle and whole-request timeouts.
    pub timeouts: StreamTimeouts,
    /// `x-forwarded-for` and related request headers; `None` leaves them
    /// untouched.
    pub forwarding: Option<Forwarding>,
    /// The `server` response header.
    pub server_header: ServerHeader,
    /// How long a connection may have no request in flight before it is closed
    /// (`common_http_protocol_options.idle_timeout`; HTTP/2 gets a GOAWAY first).
    pub idle_timeout: Option<Duration>,
    /// How long a connection may live: then HTTP/2 gets a GOAWAY, an HTTP/1 connection
    /// closes after the response in flight (`max_connection_duration`).
    pub max_connection_duration: Option<Duration>,
    /// How long a request head may take from its first byte to its last: 408 and the
    /// connection closed past it (`request_headers_timeout`).
    pub request_headers_timeout: Option<Duration>,
    /// Which HTTP/1 requests are accepted beyond Envoy's strict defaults.
    pub http1_rules: Http1Rules,
    /// HTTP/2 keepalive pings.
    pub http2_keepalive: Option<Http2Keepalive>,
    /// Streams a client may have open at once on one HTTP/2 connection (`None`: hyper's
    /// default, 200).
    pub http2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 flood limits.
    pub http2_limits: Http2Limits,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            codec: Codec::default(),
            limits: RequestLimits::default(),
            timeouts: StreamTimeouts::default(),
            forwarding: None,
            server_header: ServerHeader::default(),
            idle_timeout: Some(EMBEDDED_IDLE_TIMEOUT),
            max_connection_duration: None,
            request_headers_timeout: Some(DEFAULT_REQUEST_HEADERS_TIMEOUT),
            http1_rules: Http1Rules {
                accept_http_10: true,
                ..Http1Rules::default()
            },
            http2_keepalive: None,
            http2_max_concurrent_streams: None,
            http2_limits: Http2Limits::default(),
        }
    }
}

impl HttpSettings {
    /// hyper's HTTP/1 connection builder for these settings. Heads reach hyper checked
    /// and rewritten ([`super::http1_guard`]), which also times them; hyper's own header
    /// timer would also run between requests, where the idle timeout rules.
    pub(super) fn http1_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            // A refused request ends what hyper reads; the answers to the requests
            // before it must still be written.
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_headers(MAX_HEADERS)
            .max_buf_size(
                (self.limits.max_request_header_bytes + CANONICAL_HEAD_SLACK).max(MIN_HTTP1_BUFFER),
            );
        builder
    }

    /// hyper's HTTP/2 connection builder for these settings.
    pub(super) fn http2_builder(&self) -> http2::Builder<TokioExecutor> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).max_header_list_size(
            u32::try_from(self.limits.max_request_header_bytes).unwrap_or(u32::MAX),
        );
        if let Some(streams) = self.http2_max_concurrent_streams {
            builder.max_concurrent_streams(streams);
        }
        if let Some(keepalive) = self.http2_keepalive {
            builder
                .keep_alive_interval(keepalive.interval)
                .keep_alive_timeout(keepalive.timeout);
        }
        builder
    }

    /// Whether connections speaking `http2` (or else HTTP/1) are served.
    pub(super) fn serves(&self, http2: bool) -> bool {
        match self.codec {
            Codec::Auto => true,
            Codec::Http1 => !http2,
            Codec::Http2 => http2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_replaces_the_components_server_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::SERVER, HeaderValue::from_static("guest"));
        ServerHeader::Overwrite(HeaderValue::from_static("mesh-host")).apply(&mut headers);
        assert_eq!(headers[header::SERVER], "mesh-host");
        assert_eq!(headers.get_all(header::SERVER).iter().count(), 1);
    }

    #[test]
    fn append_if_absent_keeps_the_components_server_header() {
        let rule = ServerHeader::AppendIfAbsent(HeaderValue::from_static("mesh-host"));
        let mut headers = HeaderMap::new();
        headers.insert(header::SERVER, HeaderValue::from_static("guest"));
        rule.apply(&mut headers);
        assert_eq!(headers[header::SERVER], "guest");
        let mut empty = HeaderMap::new();
        rule.apply(&mut empty);
        assert_eq!(empty[header::SERVER], "mesh-host");
    }

    #[test]
    fn pass_through_adds_nothing() {
        let mut headers = HeaderMap::new();
        ServerHeader::PassThrough.apply(&mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn the_codec_picks_which_versions_are_served() {
        let settings = |codec| HttpSettings {
            codec,
            ..HttpSettings::default()
        };
        assert!(settings(Codec::Auto).serves(true) && settings(Codec::Auto).serves(false));
        assert!(!settings(Codec::Http1).serves(true) && settings(Codec::Http1).serves(false));
        assert!(settings(Codec::Http2).serves(true) && !settings(Codec::Http2).serves(false));
    }
}
