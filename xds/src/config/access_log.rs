//! Access logs: where each line goes and what it says.

use std::path::PathBuf;

/// One `access_log` entry of a connection manager or TCP proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLog {
    /// Where lines are written.
    pub sink: AccessLogSink,
    /// How a line is made.
    pub format: LogFormat,
}

/// Where an access log writes (`envoy.access_loggers.file`, `.stdout`, `.stderr`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccessLogSink {
    /// Appended to this file (`/dev/stdout` and `/dev/stderr` included).
    File(PathBuf),
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// A substitution format: text with command operators, or a JSON object whose string values
/// are such texts.
#[derive(Clone, Debug, PartialEq)]
pub enum LogFormat {
    /// A text line; Envoy's default format when none is configured.
    Text(FormatText),
    /// One JSON object per line.
    Json {
        /// The object's members, in configuration order.
        fields: Vec<(String, JsonField)>,
        /// `omit_empty_values`: members whose value is absent are left out.
        omit_empty: bool,
    },
}

/// A value of a JSON access log format.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonField {
    /// A string with command operators; a string that is exactly one operator keeps the
    /// operator's type (a number stays a number), as Envoy's typed JSON does.
    Text(FormatText),
    /// A literal number, boolean or null.
    Literal(serde_json::Value),
    /// A nested object.
    Object(Vec<(String, JsonField)>),
}

/// A parsed format string: literal text and command operators in order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FormatText {
    /// The pieces.
    pub pieces: Vec<FormatPiece>,
    /// `omit_empty_values` for text: an absent value prints as nothing instead of `-`.
    pub omit_empty: bool,
}

/// A piece of a format string.
#[derive(Clone, Debug, PartialEq)]
pub enum FormatPiece {
    /// Copied as it is.
    Literal(String),
    /// Replaced by the operator's value, cut to `max_len` characters when set.
    Operator {
        /// The command operator.
        operator: LogOperator,
        /// The `:N` suffix.
        max_len: Option<usize>,
    },
}

/// A command operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOperator {
    /// `%START_TIME%`: when the request or connection began, in Envoy's default format.
    StartTime,
    /// `%REQ(X?Y)%`: request header `X`, else `Y` (lower-cased; pseudo-headers such as
    /// `:path` included).
    RequestHeader {
        /// The header read first.
        name: String,
        /// The header read when the first is absent.
        fallback: Option<String>,
    },
    /// `%RESP(X?Y)%`: response header `X`, else `Y`.
    ResponseHeader {
        /// The header read first.
        name: String,
        /// The header read when the first is absent.
        fallback: Option<String>,
    },
    /// `%RESPONSE_CODE%` (0 when no response was sent).
    ResponseCode,
    /// `%RESPONSE_CODE_DETAILS%`.
    ResponseCodeDetails,
    /// `%RESPONSE_FLAGS%`: Envoy's short flags (`NR`, `UF`, `UAEX`...), `-` when none.
    ResponseFlags,
    /// `%DURATION%`: milliseconds from the start to the last byte sent.
    Duration,
    /// `%BYTES_RECEIVED%`: body (HTTP) or stream (TCP) bytes received from downstream.
    BytesReceived,
    /// `%BYTES_SENT%`: body (HTTP) or stream (TCP) bytes sent downstream.
    BytesSent,
    /// `%UPSTREAM_HOST%`: the endpoint that served the request.
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%` and `%UPSTREAM_CLUSTER_RAW%`.
    UpstreamCluster,
    /// `%ROUTE_NAME%`.
    RouteName,
    /// `%PROTOCOL%`: `HTTP/1.1`, `HTTP/2`...; `-` for TCP.
    Protocol,
    /// `%REQUESTED_SERVER_NAME%`: the TLS client's SNI.
    RequestedServerName,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: the client address (after trusted `x-forwarded-for`).
    DownstreamRemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`: the connection's peer.
    DownstreamDirectRemoteAddress,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamDirectRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`.
    DownstreamLocalAddress,
    /// `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`.
    DownstreamLocalAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_PORT%`.
    DownstreamLocalPort,
    /// `%UPSTREAM_LOCAL_ADDRESS%`, `%UPSTREAM_TRANSPORT_FAILURE_REASON%`,
    /// `%CONNECTION_TERMINATION_DETAILS%`: known to Envoy, not recorded by mesh-host; always
    /// absent (`-`).
    NotRecorded,
    /// `%MESH_WORKLOAD%` (mesh-host's own): the workload (component) that served the request.
    Workload,
}
