//! Compiles `proto/` with protox (pure Rust): no system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "pager/v1/events.proto",
        "pager/v1/incidents.proto",
        "pager/v1/config.proto",
        "pager/v1/cluster.proto",
        "pager/v1/oncall.proto",
        "pager/v1/tokens.proto",
        "pager/v1/users.proto",
        "pager/v1/followups.proto",
        "pager/v1/webhooks.proto",
        "raft/v1/raft.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds does not write the descriptor set; reflection needs it.
    std::fs::write(
        out.join("pager_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_build::configure().compile_fds(fds)?;
    Ok(())
}
