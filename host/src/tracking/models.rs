//! The model registry: registered models, their versions, and aliases whose every change
//! is kept (append-only), so an alias can be traced and rolled back.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    ModelRecord, ModelVersion, Store, TrackingError,
    experiments::{
        MAX_DESCRIPTION_LEN, MAX_KEY_LEN, MAX_NAME_LEN, MAX_TAG_VALUE_LEN, check_len, shown,
    },
    tables::*,
};

type Result<T, E = TrackingError> = std::result::Result<T, E>;

/// One change of an alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AliasEvent {
    pub alias: String,
    /// The version it points at from now on; `None` when it was deleted.
    pub version: Option<u64>,
    /// The version it pointed at before.
    pub previous: Option<u64>,
    pub at_ms: u64,
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.contains(['/', '\0']) {
        return Err(TrackingError::Invalid(format!(
            "`{}` is not a valid {what} name (1 to {MAX_NAME_LEN} characters, no `/`)",
            shown(name)
        )));
    }
    Ok(())
}

fn check_alias(alias: &str) -> Result<()> {
    check_name("alias", alias)?;
    let reserved = alias.eq_ignore_ascii_case("latest")
        || (alias.len() > 1
            && (alias.starts_with('v') || alias.starts_with('V'))
            && alias[1..].chars().all(|c| c.is_ascii_digit()));
    if reserved {
        return Err(TrackingError::Invalid(format!(
            "`{alias}` is reserved: aliases may not be `latest` or look like a version (v1)"
        )));
    }
    Ok(())
}

fn read_model(txn: &WriteTransaction, name: &str) -> Result<Option<ModelRecord>> {
    let table = txn.open_table(MODELS)?;
    let got = table.get(name)?;
    Ok(match got {
        Some(v) => Some(serde_json::from_slice(v.value())?),
        None => None,
    })
}

fn write_model(txn: &WriteTransaction, m: &ModelRecord) -> Result<()> {
    txn.open_table(MODELS)?
        .insert(m.name.as_str(), serde_json::to_vec(m)?.as_slice())?;
    Ok(())
}

fn no_model(name: &str) -> TrackingError {
    TrackingError::NotFound(format!("no registered model `{}`", shown(name)))
}

/// Checks what a model record holds against MLflow's limits: its description and tags.
fn check_model_texts(description: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    check_len("a description", description, MAX_DESCRIPTION_LEN)?;
    for (k, v) in tags {
        check_len("a tag key", k, MAX_KEY_LEN)?;
        check_len("a tag value", v, MAX_TAG_VALUE_LEN)?;
    }
    Ok(())
}

