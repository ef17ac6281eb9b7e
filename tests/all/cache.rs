//! Compiled code is cached beside the registry, by component digest and engine: the second
//! load of a component never compiles, and a damaged entry is recompiled rather than trusted.

use kiln::registry::tables::COMPILED;
use kiln_test_artifacts as g;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::Kiln;

fn entries(k: &Kiln) -> Vec<String> {
    let db = redb::Database::open(k.home().join("registry.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(COMPILED).unwrap();
    assert!(table.len().unwrap() < 100);
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (key, size) = row.unwrap();
            let key = key.value().to_string();
            let file = k.home().join("compiled").join(format!("{key}.cwasm"));
            assert_eq!(
                std::fs::metadata(&file).unwrap().len(),
                size.value(),
                "{key}: the table accounts for its file"
            );
            key
        })
        .collect()
}

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
    let keys = entries(&k);
    assert_eq!(
        keys.len(),
        1,
        "one entry per component and engine: {keys:?}"
    );
    let digest = kiln::digest::sha256_hex(&std::fs::read(g::SELECT_COLUMNS).unwrap());
    assert!(
        keys[0].starts_with(&digest),
        "keyed by the component digest: {keys:?}"
    );
}

#[test]
fn a_damaged_cache_entry_is_recompiled() {
    let k = Kiln::new();
    k.ok(&["plugin", "inspect", g::SELECT_COLUMNS]);
    let key = entries(&k).remove(0);
    std::fs::write(
        k.home().join("compiled").join(format!("{key}.cwasm")),
        b"garbage",
    )
    .unwrap();
    let doc = k.json(&["plugin", "inspect", g::SELECT_COLUMNS]);
    assert_eq!(doc["artifact_cache"], "compiled");
    assert_eq!(
        k.json(&["plugin", "inspect", g::SELECT_COLUMNS])["artifact_cache"],
        "cache-hit"
    );
}
