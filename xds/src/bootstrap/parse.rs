//! Canonical proto3 JSON (and YAML) -> `Bootstrap` proto, with field paths in errors.
//!
//! prost types carry no serde support for the canonical JSON mapping Envoy users
//! write (durations as `"5s"`, wrappers as bare values, `typed_config` with `@type`), so the
//! document is parsed as a dynamic message against envoy-types' descriptors and re-encoded.

use std::fmt;
use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde::de::DeserializeSeed;

use super::BootstrapError;
use crate::translate::reflect::pool;

/// The syntax of a bootstrap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        })
    }
}

impl Format {
    /// By extension; otherwise JSON when the text starts with `{`, else YAML.
    pub fn detect(path: &Path, text: &str) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::Json,
            Some("yaml" | "yml") => Self::Yaml,
            _ if text.trim_start().starts_with('{') => Self::Json,
            _ => Self::Yaml,
        }
    }
}

pub(super) fn to_proto(
    text: &str,
    format: Format,
    file: &str,
) -> Result<Bootstrap, BootstrapError> {
    let syntax = |message: String| BootstrapError::Syntax {
        file: file.to_owned(),
        format,
        message,
    };
    let document: serde_json::Value = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?,
        Format::Yaml => serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?,
    };
    let schema = |path: String, message: String| BootstrapError::Schema {
        file: file.to_owned(),
        path,
        message,
    };
    let descriptor = pool()
        .map_err(|e| schema(String::new(), e.to_owned()))?
        .get_message_by_name("envoy.config.bootstrap.v3.Bootstrap")
        .ok_or_else(|| schema(String::new(), "no Bootstrap descriptor".to_owned()))?;
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(document, &mut track);
    let dynamic: Result<DynamicMessage, _> = descriptor.deserialize(deserializer);
    let dynamic = dynamic.map_err(|e| schema(track.path().to_string(), e.to_string()))?;
    Bootstrap::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|e| schema(String::new(), e.to_string()))
}
