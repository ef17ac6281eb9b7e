//! Plugins in other languages than Rust: scaffolding a plugin project
//! (`kiln plugin new`) and building it into a component (`kiln plugin build`).
//!
//! The contract (`wit/`) and each language's SDK (`sdk/<lang>/`) are embedded in the
//! binary. A project holds only its own sources and `kiln.toml`; a build stages the
//! sources, the SDK and the contract under `<project>/target/kiln/`, runs the language's
//! toolchain there, and checks the component against the manifest's role.

mod build;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use include_dir::{Dir, include_dir};

pub use build::{BuildOptions, Built, build};

use crate::plugin::Role;

/// The contract, as the SDKs and toolchains read it.
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
/// Every language's SDK: helpers, templates and guide.
static SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk");

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

impl Lang {
    pub const ALL: [Lang; 5] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Go];

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Go => "go",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "javascript" => Some(Lang::Js),
            "py" => Some(Lang::Python),
            _ => Lang::ALL.into_iter().find(|l| l.name() == s),
        }
    }

    /// The SDK files staged beside a project's sources, with their paths relative to the
    /// sources (templates and guides stay out, and the JavaScript SDK's Node tests; Go's
    /// tests come along, as `go build` skips them and `go test ./...` in the staging
    /// directory runs them beside the plugin's own).
    fn sdk_files(self) -> Vec<(PathBuf, &'static [u8])> {
        let Some(dir) = SDK.get_dir(self.name()) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        files
            .into_iter()
            .filter_map(|f| {
                let rel = f.path().strip_prefix(self.name()).ok()?;
                let name = rel.file_name()?.to_str()?;
                let top_level = rel.parent() == Some(Path::new(""));
                let staged = match self {
                    Lang::Python => top_level && name.ends_with(".py"),
                    Lang::Js => top_level && name.ends_with(".js"),
                    Lang::C => top_level && (name.ends_with(".c") || name.ends_with(".h")),
                    // The `kiln` package and the export glue, in their own packages.
                    Lang::Go => !rel.starts_with("templates") && name.ends_with(".go"),
                    Lang::Rust => false,
                };
                staged.then(|| (rel.to_path_buf(), f.contents()))
            })
            .collect()
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes every file of `dir` (an embedded directory) under `to`, keeping its relative
/// layout below `strip`.
fn write_embedded(dir: &Dir<'_>, strip: &Path, to: &Path) -> Result<()> {
    for f in dir.files() {
        if skipped(f.path()) {
            continue;
        }
        let rel = f.path().strip_prefix(strip).unwrap_or(f.path());
        let path = to.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, f.contents())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for d in dir.dirs() {
        write_embedded(d, strip, to)?;
    }
    Ok(())
}

/// Build litter that may sit in a working tree's SDK and must never be staged or scaffolded.
fn skipped(path: &Path) -> bool {
    path.components().any(|c| {
        matches!(
            c.as_os_str().to_str(),
            Some("__pycache__" | "target" | "node_modules")
        )
    })
}

/// Writes the contract's WIT files into `to`.
pub fn write_wit(to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    write_embedded(&WIT, Path::new(""), to)
}

/// What `kiln plugin new` made.
#[derive(Debug, serde::Serialize)]
pub struct Scaffold {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Creates a plugin project `name` in `dir` (which must not exist, or be empty).
pub fn new_project(dir: &Path, name: &str, lang: Lang, role: Role) -> Result<Scaffold> {
    if !crate::registry::manifest::valid_name(name) {
        bail!(
            "plugin name `{name}` must be 1 to 64 lowercase letters, digits and single dashes, starting with a letter"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose a new directory",
            dir.display()
        );
    }
    let templates = SDK
        .get_dir(format!("{}/templates/{}", lang.name(), role.interface()))
        .with_context(|| format!("this kiln has no {lang} template for a {role}"))?;
    let description = format!("A {role} plugin");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{description}}", &description)
            .replace("{{role}}", role.interface())
    };
    let mut files = Vec::new();
    let mut put = |rel: &Path, contents: &[u8]| -> Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        files.push(rel.to_path_buf());
        Ok(())
    };

    let manifest = format!(
        "[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nrole = \"{role}\"\nwit = \"{wit}\"\ndescription = \"{description}\"\nlicense = \"Apache-2.0\"\nauthors = []\nkeywords = []\n\n[build]\nlang = \"{lang}\"\n",
        role = role.interface(),
        wit = crate::bindings::WIT_PACKAGE,
    );
    put(Path::new("kiln.toml"), manifest.as_bytes())?;
    put(Path::new(".gitignore"), b"target/\n")?;
    let mut template_files = Vec::new();
    collect_files(templates, &mut template_files);
    for f in template_files {
        let rel = f.path().strip_prefix(templates.path()).unwrap_or(f.path());
        // `Cargo.toml.in`: a template manifest must not look like a crate to cargo.
        let rel = match rel.to_str().and_then(|r| r.strip_suffix(".in")) {
            Some(stripped) => PathBuf::from(stripped),
            None => rel.to_path_buf(),
        };
        let rel = rel.as_path();
        let text = std::str::from_utf8(f.contents()).context("a template is not UTF-8")?;
        put(rel, fill(text).as_bytes())?;
    }
    if lang == Lang::Rust {
        // The Rust SDK travels with the project (it is not on crates.io): kiln-sdk/.
        let sdk = SDK.get_dir("rust").context("this kiln has no Rust SDK")?;
        let mut sdk_files = Vec::new();
        collect_files(sdk, &mut sdk_files);
        for f in sdk_files {
            let rel = f.path().strip_prefix("rust").unwrap_or(f.path());
            if rel.starts_with("templates") || rel.starts_with("wit") || skipped(rel) {
                continue;
            }
            let rel = Path::new("kiln-sdk").join(rel);
            if rel == Path::new("kiln-sdk/Cargo.toml") {
                put(&rel, standalone_sdk_manifest().as_bytes())?;
            } else {
                put(&rel, f.contents())?;
            }
        }
        for f in WIT.files() {
            put(&Path::new("kiln-sdk/wit").join(f.path()), f.contents())?;
        }
    }
    files.sort();
    Ok(Scaffold {
        dir: dir.to_path_buf(),
        files,
    })
}

fn collect_files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for f in dir.files() {
        if !skipped(f.path()) {
            out.push(f);
        }
    }
    for d in dir.dirs() {
        collect_files(d, out);
    }
}

/// The Rust SDK's manifest outside this workspace: concrete versions for the workspace's.
fn standalone_sdk_manifest() -> String {
    format!(
        "[package]\nname = \"kiln-sdk\"\ndescription = \"Write Kiln plugins in Rust\"\nversion = \"{}\"\nedition = \"2024\"\nlicense = \"Apache-2.0\"\n\n[dependencies]\nwit-bindgen = {{ version = \"0.63\", default-features = false, features = [\"macros\", \"realloc\"] }}\n",
        env!("CARGO_PKG_VERSION")
    )
}
