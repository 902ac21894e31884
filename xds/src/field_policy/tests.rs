//! The tables are complete (every field Envoy defines is classified), true (each class is
//! what the translators do) and published (`docs/xds-support.md` is generated from them).

use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::endpoint::v3 as eds;
use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::envoy::config::route::v3 as rds;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as sds;
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};

use super::{FieldClass, MESSAGES, MessagePolicy, markdown};
use crate::config::{Cluster, Listener, LoadAssignment, RouteConfig, Secret};
use crate::translate::reflect::pool;
use crate::translate::{Problem, TranslateError};

#[test]
fn every_field_of_every_covered_message_is_classified_once() {
    let pool = pool().expect("descriptor pool");
    for policy in MESSAGES {
        let descriptor = pool
            .get_message_by_name(policy.message)
            .unwrap_or_else(|| panic!("{} is not an Envoy message", policy.message));
        let defined: Vec<String> = descriptor.fields().map(|f| f.name().to_owned()).collect();
        for field in &defined {
            let rules = policy.fields.iter().filter(|r| r.field == field).count();
            assert_eq!(rules, 1, "{}.{field} has {rules} rules", policy.message);
        }
        for rule in policy.fields {
            assert!(
                defined.contains(&rule.field.to_owned()),
                "{}.{} is not a field of the message",
                policy.message,
                rule.field
            );
        }
    }
}

/// Where a covered message sits inside a resource the translators take, and the smallest
/// valid such resource.
struct Probe {
    message: &'static str,
    resource: &'static str,
    json: &'static str,
    /// Field names and list indexes from the resource to the message; an `Any` on the way is
    /// unpacked.
    path: &'static [&'static str],
    /// How the path is written in errors.
    error_prefix: &'static str,
}

const LISTENER_JSON: &str = r#"{
  "name": "l",
  "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
  "filter_chains": [{"filters": [{
    "name": "envoy.filters.network.http_connection_manager",
    "typed_config": {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "http",
      "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
      "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
    }
  }]}]
}"#;

/// [`LISTENER_JSON`] with OpenTelemetry tracing on its connection manager.
const TRACING_LISTENER_JSON: &str = r#"{
  "name": "l",
  "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
  "filter_chains": [{"filters": [{
    "name": "envoy.filters.network.http_connection_manager",
    "typed_config": {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "http",
      "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
      "tracing": {"provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        "grpc_service": {"envoy_grpc": {"cluster_name": "otel"}}}}},
      "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
    }
  }]}]
}"#;

const ROUTES_JSON: &str = r#"{
  "name": "r",
  "virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": [
    {"match": {"prefix": "/"}, "route": {"cluster": "c"}}
  ]}]
}"#;

const CLUSTER_JSON: &str = r#"{
  "name": "c",
  "type": "EDS",
  "eds_cluster_config": {"eds_config": {"ads": {}}}
}"#;

const ENDPOINTS_JSON: &str = r#"{
  "cluster_name": "c",
  "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
    {"socket_address": {"address": "127.0.0.1", "port_value": 80}}}}]}]
}"#;

const SECRET_JSON: &str = r#"{
  "name": "s",
  "validation_context": {}
}"#;

