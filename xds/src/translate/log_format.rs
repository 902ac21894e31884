//! Envoy's substitution format strings: literal text and `%OPERATOR(args):N%` commands.

use crate::config::{FormatPiece, FormatText, LogOperator};

/// Envoy's format when an access log names none.
pub(crate) const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Why a format string is refused; the text names the offending command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A `%` that does not start a well-formed command.
    #[error(
        "no valid command at position {0} (a command is %NAME%, %NAME(args)% or %NAME(args):N%)"
    )]
    Malformed(usize),
    /// A command this data plane does not know.
    #[error("command operator %{0}% is not supported")]
    Unknown(String),
    /// A known command with arguments it does not take or cannot use.
    #[error("command operator %{name}% cannot take {args:?}")]
    Arguments {
        /// The command.
        name: String,
        /// Its arguments.
        args: String,
    },
}

/// Parses an Envoy substitution format string into literal pieces and command operators.
pub fn parse_format(format: &str) -> Result<Vec<FormatPiece>, FormatError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    let mut position = 0;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        position += start;
        let (command, used) = command(&rest[start..]).ok_or(FormatError::Malformed(position))?;
        if !literal.is_empty() {
            pieces.push(FormatPiece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(command?);
        rest = &rest[start + used..];
        position += used;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(FormatPiece::Literal(literal));
    }
    Ok(pieces)
}

/// Parses `text` as a whole format (for JSON values and text formats alike).
pub(crate) fn format_text(text: &str, omit_empty: bool) -> Result<FormatText, FormatError> {
    Ok(FormatText {
        pieces: parse_format(text)?,
        omit_empty,
    })
}

/// The command at the start of `text` (which starts with `%`) and the bytes it spans; `None`
/// when it is malformed.
fn command(text: &str) -> Option<(Result<FormatPiece, FormatError>, usize)> {
    let body = &text[1..];
    let name_len = body
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(body.len());
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let mut after = &body[name_len..];
    let mut args = None;
    if let Some(open) = after.strip_prefix('(') {
        let close = open.find(')')?;
        args = Some(&open[..close]);
        after = &open[close + 1..];
    }
    let mut max_len = None;
    if let Some(len) = after.strip_prefix(':') {
        let digits = len.find(|c: char| !c.is_ascii_digit()).unwrap_or(len.len());
        max_len = Some(len[..digits].parse::<usize>().ok()?);
        after = &len[digits..];
    }
    after.strip_prefix('%')?;
    let used = text.len() - after.len() + 1;
    let piece = operator(name, args).map(|operator| FormatPiece::Operator { operator, max_len });
    Some((piece, used))
}

fn operator(name: &str, args: Option<&str>) -> Result<LogOperator, FormatError> {
    let no_args = |operator: LogOperator| match args {
        None => Ok(operator),
        Some(args) => Err(FormatError::Arguments {
            name: name.to_owned(),
            args: args.to_owned(),
        }),
    };
    let header = |args: Option<&str>| -> Result<(String, Option<String>), FormatError> {
        let bad = || FormatError::Arguments {
            name: name.to_owned(),
            args: args.unwrap_or_default().to_owned(),
        };
        let args = args.filter(|a| !a.is_empty()).ok_or_else(bad)?;
        let mut names = args.split('?');
        let first = names.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
        let fallback = names.next().map(str::to_ascii_lowercase);
        if names.next().is_some() || fallback.as_deref() == Some("") {
            return Err(bad());
        }
        Ok((first.to_ascii_lowercase(), fallback))
    };
    use LogOperator as Op;
    match name {
        "START_TIME" => no_args(Op::StartTime),
        "REQ" => header(args).map(|(name, fallback)| Op::RequestHeader { name, fallback }),
        "RESP" => header(args).map(|(name, fallback)| Op::ResponseHeader { name, fallback }),
        "RESPONSE_CODE" => no_args(Op::ResponseCode),
        "RESPONSE_CODE_DETAILS" => no_args(Op::ResponseCodeDetails),
        "RESPONSE_FLAGS" => no_args(Op::ResponseFlags),
        "DURATION" => no_args(Op::Duration),
        "BYTES_RECEIVED" => no_args(Op::BytesReceived),
        "BYTES_SENT" => no_args(Op::BytesSent),
        "UPSTREAM_HOST" => no_args(Op::UpstreamHost),
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => no_args(Op::UpstreamCluster),
        "ROUTE_NAME" => no_args(Op::RouteName),
        "PROTOCOL" => no_args(Op::Protocol),
        "REQUESTED_SERVER_NAME" => no_args(Op::RequestedServerName),
        "DOWNSTREAM_REMOTE_ADDRESS" => no_args(Op::DownstreamRemoteAddress),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => no_args(Op::DownstreamRemoteAddressWithoutPort),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => no_args(Op::DownstreamDirectRemoteAddress),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            no_args(Op::DownstreamDirectRemoteAddressWithoutPort)
        }
        "DOWNSTREAM_LOCAL_ADDRESS" => no_args(Op::DownstreamLocalAddress),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => no_args(Op::DownstreamLocalAddressWithoutPort),
        "DOWNSTREAM_LOCAL_PORT" => no_args(Op::DownstreamLocalPort),
        "UPSTREAM_LOCAL_ADDRESS"
        | "UPSTREAM_TRANSPORT_FAILURE_REASON"
        | "CONNECTION_TERMINATION_DETAILS" => no_args(Op::NotRecorded),
        "MESH_WORKLOAD" => no_args(Op::Workload),
        other => Err(FormatError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(operator: LogOperator) -> FormatPiece {
        FormatPiece::Operator {
            operator,
            max_len: None,
        }
    }

    #[test]
    fn literals_and_operators_alternate() {
        let pieces = parse_format("[%START_TIME%] %RESPONSE_CODE%\n").expect("test fixture");
        assert_eq!(
            pieces,
            vec![
                FormatPiece::Literal("[".into()),
                op(LogOperator::StartTime),
                FormatPiece::Literal("] ".into()),
                op(LogOperator::ResponseCode),
                FormatPiece::Literal("\n".into()),
            ]
        );
    }

    #[test]
    fn request_header_takes_a_fallback_and_a_max_length() {
        let pieces = parse_format("%REQ(X-Envoy-Original-Path?:PATH):10%").expect("test fixture");
        assert_eq!(
            pieces,
            vec![FormatPiece::Operator {
                operator: LogOperator::RequestHeader {
                    name: "x-envoy-original-path".into(),
                    fallback: Some(":path".into()),
                },
                max_len: Some(10),
            }]
        );
    }

    #[test]
    fn an_unknown_operator_is_refused_by_name() {
        assert_eq!(
            parse_format("x %DYNAMIC_METADATA(a)% y"),
            Err(FormatError::Unknown("DYNAMIC_METADATA".into()))
        );
    }

    #[test]
    fn a_lone_percent_is_malformed() {
        assert_eq!(parse_format("100% done"), Err(FormatError::Malformed(3)));
    }

    #[test]
    fn an_operator_without_arguments_refuses_them() {
        assert!(matches!(
            parse_format("%START_TIME(%s)%"),
            Err(FormatError::Arguments { .. })
        ));
    }

    #[test]
    fn the_default_format_parses() {
        assert!(parse_format(DEFAULT_FORMAT).is_ok());
    }
}
