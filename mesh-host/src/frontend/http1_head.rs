//! One HTTP/1 request head read by the rules of Envoy 1.40's HTTP/1 codec, measured
//! against a running Envoy (`tests/tests/e2e/http1_codec_differential.rs`), and written back in
//! the one canonical form hyper is given.
//!
//! Envoy is stricter than hyper where a lenient reading lets two parsers disagree on where
//! a request ends (`Content-Length` with `Transfer-Encoding`, a transfer coding other than
//! `chunked`, repeated or malformed `Content-Length`), on its methods, targets, header
//! names and values, and on `Host`; and more lenient than hyper in how the head is laid
//! out (bare LF line ends, runs of spaces or tabs in the request line, folded header
//! lines, repeated `Host` headers joined with a comma). The head is checked here, then
//! rewritten so that hyper only ever parses heads both agree on.

use std::borrow::Cow;

use http::StatusCode;

/// Envoy's `max_headers_count` default: more request headers is a 431.
pub(super) const MAX_HEADERS: usize = 100;

/// The methods Envoy's HTTP/1 parser knows (those of the http-parser library it
/// replaced); any other is a 400. Sorted, for the binary search.
pub(super) const KNOWN_METHODS: &[&[u8]] = &[
    b"ACL",
    b"BIND",
    b"CHECKOUT",
    b"CONNECT",
    b"COPY",
    b"DELETE",
    b"GET",
    b"HEAD",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MOVE",
    b"MSEARCH",
    b"NOTIFY",
    b"OPTIONS",
    b"PATCH",
    b"POST",
    b"PROPFIND",
    b"PROPPATCH",
    b"PURGE",
    b"PUT",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"SOURCE",
    b"SUBSCRIBE",
    b"TRACE",
    b"UNBIND",
    b"UNLINK",
    b"UNLOCK",
    b"UNSUBSCRIBE",
];

/// Why a request was refused before hyper saw it, and the status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rejection {
    /// 400, 426 (a protocol version the listener does not take), 431 (too many or too
    /// large headers) or 501 (a transfer coding other than `chunked`).
    pub(super) status: StatusCode,
    /// What was wrong, for the log.
    pub(super) details: &'static str,
}

impl Rejection {
    pub(super) const fn bad(details: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            details,
        }
    }

    pub(super) const fn too_large(details: &'static str) -> Self {
        Self {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            details,
        }
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A checked head: its canonical form and how its body is delimited.
#[derive(Debug)]
pub(super) struct Head {
    /// Request line and headers, each line ending in CRLF, then the empty line.
    pub(super) canonical: Vec<u8>,
    pub(super) body: BodyFraming,
}

/// A connection manager's choices that change which HTTP/1 requests are accepted
/// (Envoy's `http_protocol_options`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http1Rules {
    /// HTTP/1.0 requests are served (`accept_http_10`); otherwise they get 426.
    pub accept_http_10: bool,
    /// A request with both `Content-Length` and `Transfer-Encoding: chunked` is read as
    /// chunked, its `Content-Length` dropped (`allow_chunked_length`); otherwise 400.
    pub allow_chunked_length: bool,
    /// Any token is a method (`allow_custom_methods`); otherwise only the methods Envoy's
    /// parser knows.
    pub allow_custom_methods: bool,
}