const PROBES: &[Probe] = &[
    Probe {
        message: "envoy.extensions.transport_sockets.tls.v3.Secret",
        resource: "envoy.extensions.transport_sockets.tls.v3.Secret",
        json: SECRET_JSON,
        path: &[],
        error_prefix: "",
    },
    Probe {
        message: "envoy.config.listener.v3.Listener",
        resource: "envoy.config.listener.v3.Listener",
        json: LISTENER_JSON,
        path: &[],
        error_prefix: "",
    },
    Probe {
        message: "envoy.config.listener.v3.FilterChain",
        resource: "envoy.config.listener.v3.Listener",
        json: LISTENER_JSON,
        path: &["filter_chains", "0"],
        error_prefix: "filter_chains[0].",
    },
    Probe {
        message: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        resource: "envoy.config.listener.v3.Listener",
        json: LISTENER_JSON,
        path: &["filter_chains", "0", "filters", "0", "typed_config"],
        error_prefix: "filter_chains[0].filters[0].typed_config.",
    },
    Probe {
        message: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
        resource: "envoy.config.listener.v3.Listener",
        json: TRACING_LISTENER_JSON,
        path: &[
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "tracing",
        ],
        error_prefix: "filter_chains[0].filters[0].typed_config.tracing.",
    },
    Probe {
        message: "envoy.config.trace.v3.OpenTelemetryConfig",
        resource: "envoy.config.listener.v3.Listener",
        json: TRACING_LISTENER_JSON,
        path: &[
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "tracing",
            "provider",
            "typed_config",
        ],
        error_prefix: "filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.",
    },
    Probe {
        message: "envoy.extensions.filters.http.router.v3.Router",
        resource: "envoy.config.listener.v3.Listener",
        json: LISTENER_JSON,
        path: &[
            "filter_chains",
            "0",
            "filters",
            "0",
            "typed_config",
            "http_filters",
            "0",
            "typed_config",
        ],
        error_prefix: "filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.",
    },
    Probe {
        message: "envoy.config.route.v3.RouteConfiguration",
        resource: "envoy.config.route.v3.RouteConfiguration",
        json: ROUTES_JSON,
        path: &[],
        error_prefix: "",
    },
    Probe {
        message: "envoy.config.route.v3.VirtualHost",
        resource: "envoy.config.route.v3.RouteConfiguration",
        json: ROUTES_JSON,
        path: &["virtual_hosts", "0"],
        error_prefix: "virtual_hosts[0].",
    },
    Probe {
        message: "envoy.config.route.v3.Route",
        resource: "envoy.config.route.v3.RouteConfiguration",
        json: ROUTES_JSON,
        path: &["virtual_hosts", "0", "routes", "0"],
        error_prefix: "virtual_hosts[0].routes[0].",
    },
    Probe {
        message: "envoy.config.route.v3.RouteAction",
        resource: "envoy.config.route.v3.RouteConfiguration",
        json: ROUTES_JSON,
        path: &["virtual_hosts", "0", "routes", "0", "route"],
        error_prefix: "virtual_hosts[0].routes[0].route.",
    },
    Probe {
        message: "envoy.config.cluster.v3.Cluster",
        resource: "envoy.config.cluster.v3.Cluster",
        json: CLUSTER_JSON,
        path: &[],
        error_prefix: "",
    },
    Probe {
        message: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        resource: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        json: ENDPOINTS_JSON,
        path: &[],
        error_prefix: "",
    },
    Probe {
        message: "envoy.config.endpoint.v3.LocalityLbEndpoints",
        resource: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        json: ENDPOINTS_JSON,
        path: &["endpoints", "0"],
        error_prefix: "endpoints[0].",
    },
    Probe {
        message: "envoy.config.endpoint.v3.LbEndpoint",
        resource: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        json: ENDPOINTS_JSON,
        path: &["endpoints", "0", "lb_endpoints", "0"],
        error_prefix: "endpoints[0].lb_endpoints[0].",
    },
    Probe {
        message: "envoy.config.endpoint.v3.Endpoint",
        resource: "envoy.config.endpoint.v3.ClusterLoadAssignment",
        json: ENDPOINTS_JSON,
        path: &["endpoints", "0", "lb_endpoints", "0", "endpoint"],
        error_prefix: "endpoints[0].lb_endpoints[0].endpoint.",
    },
];

fn parse(message: &str, json: &str) -> DynamicMessage {
    let descriptor = pool()
        .expect("descriptor pool")
        .get_message_by_name(message)
        .expect("message");
    let mut deserializer = serde_json::Deserializer::from_str(json);
    DynamicMessage::deserialize(descriptor, &mut deserializer).expect("probe JSON")
}

