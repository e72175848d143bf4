//! Compiles `proto/natterjack/v1/*.proto` with the vendored `protoc`, so a build needs no
//! system protobuf compiler; the descriptor set feeds server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        root.join("natterjack/v1/spaces.proto"),
        root.join("natterjack/v1/admin.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Carries a password: its Debug is written by hand, redacted (grpc/admin.rs).
    config.skip_debug(["natterjack.v1.CreateUserRequest"]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("natterjack_descriptor.bin"))
        .compile_with_config(config, &files, &[root])?;
    Ok(())
}