/// Checks a head (from the request line to the empty line, line ends CRLF or bare LF,
/// empty lines before the request line already skipped) and writes its canonical form.
pub(super) fn parse_head(raw: &[u8], rules: Http1Rules) -> Result<Head, Rejection> {
    let mut lines = raw.split(|byte| *byte == b'\n').map(strip_cr);
    let request_line = lines.next().ok_or(Rejection::bad("empty request"))??;
    let line = RequestLine::parse(request_line, rules)?;
    // Values borrow from `raw`; only a folded or joined one is copied.
    let mut headers: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::with_capacity(16);
    for field in lines {
        let field = field?;
        if field.is_empty() {
            break;
        }
        if matches!(field[0], b' ' | b'\t') {
            // obs-fold: Envoy reads a folded line as more of the previous value.
            let (_, value) = headers
                .last_mut()
                .ok_or(Rejection::bad("the first header line is folded"))?;
            let more = trim_ows(field);
            check_value(more)?;
            if !more.is_empty() {
                let value = value.to_mut();
                value.push(b' ');
                value.extend_from_slice(more);
            }
            continue;
        }
        let colon = field
            .iter()
            .position(|byte| *byte == b':')
            .ok_or(Rejection::bad("a header line has no colon"))?;
        let (name, value) = (&field[..colon], trim_ows(&field[colon + 1..]));
        if name.is_empty() || !name.iter().all(|byte| is_tchar(*byte)) {
            return Err(Rejection::bad("invalid header name"));
        }
        check_value(value)?;
        headers.push((name, Cow::Borrowed(value)));
        if headers.len() > MAX_HEADERS {
            return Err(Rejection::too_large("more than 100 headers"));
        }
    }
    match line.version {
        Version::Http11 => {}
        Version::Http10 if rules.accept_http_10 => {}
        Version::Http10 | Version::Other => {
            return Err(Rejection {
                status: StatusCode::UPGRADE_REQUIRED,
                details: "HTTP version not served",
            });
        }
    }
    let body = body_framing(&headers, rules)?;
    if body == BodyFraming::Chunked {
        // With `allow_chunked_length` the length gives way to the chunks.
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(b"content-length"));
    }
    join_hosts(&mut headers);
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"host"));
    match host {
        Some((_, value)) if !value.iter().all(|byte| is_authority_char(*byte)) => {
            return Err(Rejection::bad("invalid Host"));
        }
        None if line.version == Version::Http11 && !line.absolute => {
            return Err(Rejection::bad("HTTP/1.1 request without Host"));
        }
        _ => {}
    }
    Ok(Head {
        canonical: line.write(&headers),
        body,
    })
}

/// A line without its CR; a CR anywhere else is an error.
fn strip_cr(line: &[u8]) -> Result<&[u8], Rejection> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return Err(Rejection::bad("bare CR"));
    }
    Ok(line)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http11,
    Http10,
    /// HTTP/0.9 (no version) or a well-formed version other than 1.0 and 1.1.
    Other,
}

struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    version: Version,
    /// The target is in absolute form (it carries the authority).
    absolute: bool,
}

