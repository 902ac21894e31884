//! One access log line from a finished request or connection and a format.

use std::borrow::Cow;
use std::fmt::Write;
use std::net::SocketAddr;

use mesh_xds::config::{FormatPiece, FormatText, JsonField, LogFormat, LogOperator};

use super::LogRecord;

/// An operator's value: absent (`-` in text, `null` in JSON), text, or a number that JSON
/// keeps a number.
#[derive(Debug, PartialEq)]
enum Value<'a> {
    Absent,
    Text(Cow<'a, str>),
    Number(u64),
}

/// The line `format` makes of `record`, newline-terminated for JSON (a text format carries
/// its own newline, as in Envoy).
pub(super) fn render(format: &LogFormat, record: &LogRecord) -> String {
    match format {
        LogFormat::Text(text) => render_text(text, record),
        LogFormat::Json { fields, omit_empty } => {
            let mut line = json_object(fields, *omit_empty, record).to_string();
            line.push('\n');
            line
        }
    }
}

fn render_text(text: &FormatText, record: &LogRecord) -> String {
    let mut out = String::new();
    for piece in &text.pieces {
        match piece {
            FormatPiece::Literal(literal) => out.push_str(literal),
            FormatPiece::Operator { operator, max_len } => {
                match value(operator, record) {
                    Value::Absent if text.omit_empty => {}
                    Value::Absent => out.push('-'),
                    Value::Text(s) => out.push_str(truncate(&s, *max_len)),
                    Value::Number(n) => {
                        let n = n.to_string();
                        out.push_str(truncate(&n, *max_len));
                    }
                };
            }
        }
    }
    out
}

fn json_object(
    fields: &[(String, JsonField)],
    omit_empty: bool,
    record: &LogRecord,
) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (key, field) in fields {
        let value = match field {
            JsonField::Literal(literal) => literal.clone(),
            JsonField::Object(nested) => json_object(nested, omit_empty, record),
            JsonField::Text(text) => match text.pieces.as_slice() {
                [FormatPiece::Operator { operator, max_len }] => match value(operator, record) {
                    Value::Absent => serde_json::Value::Null,
                    Value::Text(s) => truncate(&s, *max_len).into(),
                    Value::Number(n) => n.into(),
                },
                _ => render_text(text, record).into(),
            },
        };
        if omit_empty && value.is_null() {
            continue;
        }
        object.insert(key.clone(), value);
    }
    serde_json::Value::Object(object)
}

/// At most `max_len` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max_len: Option<usize>) -> &str {
    let Some(mut end) = max_len.filter(|&max| max < s.len()) else {
        return s;
    };
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn value<'a>(operator: &LogOperator, record: &'a LogRecord) -> Value<'a> {
    use LogOperator as Op;
    let text = |s: Option<&'a str>| s.map_or(Value::Absent, |s| Value::Text(Cow::Borrowed(s)));
    let address = |a: SocketAddr| Value::Text(Cow::Owned(a.to_string()));
    match operator {
        Op::StartTime => Value::Text(Cow::Owned(start_time(record.start))),
        Op::RequestHeader { name, fallback } => header_value(record.request_header(name))
            .or_else(|| fallback.as_deref().and_then(|f| record.request_header(f)))
            .map_or(Value::Absent, |s| Value::Text(Cow::Borrowed(s)))
            .or_absent(),
        Op::ResponseHeader { name, fallback } => header_value(record.response_header(name))
            .or_else(|| fallback.as_deref().and_then(|f| record.response_header(f)))
            .map_or(Value::Absent, |s| Value::Text(Cow::Borrowed(s)))
            .or_absent(),
        Op::ResponseCode => Value::Number(record.response_code.into()),
        Op::ResponseCodeDetails => text(record.details),
        // No flag is written as `-` in JSON too: Envoy's value is that text, not absent.
        Op::ResponseFlags => Value::Text(Cow::Borrowed(record.flags.unwrap_or("-"))),
        Op::Duration => {
            Value::Number(u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX))
        }
        Op::BytesReceived => Value::Number(record.bytes_received),
        Op::BytesSent => Value::Number(record.bytes_sent),
        Op::UpstreamHost => text(record.upstream_host.as_deref()),
        Op::UpstreamCluster => text(record.upstream_cluster.as_deref()),
        Op::RouteName => text(record.route_name.as_deref()),
        Op::Protocol => text(record.protocol),
        Op::RequestedServerName => text(record.downstream.server_name.as_deref()),
        Op::DownstreamRemoteAddress => address(record.downstream.remote),
        Op::DownstreamRemoteAddressWithoutPort => {
            Value::Text(Cow::Owned(record.downstream.remote.ip().to_string()))
        }
        Op::DownstreamDirectRemoteAddress => address(record.downstream.peer),
        Op::DownstreamDirectRemoteAddressWithoutPort => {
            Value::Text(Cow::Owned(record.downstream.peer.ip().to_string()))
        }
        Op::DownstreamLocalAddress => address(record.downstream.local),
        Op::DownstreamLocalAddressWithoutPort => {
            Value::Text(Cow::Owned(record.downstream.local.ip().to_string()))
        }
        Op::DownstreamLocalPort => Value::Number(record.downstream.local.port().into()),
        Op::NotRecorded => Value::Absent,
        Op::Workload => text(record.workload.as_ref().map(|w| w.as_str())),
    }
}

