//! The contract and the SDKs are embedded in the binary (`kiln plugin new`/`build`):
//! rebuild when they change.

fn main() {
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../sdk");
}
