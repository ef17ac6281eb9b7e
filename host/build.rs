//! The contract and the SDKs are embedded in the binary (`kiln plugin new`/`build`):
//! rebuild when they change. The target triple is kept for bundles (`kiln bundle`).

fn main() {
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../sdk");
    // The triple this binary runs on, which a bundle's precompiled code must match.
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=KILN_TARGET={target}");
}
