//! Compiles `proto/` with protox, so a fresh machine needs no system `protoc`. The encoded
//! descriptor set (imports included) is kept for gRPC reflection and proto3 JSON.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "waihu/v1/events.proto",
        "waihu/v1/task.proto",
        "waihu/v1/record.proto",
        "waihu/v1/admin.proto",
        "waihu/v1/tenant.proto",
        "waihu/v1/webhook.proto",
        "waihu/v1/provider.proto",
        "waihu/v1/dialer.proto",
        "waihu/v1/analysis.proto",
        "waihu/v1/screening.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files)?;
    let fds = compiler.file_descriptor_set();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("waihu_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // An envelope's payload shares the received message's bytes when decoded from `Bytes`
        // (the store writer decodes every event of the stream).
        .bytes(".waihu.v1.Envelope.payload")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
