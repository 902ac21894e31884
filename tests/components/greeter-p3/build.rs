//! Generates the message types of the test protos with prost. `protoc` comes
//! from `protoc-bin-vendored` so the build needs no system package.

use std::path::PathBuf;

const PROTOS: [&str; 2] = ["helloworld.proto", "route_guide.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protos");
    let protos: Vec<PathBuf> = PROTOS.iter().map(|name| proto_dir.join(name)).collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    prost_build::Config::new()
        .protoc_executable(protoc_bin_vendored::protoc_bin_path()?)
        .compile_protos(&protos, &[proto_dir])?;
    Ok(())
}
