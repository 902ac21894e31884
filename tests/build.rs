//! Generates tonic clients and servers for the test protos in `tests/protos`,
//! with protoc from `protoc-bin-vendored` so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["protos/helloworld.proto", "protos/route_guide.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &["protos"])?;
    Ok(())
}
