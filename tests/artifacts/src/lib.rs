//! Paths of the guest components that `build.rs` built for `wasm32-wasip2`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
