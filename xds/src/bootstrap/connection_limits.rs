//! Connection limits a bootstrap sets outside its listeners: the overload manager's
//! `envoy.resource_monitors.global_downstream_max_connections` and the runtime keys
//! `envoy.resource_limits.listener.<name>.connection_limit` of its static layers.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::bootstrap::v3 as bootstrap;
use envoy_types::pb::envoy::config::overload::v3 as overload;
use envoy_types::pb::envoy::extensions::resource_monitors::downstream_connections::v3::DownstreamConnectionsConfig;
use envoy_types::pb::google::protobuf;

use crate::translate::extensions::decode_any;
use crate::translate::{FieldError, FieldPath};

const GLOBAL_MONITOR: &str = "envoy.resource_monitors.global_downstream_max_connections";
const LISTENER_KEY_PREFIX: &str = "envoy.resource_limits.listener.";
const LISTENER_KEY_SUFFIX: &str = ".connection_limit";

/// Downstream connection caps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The cap on every listener's connections together
    /// (`max_active_downstream_connections`).
    pub global: Option<u64>,
    /// Caps by listener name.
    pub per_listener: BTreeMap<String, u64>,
}

/// Reads the caps; the rest of the overload manager and runtime stays for the caller.
pub(super) fn connection_limits(
    b: &bootstrap::Bootstrap,
    root: &FieldPath<'_>,
) -> Result<ConnectionLimits, FieldError> {
    let mut limits = ConnectionLimits::default();
    if let Some(manager) = &b.overload_manager {
        limits.global = global_limit(manager, &root.field("overload_manager"))?;
    }
    if let Some(runtime) = &b.layered_runtime {
        let runtime_path = root.field("layered_runtime");
        let layers = runtime_path.field("layers");
        for (i, layer) in runtime.layers.iter().enumerate() {
            use bootstrap::runtime_layer::LayerSpecifier;
            if let Some(LayerSpecifier::StaticLayer(values)) = &layer.layer_specifier {
                let layer_path = layers.index(i);
                let at = layer_path.field("static_layer");
                let mut flat = Vec::new();
                flatten("", values, &mut flat);
                for (key, value) in flat {
                    if let Some(listener) = listener_of(&key) {
                        let limit = whole_number(value).ok_or_else(|| {
                            FieldError::invalid(
                                &at,
                                format!("{key} must be a non-negative whole number"),
                            )
                        })?;
                        limits.per_listener.insert(listener.to_owned(), limit);
                    }
                }
            }
        }
    }
    Ok(limits)
}

fn global_limit(
    manager: &overload::OverloadManager,
    path: &FieldPath<'_>,
) -> Result<Option<u64>, FieldError> {
    let monitors = path.field("resource_monitors");
    let mut global = None;
    for (i, monitor) in manager.resource_monitors.iter().enumerate() {
        if monitor.name != GLOBAL_MONITOR {
            continue;
        }
        let monitor_path = monitors.index(i);
        let at = monitor_path.field("typed_config");
        let Some(overload::resource_monitor::ConfigType::TypedConfig(any)) = &monitor.config_type
        else {
            return Err(FieldError::missing(&at));
        };
        let config: DownstreamConnectionsConfig =
            decode_any(any).map_err(|why| FieldError::invalid(&at, why))?;
        let max = u64::try_from(config.max_active_downstream_connections)
            .ok()
            .filter(|max| *max > 0)
            .ok_or_else(|| {
                FieldError::invalid(
                    &at.field("max_active_downstream_connections"),
                    "must be greater than 0",
                )
            })?;
        global = Some(max);
    }
    Ok(global)
}

/// A runtime struct as Envoy reads it: nested objects are dotted keys.
fn flatten<'a>(
    prefix: &str,
    values: &'a protobuf::Struct,
    out: &mut Vec<(String, &'a protobuf::Value)>,
) {
    for (key, value) in &values.fields {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match &value.kind {
            Some(protobuf::value::Kind::StructValue(inner)) => flatten(&key, inner, out),
            _ => out.push((key, value)),
        }
    }
}

fn listener_of(key: &str) -> Option<&str> {
    key.strip_prefix(LISTENER_KEY_PREFIX)?
        .strip_suffix(LISTENER_KEY_SUFFIX)
        .filter(|name| !name.is_empty())
}

fn whole_number(value: &protobuf::Value) -> Option<u64> {
    match &value.kind {
        Some(protobuf::value::Kind::NumberValue(number))
            if *number >= 0.0 && number.fract() == 0.0 && *number <= u64::MAX as f64 =>
        {
            Some(*number as u64)
        }
        Some(protobuf::value::Kind::StringValue(text)) => text.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::bootstrap::{Bootstrap, Format};

    fn limits(extra: &str) -> Result<super::ConnectionLimits, String> {
        let yaml = format!("static_resources: {{}}\n{extra}");
        Bootstrap::parse(&yaml, Format::Yaml, "test.yaml")
            .map(|bootstrap| bootstrap.connection_limits)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_global_monitor_and_listener_runtime_keys_are_read() {
        let found = limits(
            r#"
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 5000
layered_runtime:
  layers:
  - name: static
    static_layer:
      envoy.resource_limits.listener.ingress.connection_limit: 100
      envoy:
        resource_limits:
          listener:
            admin.port:
              connection_limit: 10
      overload.global_downstream_max_connections: 7
"#,
        )
        .expect("valid");
        assert_eq!(found.global, Some(5000));
        assert_eq!(found.per_listener.get("ingress"), Some(&100));
        assert_eq!(found.per_listener.get("admin.port"), Some(&10));
        assert_eq!(found.per_listener.len(), 2);
    }

    #[test]
    fn a_zero_global_limit_is_refused_by_field() {
        let error = limits(
            r#"
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 0
"#,
        )
        .expect_err("zero");
        assert!(
            error.contains("overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections"),
            "{error}"
        );
    }

    #[test]
    fn without_either_there_is_no_limit() {
        assert_eq!(
            limits("").expect("valid"),
            super::ConnectionLimits::default()
        );
    }
}
