//! The plugin manifest: `kiln.toml` beside a plugin's source.
//!
//! ```toml
//! [plugin]
//! name = "csv-reader"
//! version = "0.1.0"
//! role = "step"                  # step | validator | model-runner | tracker
//! wit = "kiln:plugin@0.1.0"      # the contract it was built against
//! description = "Reads a CSV file into a table"
//! license = "Apache-2.0"
//! authors = ["Kiln developers"]
//! keywords = ["csv", "io"]
//! component = "target/wasm32-wasip2/release/csv_reader.wasm"  # optional, relative to this file
//!
//! [capabilities]                 # what the plugin asks for; the operator may grant less
//! filesystem = "read"            # none | read | read-write
//! hosts = ["api.example.com:443"]
//! memory = "64MiB"
//! timeout = "10s"
//!
//! [build]                        # for `kiln plugin build`
//! lang = "python"                # rust | python | js | c | go
//! ```
//!
//! The manifest lives beside the source rather than in a custom section of the component
//! so that it can be read, reviewed and edited without tools; publishing checks it
//! against the component (role and contract version) and stores both together.

use serde::{Deserialize, Serialize};

use super::RegistryError;

/// A plugin's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginSection,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// How `kiln plugin build` builds it; absent for a plain Rust crate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSection>,
}

/// `[build]`: the language the plugin is written in (rust, python, js, c or go).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    pub lang: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub name: String,
    pub version: String,
    pub role: String,
    #[serde(default = "default_wit")]
    pub wit: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The built component, relative to the manifest (publish-time only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

fn default_wit() -> String {
    crate::bindings::WIT_PACKAGE.to_string()
}

/// What a plugin asks to be allowed. Absent means nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl Manifest {
    /// Parses and checks a `kiln.toml`.
    pub fn parse(text: &str) -> Result<Manifest, RegistryError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| RegistryError::Manifest(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// The parsed version.
    pub fn version(&self) -> semver::Version {
        // `check` has parsed it already.
        semver::Version::parse(&self.plugin.version)
            .unwrap_or_else(|_| semver::Version::new(0, 0, 0))
    }

    /// Checks every field that has a shape: name, version, role, contract, capabilities.
    pub fn check(&self) -> Result<(), RegistryError> {
        let bad = |m: String| Err(RegistryError::Manifest(m));
        let p = &self.plugin;
        if !valid_name(&p.name) {
            return bad(format!(
                "plugin name `{}` must be 1 to 64 lowercase letters, digits and single dashes, starting with a letter",
                p.name
            ));
        }
        if let Err(e) = semver::Version::parse(&p.version) {
            return bad(format!("version `{}` is not semver: {e}", p.version));
        }
        if crate::plugin::Role::parse(&p.role).is_none() {
            return bad(format!(
                "role `{}` must be step, validator, model-runner or tracker",
                p.role
            ));
        }
        if p.wit != crate::bindings::WIT_PACKAGE {
            return bad(format!(
                "contract `{}` is not the one this Kiln speaks ({})",
                p.wit,
                crate::bindings::WIT_PACKAGE
            ));
        }
        if p.keywords.len() > 16 || p.keywords.iter().any(|k| k.is_empty() || k.len() > 32) {
            return bad("at most 16 keywords of 1 to 32 characters".into());
        }
        let c = &self.capabilities;
        if let Some(fs) = &c.filesystem
            && !["none", "read", "read-write"].contains(&fs.as_str())
        {
            return bad(format!(
                "capabilities.filesystem `{fs}` must be none, read or read-write"
            ));
        }
        for host in &c.hosts {
            let ok = host.rsplit_once(':').is_some_and(|(h, port)| {
                !h.is_empty()
                    && h.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' || ch == '*')
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return bad(format!(
                    "capabilities.hosts entry `{host}` must be host:port"
                ));
            }
        }
        if let Some(m) = &c.memory {
            match m.parse::<bytesize::ByteSize>() {
                Ok(b) if b.as_u64() > 0 && b.as_u64() <= crate::engine::MAX_MEMORY => {}
                _ => {
                    return bad(format!(
                        "capabilities.memory `{m}` must be a size up to 4GiB, e.g. 64MiB"
                    ));
                }
            }
        }
        if let Some(t) = &c.timeout
            && humantime::parse_duration(t).map_or(true, |d| d.is_zero())
        {
            return bad(format!(
                "capabilities.timeout `{t}` must be a duration, e.g. 10s"
            ));
        }
        Ok(())
    }
}

/// Plugin names: lowercase letters, digits and single dashes, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plugin]
name = "csv-reader"
version = "0.1.0"
role = "step"
keywords = ["csv"]

[capabilities]
filesystem = "read"
hosts = ["example.com:443"]
memory = "64MiB"
timeout = "10s"
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.plugin.wit, "kiln:plugin@0.1.0");
        assert_eq!(m.capabilities.filesystem.as_deref(), Some("read"));
    }

    #[test]
    fn refuses_malformed_fields() {
        for (from, to, why) in [
            ("name = \"csv-reader\"", "name = \"../evil\"", "plugin name"),
            ("version = \"0.1.0\"", "version = \"1\"", "not semver"),
            ("role = \"step\"", "role = \"trainer\"", "role"),
            (
                "filesystem = \"read\"",
                "filesystem = \"all\"",
                "filesystem",
            ),
            ("example.com:443", "example.com", "host:port"),
            ("memory = \"64MiB\"", "memory = \"64TiB\"", "memory"),
            ("timeout = \"10s\"", "timeout = \"soon\"", "timeout"),
            (
                "[capabilities]",
                "[capabilities]\nnetwork = true",
                "unknown field",
            ),
        ] {
            let err = Manifest::parse(&GOOD.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{to}: {err}");
        }
    }
}
