//! A plain WASI command: a valid component that exports `wasi:cli/run`, not a Kiln role.

fn main() {
    println!("I am not a Kiln plugin");
}
