//! Loading plugins and calling them.
//!
//! [`PluginHost`] holds the engine, the one [`Linker`] and the compiled-artifact cache,
//! and keeps one [`Plugin`] (an `InstancePre` plus the role's export indices) per
//! component digest. Loading checks, before any plugin code runs, that the bytes are a
//! component, that it exports exactly one Kiln role, that the host provides everything it
//! imports, and that the role's functions have the contract's types. Every call gets a
//! fresh [`Store`](wasmtime::Store) with no ambient authority (see [`state`]).
//!
//! This module must never let a plugin's failure escape as a panic or a hang: traps,
//! deadlines and memory caps all come back as [`PluginError`]s that name the plugin.

mod drive;
mod error;
mod invoke;
mod state;
mod world;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

pub use error::PluginError;
pub use invoke::{CallOptions, ModelInstance, NamedInput, NamedValueRef, Outcome, StepInstance};
pub use state::{DirGrant, Grants, PluginState};
pub use world::{Role, Surface};

use crate::{
    bindings::{model_runner, step, tracker, validator},
    digest::sha256_hex,
    engine::{ArtifactCache, CacheOutcome, KilnEngine},
};

/// The engine, linker and caches that every plugin of this process shares.
pub struct PluginHost {
    engine: KilnEngine,
    linker: Linker<PluginState>,
    cache: ArtifactCache,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
}

/// A role's export indices, found once per component. Steps and validators also keep
/// the index of their hot function, called without a per-call type check (the check is
/// done once, at load).
#[derive(Clone)]
pub(crate) enum RoleExports {
    Step(step::GuestIndices, ComponentExportIndex),
    Validator(validator::GuestIndices, ComponentExportIndex),
    ModelRunner(model_runner::GuestIndices),
    Tracker(tracker::GuestIndices),
}

/// A loaded, checked plugin, ready to instantiate.
pub struct Plugin {
    name: Arc<str>,
    digest: String,
    role: Role,
    surface: Surface,
    size: usize,
    cache_outcome: CacheOutcome,
    pre: InstancePre<PluginState>,
    exports: RoleExports,
    engine: KilnEngine,
}