impl<'a> RequestLine<'a> {
    fn parse(line: &'a [u8], rules: Http1Rules) -> Result<Self, Rejection> {
        let mut parts = line
            .split(|byte| matches!(byte, b' ' | b'\t'))
            .filter(|part| !part.is_empty());
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(Rejection::bad("malformed request line"));
        };
        let version = match (parts.next(), parts.next()) {
            (None, _) => Version::Other,
            (Some(version), None) => parse_version(version)?,
            (Some(_), Some(_)) => return Err(Rejection::bad("malformed request line")),
        };
        let known = if rules.allow_custom_methods {
            method.iter().all(|byte| is_tchar(*byte))
        } else {
            KNOWN_METHODS.binary_search(&method).is_ok()
        };
        if !known {
            return Err(Rejection::bad("unknown method"));
        }
        let absolute = check_target(method, target)?;
        Ok(Self {
            method,
            target,
            version,
            absolute,
        })
    }

    fn write(&self, headers: &[(&[u8], Cow<'_, [u8]>)]) -> Vec<u8> {
        let size = headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>();
        let mut out = Vec::with_capacity(self.method.len() + self.target.len() + 16 + size);
        out.extend_from_slice(self.method);
        out.push(b' ');
        out.extend_from_slice(self.target);
        out.extend_from_slice(match self.version {
            Version::Http10 => b" HTTP/1.0\r\n",
            Version::Http11 | Version::Other => b" HTTP/1.1\r\n",
        });
        for (name, value) in headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn parse_version(version: &[u8]) -> Result<Version, Rejection> {
    match version {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Ok(Version::Other)
        }
        _ => Err(Rejection::bad("malformed HTTP version")),
    }
}

/// Checks the request target; whether it is in absolute form.
fn check_target(method: &[u8], target: &[u8]) -> Result<bool, Rejection> {
    let invalid = Rejection::bad("invalid request target");
    // A fragment never belongs in a request (Envoy answers 400).
    let path_char = |byte: &u8| (0x21..=0x7e).contains(byte) && *byte != b'#';
    if method == b"CONNECT" {
        return if !target.is_empty() && target.iter().all(|byte| is_authority_char(*byte)) {
            Ok(true)
        } else {
            Err(invalid)
        };
    }
    match target {
        [b'/', ..] if target.iter().all(path_char) => Ok(false),
        b"*" if method == b"OPTIONS" => Ok(false),
        _ => {
            let scheme = target
                .iter()
                .take_while(|byte| byte.is_ascii_alphabetic())
                .count();
            let rest = target[scheme..]
                .strip_prefix(b"://")
                .filter(|_| scheme > 0)
                .ok_or(invalid)?;
            let authority = rest
                .iter()
                .position(|byte| matches!(byte, b'/' | b'?'))
                .unwrap_or(rest.len());
            let (host, path) = rest.split_at(authority);
            if host.iter().all(|byte| is_authority_char(*byte)) && path.iter().all(path_char) {
                Ok(true)
            } else {
                Err(invalid)
            }
        }
    }
}

/// Where the body ends, from `Content-Length` and `Transfer-Encoding` by Envoy's rules:
/// both at once (unless `allow_chunked_length` and the coding is a lone `chunked`),
/// several `Content-Length` headers (even equal ones), or one that is not all digits are
/// 400; any other transfer coding but a lone `chunked` is 501.
fn body_framing(
    headers: &[(&[u8], Cow<'_, [u8]>)],
    rules: Http1Rules,
) -> Result<BodyFraming, Rejection> {
    let lengths = Named::find(headers, b"content-length");
    let codings = Named::find(headers, b"transfer-encoding");
    if let Some(first) = codings.first {
        let chunked = !codings.repeated && first.eq_ignore_ascii_case(b"chunked");
        // Envoy 1.40 answers a length beside any other coding 400, even with the option.
        let length_allowed = lengths.first.is_none() || (rules.allow_chunked_length && chunked);
        if !length_allowed {
            return Err(Rejection::bad("both Content-Length and Transfer-Encoding"));
        }
        return match chunked {
            true => Ok(BodyFraming::Chunked),
            false => Err(Rejection {
                status: StatusCode::NOT_IMPLEMENTED,
                details: "unsupported transfer encoding",
            }),
        };
    }
    match (lengths.first, lengths.repeated) {
        (None, _) => Ok(BodyFraming::None),
        (Some(length), false) if !length.is_empty() && length.iter().all(u8::is_ascii_digit) => {
            // Leading zeros are fine; only the value's size can still fail.
            std::str::from_utf8(length)
                .ok()
                .and_then(|digits| digits.parse::<u64>().ok())
                .map(|length| match length {
                    0 => BodyFraming::None,
                    length => BodyFraming::Length(length),
                })
                .ok_or(Rejection::bad("Content-Length out of range"))
        }
        (Some(_), false) => Err(Rejection::bad("invalid Content-Length")),
        (Some(_), true) => Err(Rejection::bad("more than one Content-Length")),
    }
}

/// The first value of a header and whether it appears more than once.
struct Named<'h> {
    first: Option<&'h [u8]>,
    repeated: bool,
}

impl<'h> Named<'h> {
    fn find(headers: &'h [(&[u8], Cow<'_, [u8]>)], wanted: &[u8]) -> Self {
        let mut values = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.as_ref());
        let first = values.next();
        Self {
            first,
            repeated: values.next().is_some(),
        }
    }
}

