//! Generates the tonic server for `helloworld.proto` (the greeter the load
//! harness compares with `greeter.wasm`), with protoc from
//! `protoc-bin-vendored` so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../tests/protos/helloworld.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(false)
        .compile_with_config(config, &[proto], &["../tests/protos"])?;
    Ok(())
}
