//! Every guest that `kiln-test-artifacts` builds is used by some test.

const SOURCES: &[&str] = &[
    include_str!("plugins.rs"),
    include_str!("sandbox.rs"),
    include_str!("cache.rs"),
    include_str!("cli.rs"),
    include_str!("library.rs"),
    include_str!("registry.rs"),
    include_str!("seed.rs"),
    include_str!("serve.rs"),
    include_str!("serving.rs"),
    include_str!("onnx.rs"),
    include_str!("hostile.rs"),
    include_str!("fuzz.rs"),
];

#[test]
fn every_guest_has_a_test() {
    assert!(!kiln_test_artifacts::ALL.is_empty());
    for (name, path) in kiln_test_artifacts::ALL {
        assert!(std::path::Path::new(path).exists(), "{path}");
        let constant = format!("g::{}", name.replace('-', "_").to_uppercase());
        assert!(
            SOURCES.iter().any(|s| s.contains(&constant)),
            "guest `{name}` is built but no test uses {constant}"
        );
    }
}