/// A value that makes `field` set, and set to something other than its "off" value where
/// that is what a translator accepts (a `BoolValue` is `true`, a number is 1).
fn probe_value(field: &FieldDescriptor) -> Value {
    let single = |kind: &Kind| -> Value {
        match kind {
            Kind::Bool => Value::Bool(true),
            Kind::String => Value::String("probe".to_owned()),
            Kind::Bytes => Value::Bytes("probe".into()),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(1),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(1),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(1),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(1),
            Kind::Float => Value::F32(1.0),
            Kind::Double => Value::F64(1.0),
            Kind::Enum(e) => Value::EnumNumber(
                e.values()
                    .map(|v| v.number())
                    .find(|n| *n != 0)
                    .unwrap_or(0),
            ),
            Kind::Message(m) => {
                let mut message = DynamicMessage::new(m.clone());
                if m.full_name().starts_with("google.protobuf.")
                    && m.full_name().ends_with("Value")
                    && let Some(value) = m.get_field_by_name("value")
                {
                    message.set_field(&value, probe_value(&value));
                } else if m.full_name() == "google.protobuf.Duration"
                    && let Some(seconds) = m.get_field_by_name("seconds")
                {
                    message.set_field(&seconds, Value::I64(1));
                }
                Value::Message(message)
            }
        }
    };
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields are entry messages")
        };
        let value = entry.map_entry_value_field();
        let mut map = std::collections::HashMap::new();
        map.insert(MapKey::String("probe".to_owned()), single(&value.kind()));
        Value::Map(map)
    } else if field.is_list() {
        Value::List(vec![single(&field.kind())])
    } else {
        single(&field.kind())
    }
}

/// Applies `edit` to the message at `path` inside `message`, unpacking `Any` on the way.
fn edit_at(message: &mut DynamicMessage, path: &[&str], edit: &mut dyn FnMut(&mut DynamicMessage)) {
    let Some((first, rest)) = path.split_first() else {
        if message.descriptor().full_name() == "google.protobuf.Any" {
            return edit_any(message, edit);
        }
        return edit(message);
    };
    if message.descriptor().full_name() == "google.protobuf.Any" {
        return edit_any(message, &mut |inner| edit_at(inner, path, edit));
    }
    let field = message
        .descriptor()
        .get_field_by_name(first)
        .expect("field on path");
    let value = message.get_field_mut(&field);
    match value {
        Value::Message(inner) => edit_at(inner, rest, edit),
        Value::List(items) => {
            let (index, rest) = rest.split_first().expect("index after a list");
            let index: usize = index.parse().expect("numeric index");
            let Value::Message(inner) = &mut items[index] else {
                panic!("list of messages expected at {first}")
            };
            edit_at(inner, rest, edit)
        }
        _ => panic!("{first} is not a message"),
    }
}

fn edit_any(any: &mut DynamicMessage, edit: &mut dyn FnMut(&mut DynamicMessage)) {
    let type_url = any.get_field_by_name("type_url").expect("type_url");
    let name = type_url
        .as_str()
        .and_then(|url| url.rsplit('/').next())
        .expect("type url")
        .to_owned();
    let bytes = any.get_field_by_name("value").expect("value");
    let descriptor = pool()
        .expect("descriptor pool")
        .get_message_by_name(&name)
        .expect("packed type");
    let mut inner = DynamicMessage::decode(descriptor, bytes.as_bytes().expect("bytes").as_ref())
        .expect("packed message");
    edit(&mut inner);
    any.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
}