fn append_alias_event(txn: &WriteTransaction, model: &str, event: &AliasEvent) -> Result<()> {
    let mut table = txn.open_table(ALIAS_EVENTS)?;
    let next = table
        .range((model, 0)..=(model, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1 + 1);
    table.insert((model, next), serde_json::to_vec(event)?.as_slice())?;
    Ok(())
}

/// Points `alias` of `m` at `version` (or removes it, for `None`), stamps the model and
/// appends the change to the alias history. Returns the version it pointed at before.
fn move_alias(
    txn: &WriteTransaction,
    m: &mut ModelRecord,
    alias: &str,
    version: Option<u64>,
) -> Result<Option<u64>> {
    let previous = match version {
        Some(v) => m.aliases.insert(alias.to_string(), v),
        None => m.aliases.remove(alias),
    };
    let now = crate::now_ms();
    m.updated_ms = now;
    append_alias_event(
        txn,
        &m.name,
        &AliasEvent {
            alias: alias.to_string(),
            version,
            previous,
            at_ms: now,
        },
    )?;
    Ok(previous)
}

impl Store {
    /// Commits a change of models and tells readers of [`models_generation`](Self::models_generation).
    fn commit_models(&self, txn: WriteTransaction) -> Result<()> {
        txn.commit()?;
        self.models_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// A number that changes after every committed change of models, versions or aliases.
    pub fn models_generation(&self) -> u64 {
        self.models_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Registers a new model name.
    pub fn create_model(
        &self,
        name: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ModelRecord> {
        check_name("model", name)?;
        check_model_texts(description, tags)?;
        let txn = self.db.begin_write()?;
        if read_model(&txn, name)?.is_some() {
            return Err(TrackingError::AlreadyExists(format!(
                "a registered model named `{name}` already exists"
            )));
        }
        let now = crate::now_ms();
        let m = ModelRecord {
            name: name.to_string(),
            created_ms: now,
            updated_ms: now,
            latest: 0,
            aliases: BTreeMap::new(),
            tags: tags.clone(),
            description: description.to_string(),
        };
        write_model(&txn, &m)?;
        self.commit_models(txn)?;
        Ok(m)
    }

    /// Adds a version of a model, creating the model on first use; points `alias` at it if
    /// given. A version with the same artifact, runner and pipeline as an existing one is
    /// not added again: its number is returned with `false`.
    pub fn register_model(
        &self,
        mut version: ModelVersion,
        alias: Option<&str>,
    ) -> Result<(u64, bool)> {
        check_name("model", &version.model)?;
        check_model_texts(&version.description, &version.tags)?;
        if let Some(a) = alias {
            check_alias(a)?;
        }
        let txn = self.db.begin_write()?;
        let now = crate::now_ms();
        let mut model = match read_model(&txn, &version.model)? {
            Some(m) => m,
            None => ModelRecord {
                name: version.model.clone(),
                created_ms: now,
                updated_ms: now,
                latest: 0,
                aliases: BTreeMap::new(),
                tags: BTreeMap::new(),
                description: String::new(),
            },
        };
        if !version.artifact.is_empty() {
            let versions = txn.open_table(MODEL_VERSIONS)?;
            let name = version.model.as_str();
            for row in versions.range((name, 0)..=(name, u64::MAX))? {
                let (k, v) = row?;
                let existing: ModelVersion = serde_json::from_slice(v.value())?;
                let same_runner = existing.runner.as_ref().map(|r| &r.digest)
                    == version.runner.as_ref().map(|r| &r.digest);
                let same_pipeline = match (&existing.pipeline, &version.pipeline) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.same_as(b),
                    _ => false,
                };
                if existing.artifact == version.artifact && same_runner && same_pipeline {
                    return Ok((k.value().1, false));
                }
            }
        }
        model.latest += 1;
        model.updated_ms = now;
        version.version = model.latest;
        version.created_ms = now;
        txn.open_table(MODEL_VERSIONS)?.insert(
            (version.model.as_str(), model.latest),
            serde_json::to_vec(&version)?.as_slice(),
        )?;
        if let Some(a) = alias {
            let latest = model.latest;
            move_alias(&txn, &mut model, a, Some(latest))?;
        }
        write_model(&txn, &model)?;
        self.commit_models(txn)?;
        Ok((model.latest, true))
    }

    /// Every registered model, by name.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MODELS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    /// A model and its versions, oldest first.
    pub fn model(&self, name: &str) -> Result<(ModelRecord, Vec<ModelVersion>)> {
        let txn = self.db.begin_read()?;
        let model: ModelRecord = match txn.open_table(MODELS)?.get(name)? {
            Some(v) => serde_json::from_slice(v.value())?,
            None => return Err(no_model(name)),
        };
        let table = txn.open_table(MODEL_VERSIONS)?;
        let mut versions = Vec::new();
        for row in table.range((name, 0)..=(name, u64::MAX))? {
            versions.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok((model, versions))
    }

    /// One version of a model.
    pub fn model_version(&self, name: &str, version: u64) -> Result<ModelVersion> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MODEL_VERSIONS)?;
        let got = table.get((name, version))?;
        match got {
            Some(v) => Ok(serde_json::from_slice(v.value())?),
            None => Err(TrackingError::NotFound(format!(
                "registered model `{name}` has no version {version}"
            ))),
        }
    }

    /// Changes a model's description or tags.
    pub fn update_model(
        &self,
        name: &str,
        change: impl FnOnce(&mut ModelRecord),
    ) -> Result<ModelRecord> {
        let txn = self.db.begin_write()?;
        let mut m = read_model(&txn, name)?.ok_or_else(|| no_model(name))?;
        change(&mut m);
        check_model_texts(&m.description, &m.tags)?;
        m.updated_ms = crate::now_ms();
        write_model(&txn, &m)?;
        self.commit_models(txn)?;
        Ok(m)
    }

    /// Points `alias` at `version` (which must exist), recording the change.
    pub fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<Option<u64>> {
        check_alias(alias)?;
        let txn = self.db.begin_write()?;
        let mut m = read_model(&txn, name)?.ok_or_else(|| no_model(name))?;
        if txn
            .open_table(MODEL_VERSIONS)?
            .get((name, version))?
            .is_none()
        {
            return Err(TrackingError::NotFound(format!(
                "registered model `{name}` has no version {version}"
            )));
        }
        let previous = move_alias(&txn, &mut m, alias, Some(version))?;
        write_model(&txn, &m)?;
        self.commit_models(txn)?;
        Ok(previous)
    }

    /// Removes an alias, recording the change.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        let mut m = read_model(&txn, name)?.ok_or_else(|| no_model(name))?;
        if !m.aliases.contains_key(alias) {
            return Err(TrackingError::NotFound(format!(
                "registered model `{name}` has no alias `{alias}`"
            )));
        }
        move_alias(&txn, &mut m, alias, None)?;
        write_model(&txn, &m)?;
        self.commit_models(txn)?;
        Ok(())
    }

    /// The version an alias points at.
    pub fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let (m, _) = self.model(name)?;
        let version = m.aliases.get(alias).copied().ok_or_else(|| {
            TrackingError::NotFound(format!("registered model `{name}` has no alias `{alias}`"))
        })?;
        self.model_version(name, version)
    }

    /// Every change of a model's aliases (or of one alias), oldest first.
    pub fn alias_history(&self, name: &str, alias: Option<&str>) -> Result<Vec<AliasEvent>> {
        self.model(name)?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ALIAS_EVENTS)?;
        let mut out = Vec::new();
        for row in table.range((name, 0)..=(name, u64::MAX))? {
            let e: AliasEvent = serde_json::from_slice(row?.1.value())?;
            if alias.is_none_or(|a| a == e.alias) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Points an alias back at the version it pointed at before its last change.
    pub fn rollback_alias(&self, name: &str, alias: &str) -> Result<u64> {
        let history = self.alias_history(name, Some(alias))?;
        let last = history.last().ok_or_else(|| {
            TrackingError::NotFound(format!("alias `{alias}` of `{name}` has no history"))
        })?;
        let target = last.previous.ok_or_else(|| {
            TrackingError::Invalid(format!(
                "alias `{alias}` of `{name}` pointed at nothing before its last change"
            ))
        })?;
        self.set_alias(name, alias, target)?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(model: &str, artifact: &str) -> ModelVersion {
        ModelVersion {
            model: model.into(),
            version: 0,
            created_ms: 0,
            run: "r".into(),
            step: "train".into(),
            artifact: artifact.into(),
            source: String::new(),
            runner: None,
            metrics: BTreeMap::new(),
            tags: BTreeMap::new(),
            description: String::new(),
            signature: None,
            pipeline: None,
        }
    }

    #[test]
    fn aliases_move_with_their_history_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.register_model(version("m", "a1"), Some("champion"))
                .unwrap(),
            (1, true)
        );
        assert_eq!(
            s.register_model(version("m", "a1"), None).unwrap(),
            (1, false),
            "same artifact"
        );
        assert_eq!(
            s.register_model(version("m", "a2"), None).unwrap(),
            (2, true)
        );
        assert_eq!(s.set_alias("m", "champion", 2).unwrap(), Some(1));
        assert_eq!(s.version_by_alias("m", "champion").unwrap().artifact, "a2");
        assert_eq!(s.rollback_alias("m", "champion").unwrap(), 1);
        assert_eq!(s.version_by_alias("m", "champion").unwrap().version, 1);
        let history: Vec<(Option<u64>, Option<u64>)> = s
            .alias_history("m", Some("champion"))
            .unwrap()
            .iter()
            .map(|e| (e.version, e.previous))
            .collect();
        assert_eq!(
            history,
            [(Some(1), None), (Some(2), Some(1)), (Some(1), Some(2))]
        );
        s.delete_alias("m", "champion").unwrap();
        assert!(matches!(
            s.version_by_alias("m", "champion"),
            Err(TrackingError::NotFound(_))
        ));
        assert_eq!(s.alias_history("m", None).unwrap().len(), 4);
        assert!(matches!(
            s.set_alias("m", "x", 9),
            Err(TrackingError::NotFound(_))
        ));
        assert!(matches!(
            s.set_alias("m", "v3", 1),
            Err(TrackingError::Invalid(_))
        ));
        assert!(matches!(
            s.create_model("m", "", &BTreeMap::new()),
            Err(TrackingError::AlreadyExists(_))
        ));
        assert!(matches!(s.model("none"), Err(TrackingError::NotFound(_))));
    }
}
