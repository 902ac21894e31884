//! Embeds envoy-types' file descriptor set (every Envoy v3 message, with its extensions) so
//! bootstrap files can be read as canonical proto3 JSON/YAML and unsupported fields named.
//!
//! envoy-types ships the set as `src/generated/types.bin` but exposes no constant for it, so
//! `cargo metadata` finds the crate's directory. Source info (comments) is stripped: it is
//! two thirds of the file and nothing here reads it.

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
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
    // Read only to look for a package: prost's types drop the custom options (Envoy's
    // `udpa.annotations.sensitive` among them), so the set written is stripped on the wire.
    let set = FileDescriptorSet::decode(bytes.as_slice())?;
    let mut stripped = strip_source_info(&bytes)?;
    if !set
        .file
        .iter()
        .any(|f| f.package.as_deref() == Some("udpa.type.v1"))
    {
        let file = udpa_typed_struct().encode_to_vec();
        encode_key(FILE, WireType::LengthDelimited, &mut stripped);
        encode_varint(file.len() as u64, &mut stripped);
        stripped.extend_from_slice(&file);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy_descriptors.bin");
    std::fs::write(out, stripped)?;
    Ok(())
}

/// `FileDescriptorSet.file`.
const FILE: u32 = 1;
/// `FileDescriptorProto.source_code_info`.
const SOURCE_CODE_INFO: u32 = 9;

/// The set with each file's `source_code_info` removed and every other byte (options with
/// their extensions included) kept as it was.
fn strip_source_info(set: &[u8]) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::with_capacity(set.len() / 3);
    for (tag, field) in fields(set)? {
        if tag != FILE {
            out.extend_from_slice(field);
            continue;
        }
        let mut rest = field;
        if decode_key(&mut rest)?.1 != WireType::LengthDelimited {
            return Err("FileDescriptorSet.file is not length-delimited".into());
        }
        let len = usize::try_from(decode_varint(&mut rest)?)?;
        let file = rest.get(..len).ok_or("truncated file descriptor")?;
        let mut kept = Vec::with_capacity(file.len());
        for (tag, part) in fields(file)? {
            if tag != SOURCE_CODE_INFO {
                kept.extend_from_slice(part);
            }
        }
        encode_key(FILE, WireType::LengthDelimited, &mut out);
        encode_varint(kept.len() as u64, &mut out);
        out.extend_from_slice(&kept);
    }
    Ok(out)
}

/// Each field of an encoded message: its number and its bytes (key and value).
fn fields(message: &[u8]) -> Result<Vec<(u32, &[u8])>, BoxError> {
    let mut out = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let start = message.len() - rest.len();
        let (tag, wire) = decode_key(&mut rest)?;
        let skip = match wire {
            WireType::Varint => {
                decode_varint(&mut rest)?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => usize::try_from(decode_varint(&mut rest)?)?,
            WireType::StartGroup | WireType::EndGroup => {
                return Err("groups do not occur in descriptors".into());
            }
        };
        rest = rest.get(skip..).ok_or("truncated field")?;
        let end = message.len() - rest.len();
        out.push((tag, &message[start..end]));
    }
    Ok(out)
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