fn translate(resource: &str, message: &DynamicMessage) -> Result<(), TranslateError> {
    let bytes = message.encode_to_vec();
    let bytes = bytes.as_slice();
    match resource {
        "envoy.config.listener.v3.Listener" => {
            Listener::try_from(lds::Listener::decode(bytes).expect("decodes")).map(drop)
        }
        "envoy.config.route.v3.RouteConfiguration" => {
            RouteConfig::try_from(rds::RouteConfiguration::decode(bytes).expect("decodes"))
                .map(drop)
        }
        "envoy.config.cluster.v3.Cluster" => {
            Cluster::try_from(cds::Cluster::decode(bytes).expect("decodes")).map(drop)
        }
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => {
            LoadAssignment::try_from(eds::ClusterLoadAssignment::decode(bytes).expect("decodes"))
                .map(drop)
        }
        "envoy.extensions.transport_sockets.tls.v3.Secret" => {
            Secret::try_from(sds::Secret::decode(bytes).expect("decodes")).map(drop)
        }
        other => panic!("no translator for {other}"),
    }
}

fn policy(message: &str) -> &'static MessagePolicy {
    MESSAGES
        .iter()
        .find(|p| p.message == message)
        .unwrap_or_else(|| panic!("no table for {message}"))
}

/// Whether `error` is about `field` (the field itself, or something inside it).
fn names(error: &TranslateError, field: &str) -> bool {
    error.error.field == field
        || error.error.field.starts_with(&format!("{field}."))
        || error.error.field.starts_with(&format!("{field}["))
}

#[test]
fn each_class_is_what_the_translators_do() {
    let mut wrong = Vec::new();
    for probe in PROBES {
        let base = parse(probe.resource, probe.json);
        translate(probe.resource, &base)
            .unwrap_or_else(|e| panic!("the smallest {} is refused: {e}", probe.resource));
        for rule in policy(probe.message).fields {
            let mut resource = base.clone();
            edit_at(&mut resource, probe.path, &mut |message| {
                let field = message
                    .descriptor()
                    .get_field_by_name(rule.field)
                    .expect("classified field exists");
                message.set_field(&field, probe_value(&field));
            });
            let full = format!("{}{}", probe.error_prefix, rule.field);
            let result = translate(probe.resource, &resource);
            let verdict = match (rule.class, &result) {
                (FieldClass::NoEffect, Ok(())) => None,
                (FieldClass::NoEffect, Err(e)) => Some(format!("refused: {e}")),
                (FieldClass::Unsupported, Err(e)) if names(e, &full) => None,
                (FieldClass::Unsupported, Err(e)) => {
                    Some(format!("refused for another field: {e}"))
                }
                (FieldClass::Unsupported, Ok(())) => Some("accepted".to_owned()),
                (FieldClass::Honoured, Err(e))
                    if e.error.problem == Problem::Unsupported && e.error.field == full =>
                {
                    Some(format!("refused as unsupported: {e}"))
                }
                (FieldClass::Honoured, _) => None,
            };
            if let Some(verdict) = verdict {
                wrong.push(format!(
                    "{}.{} ({:?}): {verdict}",
                    probe.message, rule.field, rule.class
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "tables and translators disagree:\n{}",
        wrong.join("\n")
    );
}

/// Markers around the generated part of `docs/xds-support.md`.
const BEGIN: &str = "<!-- field tables: generated by `cargo test -p mesh-xds field_policy` -->\n";
const END: &str = "<!-- end of field tables -->\n";

#[test]
fn the_support_document_is_generated_from_the_tables() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/xds-support.md");
    let text = std::fs::read_to_string(&path).expect("docs/xds-support.md");
    let (before, rest) = text.split_once(BEGIN).expect("begin marker");
    let (current, after) = rest.split_once(END).expect("end marker");
    let generated = markdown();
    if current == generated {
        return;
    }
    if std::env::var_os("UPDATE_XDS_SUPPORT_DOC").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{generated}{END}{after}"))
            .expect("write docs/xds-support.md");
        return;
    }
    panic!(
        "docs/xds-support.md is stale: run \
         `UPDATE_XDS_SUPPORT_DOC=1 cargo test -p mesh-xds field_policy` and commit it"
    );
}
