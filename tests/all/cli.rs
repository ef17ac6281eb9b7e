//! The command line's own behaviour: argument errors are clear, and a closed pipe is not
//! a crash.

use std::process::Stdio;

use kiln_test_artifacts as g;

use crate::Kiln;

#[test]
fn a_reader_closing_the_pipe_ends_output_quietly() {
    let k = Kiln::new();
    let mut child = k
        .cmd()
        .args(["plugin", "inspect", g::CSV_READER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before kiln writes
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn bad_arguments_get_clear_errors() {
    let k = Kiln::new();
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--input", "no-equals-sign"]);
    assert!(
        err.contains("--input `no-equals-sign` must look like NAME=VALUE"),
        "{err}"
    );
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--config", "=x"]);
    assert!(err.contains("must look like NAME=VALUE"), "{err}");
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--memory", "lots"]);
    assert!(err.contains("--memory"), "{err}");
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--timeout", "soon"]);
    assert!(err.contains("--timeout"), "{err}");
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--log-level", "loud"]);
    assert!(err.contains("unknown log level `loud`"), "{err}");
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--role", "trainer"]);
    assert!(err.contains("`trainer` is not a role"), "{err}");
    let err = k.fails(&[
        "plugin",
        "run",
        g::ECHO_STEP,
        "--input",
        "x=/nonexistent/file.json",
    ]);
    assert!(
        err.contains("reading input /nonexistent/file.json"),
        "{err}"
    );
    let err = k.fails(&["plugin", "run", g::ECHO_STEP, "--model", "m.bin"]);
    assert!(err.contains("--model is for model runners"), "{err}");
    let err = k.fails(&["plugin", "run", g::LINEAR_RUNNER]);
    assert!(err.contains("pass --model PATH"), "{err}");
}

#[test]
fn a_malformed_value_document_is_refused() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let doc = crate::write_json(
        dir.path(),
        "bad.json",
        &serde_json::json!({"$kiln": "value/1", "kind": "tensor", "dtype": "float64", "shape": [4], "values": [1.0]}),
    );
    let err = k.fails(&[
        "plugin",
        "run",
        g::ECHO_STEP,
        "--input",
        &format!("x={doc}"),
    ]);
    assert!(err.contains("needs 32 bytes, has 8"), "{err}");
}

#[test]
fn outputs_are_written_as_files_and_read_back() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let input = crate::write_json(
        dir.path(),
        "in.json",
        &serde_json::json!({"$kiln": "value/1", "kind": "tensor", "dtype": "int32", "shape": [2, 2], "values": [1, 2, 3, -4]}),
    );
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, [0u8, 1, 2, 255]).unwrap();
    let out = dir.path().join("out");
    k.ok(&[
        "plugin",
        "run",
        g::ECHO_STEP,
        "-i",
        &format!("t={input}"),
        "-i",
        &format!("raw={}", blob.display()),
        "--out",
        out.to_str().unwrap(),
    ]);
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("t.json")).unwrap()).unwrap();
    assert_eq!(t["values"], serde_json::json!([1, 2, 3, -4]));
    assert_eq!(
        std::fs::read(out.join("raw.bin")).unwrap(),
        [0u8, 1, 2, 255]
    );
}

/// The subcommands `help` lists under "Commands:" (without `help` itself).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// `kiln --help` says where to start; `serve` says what it serves; every command's help
/// describes its `--json`, and shows only the global flags the command uses (all are still
/// taken anywhere, as before).
#[test]
fn help_leads_and_shows_each_command_what_it_uses() {
    let k = Kiln::new();
    let top = k.ok(&["--help"]);
    for start in [
        "Start here:",
        "kiln demo",
        "kiln run FILE.yaml",
        "kiln serve",
        "kiln plugin new NAME",
    ] {
        assert!(top.contains(start), "`{start}` missing from:\n{top}");
    }
    let serve = k.ok(&["serve", "--help"]);
    for what in [
        "Open Inference Protocol",
        "MLflow",
        "workflow runs",
        "registry",
    ] {
        assert!(serve.contains(what), "{serve}");
    }

    // Every command, at every depth: a `--json` always says what it does.
    let mut pending: Vec<Vec<String>> = subcommands(&top).into_iter().map(|c| vec![c]).collect();
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = k.ok(&args);
        seen += 1;
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "--json" {
                let next = lines.get(i + 1).map_or("", |l| l.trim());
                assert!(
                    !next.is_empty() && !next.starts_with('-'),
                    "`kiln {}`: --json has no description",
                    path.join(" ")
                );
            }
        }
        for sub in subcommands(&help) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
    }
    assert!(seen > 30, "only {seen} commands' help read");

    let shown = |args: &[&str], flag: &str| {
        let mut args = args.to_vec();
        args.push("--help");
        k.ok(&args).contains(flag)
    };
    for flag in ["--server", "--token", "--fuel-metering", "--no-pooling"] {
        assert!(!shown(&["validate"], flag), "validate shows {flag}");
        assert!(
            !shown(&["key", "generate"], flag),
            "key generate shows {flag}"
        );
    }
    assert!(shown(&["validate"], "--data-dir"));
    assert!(shown(&["runs", "list"], "--server") && shown(&["runs", "list"], "--token"));
    assert!(!shown(&["runs", "list"], "--fuel-metering"));
    assert!(shown(&["run"], "--fuel-metering") && shown(&["run"], "--server"));
    assert!(shown(&["plugin", "run"], "--no-pooling"));
    assert!(!shown(&["plugin", "new"], "--no-pooling"));
    assert!(shown(&["publish"], "--server") && !shown(&["publish"], "--no-pooling"));
}
