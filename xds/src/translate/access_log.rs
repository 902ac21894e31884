//! `access_log` entries of the connection manager and the TCP proxy -> [`AccessLog`].

use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    StderrAccessLog, StdoutAccessLog, stderr_access_log, stdout_access_log,
};
use envoy_types::pb::google::protobuf::{self, Any};
use prost::Name;

use super::common::data_source;
use super::error::{FieldError, FieldResult};
use super::extensions::decode_any;
use super::log_format::{DEFAULT_FORMAT, format_text};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{AccessLog, AccessLogSink, DataSource, JsonField, LogFormat};
use crate::field_policy::ignored;

/// Translates a list of `access_log` entries. Loggers other than file, stdout and stderr
/// (gRPC, OpenTelemetry) only export telemetry elsewhere: they have no effect here.
pub(crate) fn access_logs(
    logs: Vec<accesslog::AccessLog>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<AccessLog>> {
    let mut out = Vec::new();
    for (i, log) in logs.into_iter().enumerate() {
        if let Some(log) = access_log(log, &path.index(i))? {
            out.push(log);
        }
    }
    Ok(out)
}

fn access_log(
    mut log: accesslog::AccessLog,
    path: &FieldPath<'_>,
) -> FieldResult<Option<AccessLog>> {
    use accesslog::access_log::ConfigType;
    let any = match log.config_type.take() {
        Some(ConfigType::TypedConfig(any)) => any,
        None => return Err(FieldError::missing(&path.field("typed_config"))),
    };
    // The name only labels the logger; the typed config says which one it is.
    log.name.clear();
    reject_unsupported(&log, path)?;
    let at = path.field("typed_config");
    let type_url = any.type_url.as_str();
    let (sink, format) = if type_url == FileAccessLog::type_url() {
        file_log(&any, &at)?
    } else if type_url == StdoutAccessLog::type_url() {
        let proto: StdoutAccessLog = decode(&any, &at)?;
        let format = match proto.access_log_format {
            Some(stdout_access_log::AccessLogFormat::LogFormat(f)) => {
                substitution_format(f, &at.field("log_format"))?
            }
            None => default_format(),
        };
        (AccessLogSink::Stdout, format)
    } else if type_url == StderrAccessLog::type_url() {
        let proto: StderrAccessLog = decode(&any, &at)?;
        let format = match proto.access_log_format {
            Some(stderr_access_log::AccessLogFormat::LogFormat(f)) => {
                substitution_format(f, &at.field("log_format"))?
            }
            None => default_format(),
        };
        (AccessLogSink::Stderr, format)
    } else {
        ignored(
            "AccessLog",
            "typed_config (a logger other than file, stdout or stderr)",
        );
        return Ok(None);
    };
    Ok(Some(AccessLog { sink, format }))
}

fn decode<M>(any: &Any, path: &FieldPath<'_>) -> FieldResult<M>
where
    M: prost::Message + prost::Name + Default,
{
    decode_any(any).map_err(|e| FieldError::invalid(path, format!("cannot decode: {e}")))
}

fn file_log(any: &Any, path: &FieldPath<'_>) -> FieldResult<(AccessLogSink, LogFormat)> {
    use file_access_log::AccessLogFormat;
    let mut proto: FileAccessLog = decode(any, path)?;
    if proto.path.is_empty() {
        return Err(FieldError::missing(&path.field("path")));
    }
    let sink = AccessLogSink::File(std::mem::take(&mut proto.path).into());
    let format = match proto.access_log_format.take() {
        None => default_format(),
        Some(AccessLogFormat::Format(text)) => {
            LogFormat::Text(text_format(&text, false, &path.field("format"))?)
        }
        Some(AccessLogFormat::JsonFormat(s)) => json_format(s, false, &path.field("json_format"))?,
        Some(AccessLogFormat::TypedJsonFormat(s)) => {
            json_format(s, false, &path.field("typed_json_format"))?
        }
        Some(AccessLogFormat::LogFormat(f)) => substitution_format(f, &path.field("log_format"))?,
    };
    reject_unsupported(&proto, path)?;
    Ok((sink, format))
}

fn default_format() -> LogFormat {
    // The constant is a valid format: `log_format`'s unit tests parse it.
    LogFormat::Text(format_text(DEFAULT_FORMAT, false).unwrap_or_default())
}

fn substitution_format(
    mut f: core::SubstitutionFormatString,
    path: &FieldPath<'_>,
) -> FieldResult<LogFormat> {
    use core::substitution_format_string::Format;
    let omit_empty = std::mem::take(&mut f.omit_empty_values);
    // `content_type` only applies to local reply bodies; JSON members are always sorted.
    f.content_type.clear();
    f.json_format_options = None;
    let format = match f.format.take() {
        Some(Format::TextFormat(text)) => {
            LogFormat::Text(text_format(&text, omit_empty, &path.field("text_format"))?)
        }
        Some(Format::TextFormatSource(source)) => {
            let at = path.field("text_format_source");
            let text = match data_source(source, &at)? {
                DataSource::Inline(bytes) => String::from_utf8(bytes.to_vec())
                    .map_err(|_| FieldError::invalid(&at, "the format is not UTF-8"))?,
                DataSource::Filename(_) => {
                    return Err(FieldError::unsupported(&at.field("filename")));
                }
            };
            LogFormat::Text(text_format(&text, omit_empty, &at)?)
        }
        Some(Format::JsonFormat(s)) => json_format(s, omit_empty, &path.field("json_format"))?,
        None => return Err(FieldError::missing(&path.field("format"))),
    };
    reject_unsupported(&f, path)?;
    Ok(format)
}

fn text_format(
    text: &str,
    omit_empty: bool,
    path: &FieldPath<'_>,
) -> FieldResult<crate::config::FormatText> {
    format_text(text, omit_empty).map_err(|e| FieldError::invalid(path, e))
}

fn json_format(
    s: protobuf::Struct,
    omit_empty: bool,
    path: &FieldPath<'_>,
) -> FieldResult<LogFormat> {
    Ok(LogFormat::Json {
        fields: json_fields(s, omit_empty, path)?,
        omit_empty,
    })
}

fn json_fields(
    s: protobuf::Struct,
    omit_empty: bool,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<(String, JsonField)>> {
    use protobuf::value::Kind;
    s.fields
        .into_iter()
        .map(|(key, value)| {
            let at = path.field(&key);
            let field = match value.kind {
                Some(Kind::StringValue(text)) => {
                    JsonField::Text(text_format(&text, omit_empty, &at)?)
                }
                Some(Kind::StructValue(nested)) => {
                    JsonField::Object(json_fields(nested, omit_empty, &at)?)
                }
                Some(Kind::NumberValue(n)) => JsonField::Literal(json_number(n)),
                Some(Kind::BoolValue(b)) => JsonField::Literal(serde_json::Value::Bool(b)),
                None | Some(Kind::NullValue(_)) => JsonField::Literal(serde_json::Value::Null),
                Some(Kind::ListValue(_)) => {
                    return Err(FieldError::invalid(
                        &at,
                        "lists are not allowed in a JSON access log format",
                    ));
                }
            };
            Ok((key, field))
        })
        .collect()
}

/// A number of a JSON format as Envoy prints it: whole numbers without a fraction.
fn json_number(n: f64) -> serde_json::Value {
    // Whole numbers within i64's exact range print as integers, as Envoy's do.
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
