//! Embeds envoy-types' file descriptor set (every Envoy v3 message, with its extensions) so
//! bootstrap files can be read as canonical proto3 JSON/YAML and unsupported fields named.
//!
//! envoy-types ships the set as `src/generated/types.bin` but exposes no constant for it, so
//! `cargo metadata` finds the crate's directory. Source info (comments) is stripped: it is
//! two thirds of the file and nothing here reads it.

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let source = envoy_types_dir(&manifest_dir)?.join("src/generated/types.bin");
    println!("cargo:rerun-if-changed={}", source.display());
    let bytes = std::fs::read(&source).map_err(|e| {
        format!(
            "cannot read envoy-types' descriptor set {}: {e}",
            source.display()
        )
    })?;
    let mut set = FileDescriptorSet::decode(bytes.as_slice())?;
    for file in &mut set.file {
        file.source_code_info = None;
    }
    if !set
        .file
        .iter()
        .any(|f| f.package.as_deref() == Some("udpa.type.v1"))
    {
        set.file.push(udpa_typed_struct());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy_descriptors.bin");
    std::fs::write(out, set.encode_to_vec())?;
    Ok(())
}

/// `udpa.type.v1.TypedStruct`, the predecessor of `xds.type.v3.TypedStruct` that Envoy still
/// accepts in `typed_config` (Istio sends it); envoy-types does not ship its proto.
fn udpa_typed_struct() -> FileDescriptorProto {
    use prost_types::field_descriptor_proto::{Label, Type};
    let field = |name: &str, number, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(str::to_owned),
        json_name: Some(
            name.split('_')
                .enumerate()
                .map(|(i, part)| {
                    let mut chars = part.chars();
                    match (i, chars.next()) {
                        (0, _) | (_, None) => part.to_owned(),
                        (_, Some(first)) => first.to_uppercase().chain(chars).collect(),
                    }
                })
                .collect(),
        ),
        ..Default::default()
    };
    FileDescriptorProto {
        name: Some("udpa/type/v1/typed_struct.proto".to_owned()),
        package: Some("udpa.type.v1".to_owned()),
        dependency: vec!["google/protobuf/struct.proto".to_owned()],
        message_type: vec![DescriptorProto {
            name: Some("TypedStruct".to_owned()),
            field: vec![
                field("type_url", 1, Type::String, None),
                field("value", 2, Type::Message, Some(".google.protobuf.Struct")),
            ],
            ..Default::default()
        }],
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    }
}

/// The directory of the envoy-types package this build resolved.
fn envoy_types_dir(manifest_dir: &Path) -> Result<PathBuf, BoxError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform"])
        .arg(std::env::var("TARGET")?)
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("cargo metadata lists no envoy-types package")?;
    Path::new(manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{manifest} has no parent directory").into())
}
