//! `kiln publish`, `search`, `info`, `yank`, `unyank` and `registry verify`.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{Ctx, emit, emit_json};
use crate::{
    plugin::Role,
    registry::{Manifest, VersionRecord, resolve::parse_spec},
};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A plugin directory holding kiln.toml, or a component file.
    target: PathBuf,
    /// The manifest, when it is not kiln.toml in the plugin directory or beside the file.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The signing key's name.
    #[arg(long, default_value = "default")]
    key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Replay the event log and recheck every digest and signature.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetch NAME@REQ from another Kiln server, verifying its digest and signature.
    Pull {
        spec: String,
        /// The server, e.g. http://127.0.0.1:8480.
        #[arg(long)]
        from: String,
        /// Trust the publisher's key as the server reports it, if this registry does not yet.
        #[arg(long)]
        trust: bool,
    },
}

/// The most a pulled component may weigh.
const MAX_PULL: u64 = 256 << 20;

fn get(url: &str) -> Result<ureq::http::Response<ureq::Body>> {
    ureq::get(url).call().with_context(|| format!("GET {url}"))
}

fn pull(ctx: &Ctx, spec: &str, from: &str, trust: bool) -> Result<ExitCode> {
    let (name, req) = parse_spec(spec).map_err(anyhow::Error::msg)?;
    let base = from.trim_end_matches('/');
    let listing: serde_json::Value = get(&format!("{base}/v1/plugins/{name}"))?
        .body_mut()
        .read_json()?;
    let candidates: Vec<crate::registry::resolve::Candidate> = listing["versions"]
        .as_array()
        .context("the server's answer has no versions")?
        .iter()
        .filter_map(|v| {
            Some(crate::registry::resolve::Candidate {
                version: semver::Version::parse(v["version"].as_str()?).ok()?,
                yanked: v["yanked"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    let chosen = crate::registry::resolve::resolve(&req, &candidates)
        .with_context(|| format!("no version of `{name}` on {base} matches `{req}`"))?
        .version
        .to_string();
    let record: VersionRecord = get(&format!("{base}/v1/plugins/{name}/{chosen}"))?
        .body_mut()
        .read_json()?;
    anyhow::ensure!(
        record.name == name && record.version == chosen,
        "the server answered with another version"
    );
    let bytes = get(&format!("{base}/v1/blobs/{}", record.digest))?
        .body_mut()
        .with_config()
        .limit(MAX_PULL)
        .read_to_vec()?;
    let digest = crate::digest::sha256_hex(&bytes);
    anyhow::ensure!(
        digest == record.digest,
        "the component's digest is {digest}, the server's record says {}",
        record.digest
    );
    let registry = ctx.registry()?;
    if registry.trusted_key(&record.key_id)?.is_none() {
        let key: crate::registry::KeyRecord = get(&format!("{base}/v1/keys/{}", record.key_id))?
            .body_mut()
            .read_json()?;
        anyhow::ensure!(
            trust,
            "{} is signed by key {} (`{}` on {base}), which this registry does not trust: `kiln key trust {} --name {}`, or pull with --trust",
            record.spec(),
            key.id,
            key.name,
            key.public,
            key.name
        );
        let trusted = registry.trust_key(&key.name, &key.public)?;
        anyhow::ensure!(
            trusted.id == record.key_id,
            "the server's key {} does not have the id it was asked for",
            trusted.id
        );
    }
    let role = Role::parse(&record.manifest.plugin.role).context("the record's role")?;
    ctx.plugin_host()?
        .load_bytes(&record.spec(), &bytes, Some(role))?;
    let stored =
        registry.publish_signed(&record.manifest, &bytes, &record.signature, &record.key_id)?;
    emit(&format!(
        "pulled {} (sha256:{}) from {base}, signed by key {}\n",
        stored.spec(),
        stored.digest,
        stored.key_id
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Finds the manifest and the component for `kiln publish`.
fn locate(args: &PublishArgs) -> Result<(Manifest, PathBuf, PathBuf)> {
    let (manifest_path, component) = if args.target.is_dir() {
        (
            args.manifest
                .clone()
                .unwrap_or_else(|| args.target.join("kiln.toml")),
            None,
        )
    } else {
        let beside = args
            .target
            .parent()
            .unwrap_or(Path::new("."))
            .join("kiln.toml");
        (
            args.manifest.clone().unwrap_or(beside),
            Some(args.target.clone()),
        )
    };
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading the manifest {}", manifest_path.display()))?;
    let manifest =
        Manifest::parse(&text).with_context(|| format!("in {}", manifest_path.display()))?;
    let component = match component {
        Some(c) => c,
        None => {
            let base = manifest_path.parent().unwrap_or(Path::new("."));
            match (&manifest.plugin.component, &manifest.build) {
                (Some(rel), _) => base.join(rel),
                // Where `kiln plugin build` writes it.
                (None, Some(_)) => base
                    .join("target")
                    .join(format!("{}.wasm", manifest.plugin.name)),
                (None, None) => bail!(
                    "{} names no `component`: pass the .wasm file instead of the directory",
                    manifest_path.display()
                ),
            }
        }
    };
    Ok((manifest, manifest_path, component))
}

pub fn publish(ctx: &Ctx, args: PublishArgs) -> Result<ExitCode> {
    let (manifest, manifest_path, component) = locate(&args)?;
    let bytes = std::fs::read(&component)
        .with_context(|| format!("reading the component {}", component.display()))?;
    let role = Role::parse(&manifest.plugin.role).context("the manifest's role")?;
    // The component must implement the world the manifest declares, before anything is stored.
    let host = ctx.plugin_host()?;
    let spec = format!("{}@{}", manifest.plugin.name, manifest.plugin.version);
    host.load_bytes(&spec, &bytes, Some(role))?;
    let key = crate::registry::sign::load(&ctx.key_path(&args.key))?;
    let (record, place) = match &ctx.server {
        Some((base, token)) => (
            publish_remote(base, token.clone(), &manifest, &bytes, &key)?,
            base.clone(),
        ),
        None => {
            let registry = ctx.registry()?;
            let record = registry.publish(&manifest, &bytes, &key)?;
            (record, "the local registry".to_string())
        }
    };
    if args.json {
        emit_json(&record)?;
    } else {
        emit(&format!(
            "published {} to {place} ({}, {} bytes, sha256:{}) from {}, signed by key {}\n",
            record.spec(),
            record.manifest.plugin.role,
            record.size,
            record.digest,
            manifest_path.display(),
            record.key_id
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes to a Kiln server's marketplace (`POST /v1/plugins`, the token's `publish`
/// scope): signed here with the publisher's key, which the server must trust.
fn publish_remote(
    base: &str,
    token: Option<String>,
    manifest: &Manifest,
    bytes: &[u8],
    key: &ed25519_dalek::SigningKey,
) -> Result<VersionRecord> {
    use crate::registry::sign;
    use base64::Engine as _;
    let signed = sign::sign_version(key, manifest, bytes);
    let body = json!({
        "manifest": signed.manifest,
        "component": base64::engine::general_purpose::STANDARD.encode(bytes),
        "signature": signed.signature,
        "key_id": sign::key_id(&key.verifying_key()),
    });
    super::remote::Remote::new(base.to_string(), token)
        .call("POST", "/v1/plugins", Some(body))
        .with_context(|| format!("publishing to {base}"))
}

pub fn search(ctx: &Ctx, words: Vec<String>, as_json: bool) -> Result<ExitCode> {
    let registry = ctx.registry()?;
    let found = registry.search(&words)?;
    let mut rows = Vec::new();
    for p in &found {
        let latest = registry
            .resolve(&p.name, &semver::VersionReq::STAR)
            .ok()
            .map(|v| v.version);
        rows.push((p, latest));
    }
    if as_json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(p, latest)| json!({"name": p.name, "role": p.role, "description": p.description, "keywords": p.keywords, "latest": latest}))
            .collect();
        emit_json(&doc)?;
    } else if rows.is_empty() {
        emit("no plugins match\n")?;
    } else {
        let text: String = rows
            .iter()
            .map(|(p, latest)| {
                format!(
                    "{}@{}  ({})  {}\n",
                    p.name,
                    latest.as_deref().unwrap_or("-"),
                    p.role,
                    p.description
                )
            })
            .collect();
        emit(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn info(ctx: &Ctx, spec: &str, as_json: bool) -> Result<ExitCode> {
    let (name, req) = parse_spec(spec).map_err(anyhow::Error::msg)?;
    let registry = ctx.registry()?;
    let versions = registry.versions(name)?;
    if versions.is_empty() {
        bail!("no plugin named `{name}`");
    }
    let chosen = registry.resolve(name, &req)?;
    if as_json {
        let doc = json!({
            "name": name,
            "requirement": req.to_string(),
            "resolved": chosen,
            "versions": versions.iter().map(|v| json!({"version": v.version, "digest": v.digest, "yanked": v.yanked})).collect::<Vec<_>>(),
        });
        emit_json(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let m = &chosen.manifest;
    let mut text = format!("{} — {}\n", chosen.spec(), m.plugin.description);
    text += &format!("  role        {} ({})\n", m.plugin.role, m.plugin.wit);
    text += &format!("  digest      sha256:{}\n", chosen.digest);
    text += &format!("  size        {} bytes\n", chosen.size);
    text += &format!("  signed by   {}\n", chosen.key_id);
    if !m.plugin.license.is_empty() {
        text += &format!("  license     {}\n", m.plugin.license);
    }
    if !m.plugin.keywords.is_empty() {
        text += &format!("  keywords    {}\n", m.plugin.keywords.join(", "));
    }
    let caps = toml::to_string(&m.capabilities).unwrap_or_default();
    if !caps.trim().is_empty() {
        text += &format!("  asks for    {}\n", caps.trim().replace('\n', ", "));
    }
    text += &format!(
        "  versions    {}\n",
        versions
            .iter()
            .map(|v| if v.yanked {
                format!("{} (yanked)", v.version)
            } else {
                v.version.clone()
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn yank(ctx: &Ctx, spec: &str, yanked: bool) -> Result<ExitCode> {
    let (name, version) = spec
        .split_once('@')
        .with_context(|| format!("`{spec}`: give the exact version, as name@1.2.3"))?;
    let record: VersionRecord = ctx.registry()?.set_yanked(name, version, yanked)?;
    emit(&format!(
        "{} {}\n",
        if yanked { "yanked" } else { "unyanked" },
        record.spec()
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn registry(ctx: &Ctx, cmd: RegistryCommand) -> Result<ExitCode> {
    match cmd {
        RegistryCommand::Verify { json: as_json } => {
            let report = ctx.registry()?.verify()?;
            if as_json {
                emit_json(&report)?;
            } else {
                let mut text = format!(
                    "{} events, {} versions, {} blobs: {}\n",
                    report.events,
                    report.versions,
                    report.blobs,
                    if report.problems.is_empty() {
                        "all verified"
                    } else {
                        "PROBLEMS FOUND"
                    }
                );
                for p in &report.problems {
                    text += &format!("  - {p}\n");
                }
                emit(&text)?;
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RegistryCommand::Pull { spec, from, trust } => pull(ctx, &spec, &from, trust),
    }
}
