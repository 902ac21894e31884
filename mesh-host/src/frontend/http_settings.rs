//! Per-filter-chain HTTP settings: what Envoy's `HttpConnectionManager`
//! decides about connections (accepted HTTP versions, header limits) and
//! about every request and response passing through (timeouts, forwarding
//! headers, the `server` header).

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::RequestLimits;
use super::forwarded::Forwarding;
use super::stream_timeouts::StreamTimeouts;

/// hyper's HTTP/1 read buffer cannot be smaller than this.
const MIN_HTTP1_BUFFER: usize = 8192;
/// How long a client may take to send a request head (HTTP/1), or the
/// TLS handshake, before the connection is closed.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

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
/// behaviour: both HTTP versions, no stream timers, request and response
/// headers left alone.
#[derive(Debug, Clone, Default)]
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
}

impl HttpSettings {
    /// The hyper-util connection builder for these settings.
    pub(super) fn connection_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HANDSHAKE_TIMEOUT)
            .max_buf_size(self.limits.max_request_header_bytes.max(MIN_HTTP1_BUFFER));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(
                u32::try_from(self.limits.max_request_header_bytes).unwrap_or(u32::MAX),
            );
        match self.codec {
            Codec::Auto => builder,
            Codec::Http1 => builder.http1_only(),
            Codec::Http2 => builder.http2_only(),
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
    fn the_codec_picks_which_versions_the_builder_serves() {
        let settings = |codec| HttpSettings {
            codec,
            ..HttpSettings::default()
        };
        let auto = settings(Codec::Auto).connection_builder();
        assert!(auto.is_http1_available() && auto.is_http2_available());
        let http1 = settings(Codec::Http1).connection_builder();
        assert!(http1.is_http1_available() && !http1.is_http2_available());
        let http2 = settings(Codec::Http2).connection_builder();
        assert!(!http2.is_http1_available() && http2.is_http2_available());
    }
}
