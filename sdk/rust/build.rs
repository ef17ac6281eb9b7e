//! Writes the role export macros with the absolute path of this crate's `wit/` directory.
//!
//! `wit_bindgen::generate!` resolves a relative `path` against the crate that *invokes*
//! it, and each plugin must invoke it for its own role (a plugin linking the bindings of
//! every role would have to export every role). So the macros carry the SDK's own WIT
//! location as a literal, filled in here.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wit = manifest.join("wit");
    let wit = fs::canonicalize(&wit).unwrap_or(wit);
    let wit = wit.to_str().expect("the SDK's path is UTF-8");
    let template = manifest.join("src/macros.rs.in");
    let text = fs::read_to_string(&template).expect("read src/macros.rs.in");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("macros.rs");
    fs::write(out, text.replace("@WIT_DIR@", &wit.replace('\\', "\\\\"))).expect("write macros.rs");
    println!("cargo:rerun-if-changed=src/macros.rs.in");
    println!("cargo:rerun-if-changed=wit");
}
