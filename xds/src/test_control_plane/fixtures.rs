//! xDS fixtures: YAML files holding the resources a control plane would send, written the
//! way control planes dump them (canonical proto3 JSON: camelCase or snake_case names,
//! durations as `"5s"`, typed `Any` with `"@type"`).
//!
//! ```yaml
//! listeners: [...]   # envoy.config.listener.v3.Listener
//! routes: [...]      # envoy.config.route.v3.RouteConfiguration
//! clusters: [...]    # envoy.config.cluster.v3.Cluster
//! endpoints: [...]   # envoy.config.endpoint.v3.ClusterLoadAssignment
//! secrets: [...]     # envoy.extensions.transport_sockets.tls.v3.Secret
//! ```

use std::path::Path;

use prost_reflect::DynamicMessage;
use serde::de::DeserializeSeed;

use super::Snapshot;
use crate::translate::reflect::pool;

/// Why a fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML, or a resource does not fit its message.
    #[error("{file}: {path}: {message}")]
    Schema {
        /// The file.
        file: String,
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Loads the fixture at `path` as a snapshot with `version`.
pub fn load_fixture(path: &Path, version: &str) -> Result<Snapshot, FixtureError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        file: file.clone(),
        source,
    })?;
    let schema = |path: String, message: String| FixtureError::Schema {
        file: file.clone(),
        path,
        message,
    };
    let document: serde_json::Value =
        serde_yaml::from_str(&text).map_err(|e| schema(String::new(), e.to_string()))?;
    let list = |key: &str| -> Result<Vec<DynamicMessage>, FixtureError> {
        let message = match key {
            "listeners" => "envoy.config.listener.v3.Listener",
            "routes" => "envoy.config.route.v3.RouteConfiguration",
            "clusters" => "envoy.config.cluster.v3.Cluster",
            "secrets" => "envoy.extensions.transport_sockets.tls.v3.Secret",
            _ => "envoy.config.endpoint.v3.ClusterLoadAssignment",
        };
        let descriptor = pool()
            .map_err(|e| schema(String::new(), e.to_owned()))?
            .get_message_by_name(message)
            .ok_or_else(|| schema(key.to_owned(), format!("no descriptor for {message}")))?;
        let items = match document.get(key) {
            None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(_) => return Err(schema(key.to_owned(), "not a list".to_owned())),
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let mut track = serde_path_to_error::Track::new();
                let deserializer = serde_path_to_error::Deserializer::new(item, &mut track);
                descriptor
                    .clone()
                    .deserialize(deserializer)
                    .map_err(|e| schema(format!("{key}[{i}].{}", track.path()), e.to_string()))
            })
            .collect()
    };
    let decode_error = |e: prost::DecodeError| schema(String::new(), format!("cannot decode: {e}"));
    Ok(Snapshot {
        version: version.to_owned(),
        listeners: transcode(list("listeners")?).map_err(decode_error)?,
        routes: transcode(list("routes")?).map_err(decode_error)?,
        clusters: transcode(list("clusters")?).map_err(decode_error)?,
        endpoints: transcode(list("endpoints")?).map_err(decode_error)?,
        secrets: transcode(list("secrets")?).map_err(decode_error)?,
    })
}

/// One resource written in Envoy's YAML (or JSON) notation, as `M`.
pub fn resource_from_yaml<M>(yaml: &str) -> Result<M, FixtureError>
where
    M: prost::Message + prost::Name + Default,
{
    let schema = |path: String, message: String| FixtureError::Schema {
        file: "(inline)".to_owned(),
        path,
        message,
    };
    let document: serde_json::Value =
        serde_yaml::from_str(yaml).map_err(|e| schema(String::new(), e.to_string()))?;
    let descriptor = pool()
        .map_err(|e| schema(String::new(), e.to_owned()))?
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| {
            schema(
                String::new(),
                format!("no descriptor for {}", M::full_name()),
            )
        })?;
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(document, &mut track);
    let dynamic: DynamicMessage = descriptor
        .deserialize(deserializer)
        .map_err(|e| schema(track.path().to_string(), e.to_string()))?;
    dynamic
        .transcode_to()
        .map_err(|e| schema(String::new(), format!("cannot decode: {e}")))
}

fn transcode<M: prost::Message + Default>(
    messages: Vec<DynamicMessage>,
) -> Result<Vec<M>, prost::DecodeError> {
    messages.iter().map(DynamicMessage::transcode_to).collect()
}

/// Istio's own extensions (istio-proxy has them, upstream Envoy does not).
const ISTIO_PROXY_TYPE_URL: &str = "type.googleapis.com/io.istio.";

/// The `type_url` of a `udpa.type.v1.TypedStruct` or `xds.type.v3.TypedStruct` (the Envoy
/// protos crate has neither): the wrapper istiod puts Istio's filter configs in.
#[derive(Clone, PartialEq, prost::Message)]
struct TypedStructUrl {
    #[prost(string, tag = "1")]
    type_url: String,
}

/// The type URL of a filter config, looking inside a `TypedStruct`.
fn config_type_url(any: &envoy_types::pb::google::protobuf::Any) -> String {
    use prost::Message;
    if any.type_url.ends_with(".TypedStruct") {
        TypedStructUrl::decode(any.value.as_slice())
            .map(|t| t.type_url)
            .unwrap_or_default()
    } else {
        any.type_url.clone()
    }
}

/// `snapshot` as upstream Envoy can take it: the HTTP filters only istio-proxy knows
/// (`io.istio.*` configs, such as the metadata-exchange filter) marked `is_optional`, so
/// Envoy skips them instead of refusing the listener. mesh-host takes them as telemetry with
/// no effect on a request, so both proxies then run the same filters.
pub fn for_upstream_envoy(snapshot: &Snapshot) -> Snapshot {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfig;
    use prost::{Message, Name};

    let mut copy = snapshot.clone();
    let chains = copy.listeners.iter_mut().flat_map(|l| {
        l.filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut())
    });
    for filter in chains.flat_map(|chain| chain.filters.iter_mut()) {
        let Some(ConfigType::TypedConfig(any)) = filter.config_type.as_mut() else {
            continue;
        };
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        // A manager that does not decode is left for Envoy to refuse, as it would.
        let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
            continue;
        };
        let mut changed = false;
        for http_filter in &mut hcm.http_filters {
            if let Some(HttpConfig::TypedConfig(typed)) = &http_filter.config_type
                && config_type_url(typed).starts_with(ISTIO_PROXY_TYPE_URL)
            {
                http_filter.is_optional = true;
                changed = true;
            }
        }
        if changed {
            any.value = hcm.encode_to_vec();
        }
    }
    copy
}
