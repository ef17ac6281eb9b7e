//! Compiled code is cached beside the registry, by component digest and engine: the second
//! load of a component never compiles, and a damaged entry is recompiled rather than trusted.
//! Data directories may share one more directory of compiled code (`KILN_CODE_CACHE`).

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

#[test]
fn data_directories_share_compiled_code_through_kiln_code_cache() {
    let shared = tempfile::tempdir().unwrap();
    let inspect = |k: &Kiln| -> String {
        let mut cmd = k.cmd();
        cmd.env("KILN_CODE_CACHE", shared.path()).args([
            "plugin",
            "inspect",
            g::SELECT_COLUMNS,
            "--json",
        ]);
        Kiln::json_of(cmd)["artifact_cache"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let shared_entries = || -> Vec<String> {
        std::fs::read_dir(shared.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };

    // The first data directory compiles, and writes the code home and to the shared one.
    let first = Kiln::new();
    assert_eq!(inspect(&first), "compiled");
    let key = entries(&first).remove(0);
    assert_eq!(shared_entries(), [format!("{key}.cwasm")]);

    // Another finds it there, compiles nothing, and keeps its own copy, accounted for.
    let second = Kiln::new();
    assert_eq!(inspect(&second), "cache-hit");
    assert_eq!(entries(&second), std::slice::from_ref(&key));

    // A damaged shared entry is not trusted: a third directory compiles, and mends it.
    std::fs::write(shared.path().join(format!("{key}.cwasm")), b"garbage").unwrap();
    let third = Kiln::new();
    assert_eq!(inspect(&third), "compiled");
    assert_eq!(inspect(&Kiln::new()), "cache-hit");
}
