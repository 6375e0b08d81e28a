fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/wsfs.proto");
    println!("cargo:rerun-if-changed=proto/csi.proto");
    tonic_prost_build::configure().compile_protos(&["proto/wsfs.proto", "proto/csi.proto"], &["proto"])?;
    Ok(())
}