/// Envoy keeps one `Host`: repeated ones are joined with a comma, in order, where the
/// first stood.
fn join_hosts(headers: &mut Vec<(&[u8], Cow<'_, [u8]>)>) {
    if !Named::find(headers, b"host").repeated {
        return;
    }
    let is_host = |name: &[u8]| name.eq_ignore_ascii_case(b"host");
    let joined = headers
        .iter()
        .filter(|(name, _)| is_host(name))
        .map(|(_, value)| value.as_ref())
        .collect::<Vec<_>>()
        .join(&b","[..]);
    // The first `Host` takes the joined value; the others go.
    let mut joined = Some(joined);
    headers.retain_mut(|(name, value)| {
        if !is_host(name) {
            return true;
        }
        match joined.take() {
            Some(joined) => {
                *value = Cow::Owned(joined);
                true
            }
            None => false,
        }
    });
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !matches!(byte, b' ' | b'\t'))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

/// Header values may hold tabs and bytes from 0x80 up, never other control bytes.
fn check_value(value: &[u8]) -> Result<(), Rejection> {
    let control = |byte: &u8| (*byte < 0x20 && *byte != b'\t') || *byte == 0x7f;
    if value.iter().any(control) {
        return Err(Rejection::bad("header value contains invalid chars"));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
pub(super) fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

/// The bytes of an RFC 3986 authority: unreserved, sub-delims, `:`, `@`, `[`, `]`, `%`.
fn is_authority_char(byte: u8) -> bool {
    AUTHORITY_CHAR[usize::from(byte)]
}

// Tables, because every byte of every header name is checked: a search of the punctuation
// list per byte was a visible share of the head's cost.
const TCHAR: [bool; 256] = byte_set(b"!#$%&'*+-.^_`|~");
const AUTHORITY_CHAR: [bool; 256] = byte_set(b"-._~!$&'()*+,;=:@[]%");

/// ASCII letters and digits, and `extra`.
const fn byte_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        set[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Http1Rules = Http1Rules {
        accept_http_10: false,
        allow_chunked_length: false,
        allow_custom_methods: false,
    };

    fn parse(raw: &str) -> Result<Head, Rejection> {
        parse_head(raw.as_bytes(), STRICT)
    }

    fn status(raw: &str) -> u16 {
        match parse(raw) {
            Ok(_) => 200,
            Err(rejection) => rejection.status.as_u16(),
        }
    }

    fn canonical(raw: &str) -> String {
        String::from_utf8(parse(raw).expect("valid head").canonical).expect("ascii")
    }

    #[test]
    fn the_known_methods_are_sorted_for_the_binary_search() {
        assert!(KNOWN_METHODS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn the_byte_tables_hold_the_rfc_sets_and_nothing_else() {
        let members = |test: fn(u8) -> bool| (0..=255u8).filter(|byte| test(*byte)).count();
        // 62 letters and digits plus RFC 9110's 15 tchar symbols.
        assert_eq!(members(is_tchar), 77);
        for separator in b"\"(),/:;<=>?@[\\]{} \t\x7f\x80\xff" {
            assert!(
                !is_tchar(*separator),
                "{:?} is no tchar",
                *separator as char
            );
        }
        // 62 plus RFC 3986's unreserved marks, sub-delims, `:`, `@`, `[`, `]` and `%`.
        assert_eq!(members(is_authority_char), 82);
        for outside in b"/?#\"<>\\^`{|} \x00\x80" {
            assert!(
                !is_authority_char(*outside),
                "{:?} is no authority byte",
                *outside as char
            );
        }
    }

    #[test]
    fn length_and_chunked_framing_are_read_from_the_headers() {
        let head = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\n").expect("ok");
        assert_eq!(head.body, BodyFraming::Length(5));
        let head = parse("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked \r\n\r\n");
        assert_eq!(head.expect("ok").body, BodyFraming::Chunked);
        let head = parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(head.expect("ok").body, BodyFraming::None);
    }

    #[test]
    fn ambiguous_framing_is_refused_as_envoy_refuses_it() {
        for (raw, want) in [
            ("Content-Length: 5\r\nTransfer-Encoding: chunked", 400),
            ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
            ("Transfer-Encoding: identity\r\nContent-Length: 5", 400),
            ("Transfer-Encoding: identity, chunked", 501),
            ("Transfer-Encoding: chunked, identity", 501),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                501,
            ),
            ("Transfer-Encoding: gzip", 501),
            ("Transfer-Encoding:", 501),
            ("Content-Length: 5\r\nContent-Length: 5", 400),
            ("Content-Length: 5, 5", 400),
            ("Content-Length: +5", 400),
            ("Content-Length: -5", 400),
            ("Content-Length:", 400),
            ("Content-Length: 99999999999999999999999", 400),
        ] {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\n{raw}\r\n\r\n");
            assert_eq!(status(&head), want, "{raw:?}");
        }
    }

    #[test]
    fn versions_other_than_1_1_are_426_and_malformed_ones_400() {
        assert_eq!(status("GET / HTTP/1.0\r\nHost: a\r\n\r\n"), 426);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 426);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 426);
        assert_eq!(status("GET /\r\n\r\n"), 426, "HTTP/0.9");
        assert_eq!(status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
        let lenient = Http1Rules {
            accept_http_10: true,
            ..STRICT
        };
        let head = parse_head(b"GET / HTTP/1.0\r\n\r\n", lenient).expect("HTTP/1.0 accepted");
        assert!(head.canonical.starts_with(b"GET / HTTP/1.0\r\n"));
    }

    #[test]
    fn methods_targets_names_and_values_follow_envoys_character_sets() {
        for (raw, want) in [
            ("get / HTTP/1.1", 400),
            ("FOO / HTTP/1.1", 400),
            ("PURGE / HTTP/1.1", 200),
            ("GET /a#b HTTP/1.1", 400),
            ("GET * HTTP/1.1", 400),
            ("OPTIONS * HTTP/1.1", 200),
            ("GET a HTTP/1.1", 400),
            ("GET /a\\b HTTP/1.1", 200),
            ("GET /a\u{7f}b HTTP/1.1", 400),
            ("GET /a b HTTP/1.1", 400),
            ("GET http://b/x?y HTTP/1.1", 200),
        ] {
            assert_eq!(
                status(&format!("{raw}\r\nHost: a\r\n\r\n")),
                want,
                "{raw:?}"
            );
        }
        assert_eq!(status("GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        for (field, want) in [
            ("X-A : b", 400),
            ("X(A): b", 400),
            (": b", 400),
            ("XA", 400),
            ("X_A: b", 200),
            ("X-A: b\u{1}c", 400),
            ("X-A: b\u{b}c", 400),
            ("X-A: b\u{7f}c", 400),
            ("X-A: b\tc", 200),
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n");
            assert_eq!(status(&head), want, "{field:?}");
        }
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nX: \xe9\r\n\r\n", STRICT).map(|_| ()),
            Ok(()),
            "obs-text is a valid value"
        );
    }

    #[test]
    fn host_is_required_on_http_1_1_and_must_be_an_authority() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET http://a/ HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), 200);
    }

    #[test]
    fn repeated_hosts_are_joined_in_order() {
        assert_eq!(
            canonical("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nHost: b\r\nhost: c\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a,b,c\r\nX: 1\r\n\r\n"
        );
        assert_eq!(
            canonical("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"
        );
    }

    #[test]
    fn layout_envoy_tolerates_is_rewritten_canonically() {
        assert_eq!(
            canonical("GET\t/x  HTTP/1.1 \nHost:  a \nX-A: b\n  c\n\n"),
            "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b c\r\n\r\n"
        );
        assert_eq!(status("GET / HTTP/1.1\r\n X-A: b\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400);
    }

    #[test]
    fn the_connection_manager_can_allow_chunked_length_and_custom_methods() {
        let rules = Http1Rules {
            allow_chunked_length: true,
            allow_custom_methods: true,
            ..STRICT
        };
        let head = parse_head(
            b"FOO / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            rules,
        )
        .expect("allowed");
        assert_eq!(head.body, BodyFraming::Chunked);
        assert_eq!(
            head.canonical,
            b"FOO / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let refused = parse_head(b"F(O / HTTP/1.1\r\nHost: a\r\n\r\n", rules);
        assert_eq!(refused.map(|_| ()), Err(Rejection::bad("unknown method")));
        let refused = parse_head(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            rules,
        );
        assert_eq!(
            refused.map(|_| ()),
            Err(Rejection::bad("both Content-Length and Transfer-Encoding")),
            "a length beside another coding stays a 400"
        );
    }

    #[test]
    fn more_than_a_hundred_headers_is_431() {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for index in 0..MAX_HEADERS {
            head.push_str(&format!("x-{index}: v\r\n"));
        }
        head.push_str("\r\n");
        assert_eq!(status(&head), 431);
    }
}
