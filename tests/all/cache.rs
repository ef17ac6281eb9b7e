//! Compiled code is cached on disk: the second load of a component never compiles, and a
//! damaged cache entry is recompiled rather than trusted.

use kiln_test_artifacts as g;

use crate::Kiln;

#[test]
fn a_second_load_uses_the_compiled_artifact_cache() {
    let k = Kiln::new();
    assert_eq!(
        k.json(&["plugin", "inspect", g::SELECT_COLUMNS])["artifact_cache"],
        "compiled"
    );
    assert_eq!(
        k.json(&["plugin", "inspect", g::SELECT_COLUMNS])["artifact_cache"],
        "cache-hit"
    );
    let entries: Vec<_> = std::fs::read_dir(k.home().join("cache/compiled"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "one entry per component and engine");
}

#[test]
fn a_damaged_cache_entry_is_recompiled() {
    let k = Kiln::new();
    k.ok(&["plugin", "inspect", g::SELECT_COLUMNS]);
    let entry = std::fs::read_dir(k.home().join("cache/compiled"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::write(&entry, b"garbage").unwrap();
    let doc = k.json(&["plugin", "inspect", g::SELECT_COLUMNS]);
    assert_eq!(doc["artifact_cache"], "compiled");
    assert_eq!(
        k.json(&["plugin", "inspect", g::SELECT_COLUMNS])["artifact_cache"],
        "cache-hit"
    );
}
