//! What Envoy's admin does to a config dump before it serves it, on dynamic messages (so
//! inside every typed `Any`): sensitive fields redacted, `?resource=` selection, `?mask=`
//! trimming.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, ReflectMessage, Value,
};

use super::DumpError;

const ANY: &str = "google.protobuf.Any";
/// Envoy's marker for secrets (`udpa.annotations.sensitive`), and what replaces them.
const SENSITIVE: &str = "udpa.annotations.sensitive";
const REDACTED: &str = "[redacted]";

/// Replaces every field marked sensitive, and everything below one, as Envoy's
/// `MessageUtil::redact` does: strings and bytes become `[redacted]`, other scalars are cleared.
pub(super) fn redact(message: &mut DynamicMessage, pool: &DescriptorPool) {
    let marker = pool.get_extension_by_name(SENSITIVE);
    redact_message(message, false, marker.as_ref(), pool);
}

fn is_sensitive(field: &FieldDescriptor, marker: Option<&ExtensionDescriptor>) -> bool {
    marker.is_some_and(|marker| {
        let options = field.options();
        options.has_extension(marker) && options.get_extension(marker).as_bool() == Some(true)
    })
}

fn redact_message(
    message: &mut DynamicMessage,
    sensitive: bool,
    marker: Option<&ExtensionDescriptor>,
    pool: &DescriptorPool,
) {
    if message.descriptor().full_name() == ANY {
        in_any(message, pool, |inner| {
            redact_message(inner, sensitive, marker, pool)
        });
        return;
    }
    let mut cleared = Vec::new();
    for (field, value) in message.fields_mut() {
        let sensitive = sensitive || is_sensitive(&field, marker);
        if !redact_value(value, sensitive, marker, pool) {
            cleared.push(field);
        }
    }
    for field in cleared {
        message.clear_field(&field);
    }
}

/// Returns false when the value must be cleared (a sensitive scalar other than text).
fn redact_value(
    value: &mut Value,
    sensitive: bool,
    marker: Option<&ExtensionDescriptor>,
    pool: &DescriptorPool,
) -> bool {
    match value {
        Value::Message(message) => redact_message(message, sensitive, marker, pool),
        Value::List(items) => {
            items.retain_mut(|item| redact_value(item, sensitive, marker, pool));
        }
        Value::Map(entries) => {
            entries.retain(|_, item| redact_value(item, sensitive, marker, pool));
        }
        Value::String(text) if sensitive => *text = REDACTED.to_owned(),
        Value::Bytes(bytes) if sensitive => *bytes = Bytes::from_static(REDACTED.as_bytes()),
        _ if sensitive => return false,
        _ => {}
    }
    true
}

/// Runs `change` on the message packed in an `Any`, and packs the result back. An `Any` of a
/// type the descriptors do not know is left alone.
fn in_any(
    any: &mut DynamicMessage,
    pool: &DescriptorPool,
    change: impl FnOnce(&mut DynamicMessage),
) {
    let Some(mut inner) = unpack(any, pool) else {
        return;
    };
    change(&mut inner);
    any.set_field_by_name("value", Value::Bytes(Bytes::from(inner.encode_to_vec())));
}

fn unpack(any: &DynamicMessage, pool: &DescriptorPool) -> Option<DynamicMessage> {
    let type_url = any.get_field_by_name("type_url")?;
    let name = type_url.as_str()?.rsplit('/').next()?;
    let descriptor = pool.get_message_by_name(name)?;
    let value = any.get_field_by_name("value")?;
    DynamicMessage::decode(descriptor, value.as_bytes()?.as_ref()).ok()
}

fn pack(message: &DynamicMessage, pool: &DescriptorPool) -> Option<DynamicMessage> {
    let mut any = DynamicMessage::new(pool.get_message_by_name(ANY)?);
    any.set_field_by_name(
        "type_url",
        Value::String(format!(
            "type.googleapis.com/{}",
            message.descriptor().full_name()
        )),
    );
    any.set_field_by_name("value", Value::Bytes(Bytes::from(message.encode_to_vec())));
    Some(any)
}