impl PluginHost {
    /// A host over `engine`, caching compiled code with `cache`.
    pub fn new(engine: KilnEngine, cache: ArtifactCache) -> anyhow::Result<Self> {
        let mut linker = Linker::new(engine.engine());
        crate::host_impl::add_to_linker(&mut linker)?;
        Ok(PluginHost {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &KilnEngine {
        &self.engine
    }

    /// Loads the component at `path`, named after the file.
    pub fn load_file(
        &self,
        path: &Path,
        expected: Option<Role>,
    ) -> Result<Arc<Plugin>, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
            .replace('_', "-");
        self.load_bytes(&name, &bytes, expected)
    }

    /// Loads a component from its bytes. The same bytes load once per process.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<Role>,
    ) -> Result<Arc<Plugin>, PluginError> {
        let digest = sha256_hex(bytes);
        if let Some(plugin) = self.cached(&digest) {
            if let Some(want) = expected {
                world::detect_role(&plugin.surface, Some(want)).map_err(|reason| {
                    PluginError::WrongWorld {
                        plugin: name.to_string(),
                        reason,
                    }
                })?;
            }
            return Ok(plugin);
        }
        let plugin = Arc::new(self.load_new(name, digest.clone(), bytes, expected)?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, plugin.clone());
        Ok(plugin)
    }

    /// Every plugin loaded so far.
    pub fn loaded(&self) -> Vec<Arc<Plugin>> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The plugin loaded from the component with this sha256 digest, if one was: a
    /// bundle's plugins are loaded from their precompiled code before anything asks.
    pub fn cached(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// Loads a component from code precompiled for this engine (a bundle's): nothing is
    /// compiled. `digest` is the sha256 of the component the code was compiled from and
    /// `size` its length.
    ///
    /// # Safety
    ///
    /// `code` must be what `Engine::precompile_component` wrote for an engine configured as
    /// this one, and as trusted as the `kiln` binary: deserializing native code is sound
    /// only for such bytes. A bundle's code is, once its digests and signature verified.
    pub unsafe fn load_precompiled(
        &self,
        name: &str,
        digest: &str,
        code: &[u8],
        size: usize,
    ) -> Result<Arc<Plugin>, PluginError> {
        if let Some(plugin) = self.cached(digest) {
            return Ok(plugin);
        }
        let engine = self.engine.engine();
        // SAFETY: the caller vouches for `code`, as this function's contract says.
        let component = unsafe { Component::deserialize(engine, code) }.map_err(|e| {
            PluginError::Malformed {
                plugin: name.to_string(),
                reason: format!("its precompiled code does not load: {e:#}"),
            }
        })?;
        let plugin = Arc::new(self.finish(
            name,
            digest.to_string(),
            component,
            CacheOutcome::Hit,
            size,
            None,
        )?);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string(), plugin.clone());
        Ok(plugin)
    }

    fn load_new(
        &self,
        name: &str,
        digest: String,
        bytes: &[u8],
        expected: Option<Role>,
    ) -> Result<Plugin, PluginError> {
        let malformed = |reason: String| PluginError::Malformed {
            plugin: name.to_string(),
            reason,
        };
        check_header(bytes).map_err(malformed)?;
        let (component, cache_outcome) = self
            .cache
            .load(self.engine.engine(), &digest, bytes)
            .map_err(|e| {
                if e.is::<crate::engine::NoCompiler>() {
                    PluginError::NoCompiler {
                        plugin: name.to_string(),
                    }
                } else {
                    malformed(format!("{e:#}"))
                }
            })?;
        self.finish(
            name,
            digest,
            component,
            cache_outcome,
            bytes.len(),
            expected,
        )
    }

    fn finish(
        &self,
        name: &str,
        digest: String,
        component: Component,
        cache_outcome: CacheOutcome,
        size: usize,
        expected: Option<Role>,
    ) -> Result<Plugin, PluginError> {
        let wrong_world = |reason: String| PluginError::WrongWorld {
            plugin: name.to_string(),
            reason,
        };
        let engine = self.engine.engine();
        let surface = Surface::of(engine, &component);
        let role = world::detect_role(&surface, expected).map_err(wrong_world)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            wrong_world(format!(
                "{e:#}; Kiln provides WASI 0.2 and kiln:plugin's log and tracking"
            ))
        })?;
        let exports = role_exports(role, &pre).map_err(|e| wrong_world(format!("{e:#}")))?;
        let plugin = Plugin {
            name: Arc::from(name),
            digest,
            role,
            surface,
            size,
            cache_outcome,
            pre,
            exports,
            engine: self.engine.clone(),
        };
        plugin.check_export_types()?;
        Ok(plugin)
    }
}

fn role_exports(role: Role, pre: &InstancePre<PluginState>) -> wasmtime::Result<RoleExports> {
    let hot = |name: &str| -> wasmtime::Result<ComponentExportIndex> {
        let component = pre.component();
        let instance = component
            .get_export_index(None, role.export_name())
            .ok_or_else(|| {
                wasmtime::format_err!("no exported instance named `{}`", role.export_name())
            })?;
        component
            .get_export_index(Some(&instance), name)
            .ok_or_else(|| {
                wasmtime::format_err!("`{}` does not export `{name}`", role.export_name())
            })
    };
    Ok(match role {
        Role::Step => RoleExports::Step(step::GuestIndices::new(pre)?, hot("run")?),
        Role::Validator => {
            RoleExports::Validator(validator::GuestIndices::new(pre)?, hot("validate")?)
        }
        Role::ModelRunner => RoleExports::ModelRunner(model_runner::GuestIndices::new(pre)?),
        Role::Tracker => RoleExports::Tracker(tracker::GuestIndices::new(pre)?),
    })
}

/// Tells a component from a core module or from something that is not wasm at all,
/// before the parser gives a less helpful answer.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("the file does not start with the WebAssembly magic bytes `\\0asm`".into());
    }
    // Core modules have version 1, layer 0; components have layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(
            "it is a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it with `wasm-tools component new`"
                .into(),
        );
    }
    Ok(())
}

impl Plugin {
    /// The plugin's name (the file stem until the registry names it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sha256 of the component's bytes, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The role the plugin implements.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The component's imports and exports.
    pub fn surface(&self) -> &Surface {
        &self.surface
    }

    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this load found compiled code in the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }
}
