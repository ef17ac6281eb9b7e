//! Importing a model file made elsewhere (an ONNX export) as a registered model version.
//!
//! The runner loads the model before anything is stored: a file it cannot load (malformed,
//! an unsupported operator) is refused with its reason, and the store is left as it was.
//! The version records the runner, the artifact's digest and the signature the runner
//! reports.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Context as _, Result};

use crate::{
    bindings::Value,
    plugin::{CallOptions, PluginError, PluginHost, Role},
    registry::{Registry, resolve::parse_spec},
    tracking::{ModelVersion, Object, Store, Write},
    workflow::plan::PluginRef,
};

/// The runner an ONNX file is served by unless told otherwise.
pub const ONNX_RUNNER: &str = "onnx-runner@^0.1";

/// What to import.
pub struct ImportRequest {
    pub name: String,
    pub alias: Option<String>,
    /// The model-runner plugin, `name@requirement` from the registry.
    pub runner: String,
    pub artifact: Vec<u8>,
    /// Where the file came from (its name), recorded as the version's source.
    pub source: String,
    pub description: String,
}

pub struct Imported {
    pub version: u64,
    /// False when the same artifact and runner were already registered as `version`.
    pub new: bool,
    pub record: ModelVersion,
}

/// Loads the model with its runner, then stores the artifact and registers the version.
pub fn import(
    store: &Store,
    host: &PluginHost,
    registry: &Arc<Registry>,
    req: ImportRequest,
) -> Result<Imported> {
    anyhow::ensure!(!req.artifact.is_empty(), "the model file is empty");
    let (runner_name, requirement) = parse_spec(&req.runner).map_err(anyhow::Error::msg)?;
    let found = registry.resolve(runner_name, &requirement)?;
    let component = registry.fetch(&found)?;
    let plugin = host
        .load_bytes(&found.spec(), &component, Some(Role::ModelRunner))
        .with_context(|| format!("loading the runner {}", found.spec()))?;
    let loaded = plugin
        .load_model(&req.artifact, &Vec::new(), &CallOptions::default())
        .and_then(|mut m| m.metadata());
    let metadata = match loaded {
        Ok(m) => m,
        Err(PluginError::Failed { kind, message, .. }) => {
            anyhow::bail!(
                "{} refuses the model ({kind}): {message}; nothing was imported",
                found.spec()
            )
        }
        Err(e) => return Err(e).context("the runner failed on the model; nothing was imported"),
    };
    let object = Object::encode(&Value::Bytes(req.artifact))?;
    let digest = object.digest.clone();
    store.apply(&[Write::Object(object)])?;
    let record = ModelVersion {
        model: req.name.clone(),
        version: 0,
        created_ms: crate::now_ms(),
        run: String::new(),
        step: String::new(),
        artifact: digest,
        source: req.source,
        runner: Some(PluginRef {
            uses: req.runner.clone(),
            name: found.name.clone(),
            version: Some(found.version.clone()),
            digest: found.digest.clone(),
            file: None,
        }),
        metrics: BTreeMap::new(),
        tags: BTreeMap::new(),
        description: req.description,
        signature: Some(metadata.into()),
        pipeline: None,
    };
    let (version, new) = store.register_model(record, req.alias.as_deref())?;
    let record = store.model_version(&req.name, version)?;
    Ok(Imported {
        version,
        new,
        record,
    })
}