fn configs(dump: &DynamicMessage) -> Vec<DynamicMessage> {
    dump.get_field_by_name("configs")
        .and_then(|configs| {
            configs.as_list().map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_message().cloned())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Whether some dump has a repeated field named `resource`.
pub(super) fn has_resource_field(
    dump: &DynamicMessage,
    resource: &str,
    pool: &DescriptorPool,
) -> bool {
    configs(dump).iter().any(|config| {
        unpack(config, pool).is_some_and(|inner| {
            inner
                .descriptor()
                .get_field_by_name(resource)
                .is_some_and(|field| field.is_list())
        })
    })
}

/// Every element of the repeated field `resource` of every dump, each packed as an `Any` of
/// its own, as Envoy's `?resource=` answers.
pub(super) fn select_resource(
    dump: &DynamicMessage,
    resource: &str,
    pool: &DescriptorPool,
) -> Result<Vec<Value>, DumpError> {
    let mut selected = Vec::new();
    for config in configs(dump) {
        let Some(inner) = unpack(&config, pool) else {
            continue;
        };
        let Some(field) = inner.descriptor().get_field_by_name(resource) else {
            continue;
        };
        if !field.is_list() {
            continue;
        }
        for item in inner.get_field(&field).as_list().unwrap_or_default() {
            let Some(element) = item.as_message() else {
                continue;
            };
            let packed = pack(element, pool)
                .ok_or_else(|| DumpError::Build("no google.protobuf.Any descriptor".into()))?;
            selected.push(Value::Message(packed));
        }
    }
    Ok(selected)
}

/// Makes `selected` the dump's `configs`.
pub(super) fn replace_configs(dump: &mut DynamicMessage, selected: Vec<Value>) {
    dump.set_field_by_name("configs", Value::List(selected));
}

/// Keeps only the fields `mask` names in each entry of `configs` (`a.b.c` paths, through
/// nested messages, repeated messages and typed `Any`s).
pub(super) fn mask_configs(dump: &mut DynamicMessage, mask: &[String], pool: &DescriptorPool) {
    let paths: Vec<Vec<&str>> = mask
        .iter()
        .map(|path| path.split('.').filter(|s| !s.is_empty()).collect())
        .filter(|path: &Vec<&str>| !path.is_empty())
        .collect();
    let masked: Vec<Value> = configs(dump)
        .into_iter()
        .map(|mut config| {
            trim_message(&mut config, &paths, pool);
            Value::Message(config)
        })
        .collect();
    replace_configs(dump, masked);
}

fn trim_message(message: &mut DynamicMessage, paths: &[Vec<&str>], pool: &DescriptorPool) {
    if message.descriptor().full_name() == ANY {
        in_any(message, pool, |inner| trim_message(inner, paths, pool));
        return;
    }
    let fields: Vec<FieldDescriptor> = message.fields().map(|(field, _)| field).collect();
    for field in fields {
        let below: Vec<Vec<&str>> = paths
            .iter()
            .filter(|path| path.first() == Some(&field.name()))
            .map(|path| path[1..].to_vec())
            .collect();
        if below.is_empty() {
            message.clear_field(&field);
        } else if below.iter().all(|path| !path.is_empty()) {
            trim_value(message.get_field_mut(&field), &below, pool);
        }
    }
}

fn trim_value(value: &mut Value, paths: &[Vec<&str>], pool: &DescriptorPool) {
    match value {
        Value::Message(message) => trim_message(message, paths, pool),
        Value::List(items) => items
            .iter_mut()
            .for_each(|item| trim_value(item, paths, pool)),
        Value::Map(entries) => entries
            .values_mut()
            .for_each(|item| trim_value(item, paths, pool)),
        _ => {}
    }
}
