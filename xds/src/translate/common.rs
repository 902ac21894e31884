//! Conversions shared by several resource types: durations, header mutations, data sources,
//! addresses, metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf;

use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{DataSource, HeaderAppendAction, HeaderMutations, HeaderValueOption, HostPort};

/// A protobuf duration; negative durations are invalid.
pub(crate) fn duration(d: &protobuf::Duration, path: &FieldPath<'_>) -> FieldResult<Duration> {
    let secs =
        u64::try_from(d.seconds).map_err(|_| FieldError::invalid(path, "negative duration"))?;
    let nanos =
        u32::try_from(d.nanos).map_err(|_| FieldError::invalid(path, "negative duration"))?;
    if nanos >= 1_000_000_000 {
        return Err(FieldError::invalid(path, "nanos out of range"));
    }
    Ok(Duration::new(secs, nanos))
}

/// An optional duration where unset means `default` and zero means "disabled" (`None`),
/// Envoy's convention for timeouts.
pub(crate) fn timeout(
    d: Option<&protobuf::Duration>,
    default: Option<Duration>,
    path: &FieldPath<'_>,
) -> FieldResult<Option<Duration>> {
    match d {
        None => Ok(default),
        Some(d) => {
            let d = duration(d, path)?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

/// An optional duration that stays `None` when unset.
pub(crate) fn optional_duration(
    d: Option<&protobuf::Duration>,
    path: &FieldPath<'_>,
) -> FieldResult<Option<Duration>> {
    d.map(|d| duration(d, path)).transpose()
}

/// The four header-mutation lists found on route configurations, virtual hosts and routes.
pub(crate) fn header_mutations(
    request_add: Vec<core::HeaderValueOption>,
    request_remove: Vec<String>,
    response_add: Vec<core::HeaderValueOption>,
    response_remove: Vec<String>,
    path: &FieldPath<'_>,
) -> FieldResult<HeaderMutations> {
    let adds = |list: Vec<core::HeaderValueOption>, field: &str| {
        header_value_options(list, &path.field(field))
    };
    let lower = |list: Vec<String>| list.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    Ok(HeaderMutations {
        request_headers_to_add: adds(request_add, "request_headers_to_add")?,
        request_headers_to_remove: lower(request_remove),
        response_headers_to_add: adds(response_add, "response_headers_to_add")?,
        response_headers_to_remove: lower(response_remove),
    })
}

/// A list of headers to add, at `path`.
pub(crate) fn header_value_options(
    list: Vec<core::HeaderValueOption>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<HeaderValueOption>> {
    list.into_iter()
        .enumerate()
        .map(|(i, o)| header_value_option(o, &path.index(i)))
        .collect()
}

pub(crate) fn header_value_option(
    mut option: core::HeaderValueOption,
    path: &FieldPath<'_>,
) -> FieldResult<HeaderValueOption> {
    let header = option
        .header
        .take()
        .ok_or_else(|| FieldError::missing(&path.field("header")))?;
    let header_path = path.field("header");
    if header.key.is_empty() {
        return Err(FieldError::missing(&header_path.field("key")));
    }
    let value = if header.raw_value.is_empty() {
        header.value
    } else {
        String::from_utf8(header.raw_value)
            .map_err(|_| FieldError::invalid(&header_path.field("raw_value"), "not UTF-8"))?
    };
    let legacy_append = option.append.take().map(|b| b.value);
    let action = std::mem::take(&mut option.append_action);
    // Envoy: the deprecated `append` wins when set; its default was `true`.
    let append = match (
        legacy_append,
        core::header_value_option::HeaderAppendAction::try_from(action),
    ) {
        (Some(true), _) => HeaderAppendAction::AppendIfExistsOrAdd,
        (Some(false), _) => HeaderAppendAction::OverwriteIfExistsOrAdd,
        (None, Ok(a)) => {
            use core::header_value_option::HeaderAppendAction as A;
            match a {
                A::AppendIfExistsOrAdd => HeaderAppendAction::AppendIfExistsOrAdd,
                A::AddIfAbsent => HeaderAppendAction::AddIfAbsent,
                A::OverwriteIfExistsOrAdd => HeaderAppendAction::OverwriteIfExistsOrAdd,
                A::OverwriteIfExists => HeaderAppendAction::OverwriteIfExists,
            }
        }
        (None, Err(_)) => {
            return Err(FieldError::invalid(
                &path.field("append_action"),
                "unknown value",
            ));
        }
    };
    // An empty value is dropped unless asked otherwise; mesh-host keeps it either way.
    option.keep_empty_value = false;
    reject_unsupported(&option, path)?;
    Ok(HeaderValueOption {
        name: header.key.to_ascii_lowercase(),
        value,
        append,
    })
}

/// A data source for certificates and bodies.
pub(crate) fn data_source(
    mut source: core::DataSource,
    path: &FieldPath<'_>,
) -> FieldResult<DataSource> {
    use core::data_source::Specifier;
    let specifier = source.specifier.take();
    reject_unsupported(&source, path)?;
    match specifier {
        Some(Specifier::Filename(f)) if !f.is_empty() => Ok(DataSource::Filename(PathBuf::from(f))),
        Some(Specifier::InlineBytes(b)) => Ok(DataSource::Inline(b.into())),
        Some(Specifier::InlineString(s)) => Ok(DataSource::Inline(s.into_bytes().into())),
        Some(Specifier::EnvironmentVariable(_)) => {
            Err(FieldError::unsupported(&path.field("environment_variable")))
        }
        Some(Specifier::Filename(_)) | None => Err(FieldError::missing(path)),
    }
}

/// A socket address with a numeric port.
pub(crate) fn socket_address(
    address: Option<core::Address>,
    path: &FieldPath<'_>,
) -> FieldResult<HostPort> {
    use core::address::Address as Kind;
    use core::socket_address::PortSpecifier;
    let Some(mut address) = address else {
        return Err(FieldError::missing(path));
    };
    let mut socket = match address.address.take() {
        Some(Kind::SocketAddress(s)) => s,
        Some(Kind::Pipe(_)) => return Err(FieldError::unsupported(&path.field("pipe"))),
        Some(Kind::EnvoyInternalAddress(_)) => {
            return Err(FieldError::unsupported(
                &path.field("envoy_internal_address"),
            ));
        }
        None => return Err(FieldError::missing(&path.field("socket_address"))),
    };
    let at = path.field("socket_address");
    let host = std::mem::take(&mut socket.address);
    if host.is_empty() {
        return Err(FieldError::missing(&at.field("address")));
    }
    let port = match socket.port_specifier.take() {
        Some(PortSpecifier::PortValue(p)) => u16::try_from(p).map_err(|_| {
            FieldError::invalid(&at.field("port_value"), format!("{p} is not a port"))
        })?,
        Some(PortSpecifier::NamedPort(_)) => {
            return Err(FieldError::unsupported(&at.field("named_port")));
        }
        None => return Err(FieldError::missing(&at.field("port_value"))),
    };
    if socket.protocol != core::socket_address::Protocol::Tcp as i32 {
        return Err(FieldError::unsupported(&at.field("protocol")));
    }
    // IPv4-compat on dual-stack sockets is a kernel detail the host does not need.
    socket.ipv4_compat = false;
    reject_unsupported(&socket, &at)?;
    reject_unsupported(&address, path)?;
    Ok(HostPort { host, port })
}

/// `filter_metadata` as JSON values, keyed by filter name.
pub(crate) fn metadata(metadata: Option<core::Metadata>) -> BTreeMap<String, serde_json::Value> {
    metadata
        .map(|m| {
            m.filter_metadata
                .into_iter()
                .map(|(k, v)| (k, struct_to_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn struct_to_json(s: protobuf::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: protobuf::Value) -> serde_json::Value {
    use protobuf::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
    }
}

/// A `UInt32Value` with Envoy's default when unset.
pub(crate) fn u32_or(value: Option<protobuf::UInt32Value>, default: u32) -> u32 {
    value.map_or(default, |v| v.value)
}

/// The inverse of [`struct_to_json`], for the node metadata sent to the control plane.
pub(crate) fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> protobuf::Struct {
    protobuf::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &serde_json::Value) -> protobuf::Value {
    use protobuf::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(protobuf::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    protobuf::Value { kind: Some(kind) }
}
