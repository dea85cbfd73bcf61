//! Compiles `proto/` with protox, a pure-Rust protobuf compiler, so a build needs no system
//! `protoc`. The client API's descriptor set is also written out for the gRPC reflection
//! service; the peer protocol's is not, so reflection never lists it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/booking/v1/booking.proto", "proto/raft/v1/raft.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let client_api = protox::compile(["proto/booking/v1/booking.proto"], ["proto"])?;
    std::fs::write(
        out_dir.join("descriptor.bin"),
        prost::Message::encode_to_vec(&client_api),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
