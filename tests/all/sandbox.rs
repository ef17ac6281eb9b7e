//! The sandbox holds: hostile plugins are stopped with clear errors that name them, files
//! outside a grant stay out of reach, and bad components are refused before they run.

use std::time::{Duration, Instant};

use kiln_test_artifacts as g;

use crate::Kiln;

#[test]
fn an_infinite_loop_and_an_endless_sleep_are_stopped_at_the_deadline() {
    let k = Kiln::new();
    for mode in ["loop", "sleep"] {
        let started = Instant::now();
        let err = k.fails(&[
            "plugin",
            "run",
            g::HOSTILE,
            "-c",
            &format!("mode={mode}"),
            "--timeout",
            "300ms",
        ]);
        assert!(
            err.contains("plugin `hostile` was stopped at its deadline of 300ms"),
            "{mode}: {err}"
        );
        // Generous: the point is that it returns at all (the library tests time it).
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{mode}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let k = Kiln::new();
    let err = k.fails(&[
        "plugin",
        "run",
        g::HOSTILE,
        "-c",
        "mode=bomb",
        "--memory",
        "48MiB",
    ]);
    assert!(
        err.contains("plugin `hostile` exceeded its memory limit of 48.0 MiB"),
        "{err}"
    );
}

#[test]
fn a_fuel_budget_stops_a_loop() {
    let k = Kiln::new();
    let err = k.fails(&[
        "plugin",
        "run",
        g::HOSTILE,
        "-c",
        "mode=loop",
        "--fuel-metering",
        "--fuel",
        "100000",
    ]);
    assert!(err.contains("plugin `hostile` ran out of fuel"), "{err}");
    let err = k.fails(&["plugin", "run", g::HOSTILE, "--fuel", "100000"]);
    assert!(err.contains("fuel metering"), "{err}");
}

#[test]
fn a_trap_is_reported_with_the_plugin_and_its_panic() {
    let k = Kiln::new();
    let err = k.fails(&["plugin", "run", g::HOSTILE, "-c", "mode=trap"]);
    assert!(err.contains("plugin `hostile` trapped"), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(
        err.contains("deliberate panic in the hostile plugin"),
        "{err}"
    );
}

#[test]
fn a_guest_error_is_reported_with_its_kind() {
    let k = Kiln::new();
    let err = k.fails(&["plugin", "run", g::HOSTILE, "-c", "mode=fail"]);
    assert!(
        err.contains("plugin `hostile` returned an error (internal): deliberate failure"),
        "{err}"
    );
}

#[test]
fn malformed_files_are_refused() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, "not wasm at all").unwrap();
    let err = k.fails(&["plugin", "run", text.to_str().unwrap()]);
    assert!(
        err.contains("plugin `text` is not a valid WebAssembly component") && err.contains("magic"),
        "{err}"
    );

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = k.fails(&["plugin", "inspect", core.to_str().unwrap()]);
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );

    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(g::CSV_READER).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = k.fails(&["plugin", "inspect", truncated.to_str().unwrap()]);
    assert!(
        err.contains("plugin `truncated` is not a valid WebAssembly component"),
        "{err}"
    );

    let err = k.fails(&[
        "plugin",
        "inspect",
        dir.path().join("absent.wasm").to_str().unwrap(),
    ]);
    assert!(err.contains("cannot read plugin file"), "{err}");
}

#[test]
fn components_of_the_wrong_world_are_refused() {
    let k = Kiln::new();
    let err = k.fails(&["plugin", "inspect", g::NOT_A_PLUGIN]);
    assert!(
        err.contains("exports no Kiln role") && err.contains("wasi:cli/run"),
        "{err}"
    );

    let err = k.fails(&["plugin", "run", g::SCHEMA_VALIDATOR, "--role", "step"]);
    assert!(
        err.contains("it is a validator plugin") && err.contains("not a step plugin"),
        "{err}"
    );

    let err = k.fails(&["plugin", "inspect", g::FUTURE_STEP]);
    assert!(
        err.contains("kiln:plugin/step@0.9.0")
            && err.contains("this host speaks kiln:plugin@0.1.0"),
        "{err}"
    );

    let err = k.fails(&["plugin", "inspect", g::MISTYPED_STEP]);
    assert!(err.contains("do not have the contract's types"), "{err}");
    assert!(
        err.contains("run: func(x: u32) -> u32"),
        "names what it exports: {err}"
    );
}

#[test]
fn files_outside_the_grant_are_out_of_reach() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let granted = dir.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "inside").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    let grant = granted.to_str().unwrap();
    let run = |mode: &str, path: String, grant_spec: &str| {
        let mut args = vec!["plugin", "run", g::HOSTILE, "-c"];
        let mode = format!("mode={mode}");
        let path = format!("path={path}");
        args.extend([mode.as_str(), "-c", path.as_str()]);
        if !grant_spec.is_empty() {
            args.extend(["--grant-dir", grant_spec]);
        }
        k.run(&args)
    };

    let inside = run("read", format!("{grant}/inside.txt"), grant);
    assert!(inside.status.success() && String::from_utf8_lossy(&inside.stdout).contains("inside"));

    for path in [
        dir.path().join("secret.txt").display().to_string(),
        format!("{grant}/../secret.txt"),
    ] {
        let out = run("read", path.clone(), grant);
        assert!(!out.status.success(), "{path} must be unreadable");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot read") && !String::from_utf8_lossy(&out.stdout).contains("secret"),
            "{err}"
        );
    }
    let out = run("read", format!("{grant}/inside.txt"), "");
    assert!(!out.status.success(), "nothing is readable without a grant");

    let out = run("write", format!("{grant}/new.txt"), grant);
    assert!(!out.status.success(), "a grant is read-only by default");
    assert!(!granted.join("new.txt").exists());
    let rw = format!("{grant}:rw");
    let out = run("write", format!("{grant}/new.txt"), &rw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(granted.join("new.txt")).unwrap(),
        "written by the hostile plugin"
    );
}