/// An empty header value counts as absent, as in Envoy.
fn header_value(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

impl Value<'_> {
    fn or_absent(self) -> Self {
        match self {
            Value::Text(s) if s.is_empty() => Value::Absent,
            other => other,
        }
    }
}

/// Envoy's default `%START_TIME%` format, `%Y-%m-%dT%H:%M:%E3SZ`, in UTC.
fn start_time(start: std::time::SystemTime) -> String {
    let at = time::OffsetDateTime::from(start);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    );
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::access_log::Downstream;

    fn record() -> LogRecord {
        let mut request = http::HeaderMap::new();
        request.insert("user-agent", "curl/8".parse().expect("test fixture"));
        LogRecord {
            start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            method: Some("GET".into()),
            path: Some("/a?b".into()),
            authority: Some("example.com".into()),
            scheme: Some("http"),
            request_headers: request,
            response_headers: http::HeaderMap::new(),
            response_code: 200,
            details: Some("via_upstream"),
            flags: None,
            duration: Duration::from_millis(12),
            bytes_received: 0,
            bytes_sent: 5,
            upstream_host: Some("127.0.0.1:9000".into()),
            upstream_cluster: Some("echo".into()),
            route_name: None,
            protocol: Some("HTTP/1.1"),
            downstream: Downstream {
                peer: "127.0.0.1:5555".parse().expect("test fixture"),
                remote: "127.0.0.1:5555".parse().expect("test fixture"),
                local: "127.0.0.1:8080".parse().expect("test fixture"),
                server_name: None,
            },
            workload: None,
        }
    }

    fn text(format: &str) -> LogFormat {
        let pieces = mesh_xds::translate::parse_log_format(format).expect("test fixture");
        LogFormat::Text(FormatText {
            pieces,
            omit_empty: false,
        })
    }

    #[test]
    fn start_time_is_envoys_default_format() {
        assert_eq!(
            start_time(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn absent_values_are_dashes_in_text() {
        let line = render(
            &text(
                "%REQ(:METHOD)% %REQ(X-MISSING?:PATH)% %REQ(X-NONE)% %ROUTE_NAME% %RESPONSE_FLAGS%\n",
            ),
            &record(),
        );
        assert_eq!(line, "GET /a?b - - -\n");
    }

    #[test]
    fn max_length_cuts_the_value() {
        assert_eq!(render(&text("%REQ(USER-AGENT):4%"), &record()), "curl");
    }

    #[test]
    fn json_keeps_numbers_and_nulls() {
        let format = LogFormat::Json {
            fields: vec![
                (
                    "code".into(),
                    JsonField::Text(format_text("%RESPONSE_CODE%")),
                ),
                ("route".into(), JsonField::Text(format_text("%ROUTE_NAME%"))),
                (
                    "line".into(),
                    JsonField::Text(format_text("%REQ(:METHOD)% %BYTES_SENT%")),
                ),
            ],
            omit_empty: false,
        };
        let line = render(&format, &record());
        let value: serde_json::Value = serde_json::from_str(&line).expect("test fixture");
        assert_eq!(
            value,
            serde_json::json!({"code": 200, "route": null, "line": "GET 5"})
        );
    }

    fn format_text(format: &str) -> FormatText {
        FormatText {
            pieces: mesh_xds::translate::parse_log_format(format).expect("test fixture"),
            omit_empty: false,
        }
    }
}
