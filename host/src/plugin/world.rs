//! Which role a component plays, judged from what it exports, and the checks that it
//! really implements that role's world before anything of it runs.

use std::fmt;

use wasmtime::{
    Engine,
    component::{Component, types::ComponentExtern},
};

use crate::bindings::WIT_PACKAGE;

/// The four plugin roles, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Step,
    Validator,
    ModelRunner,
    Tracker,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Step,
        Role::Validator,
        Role::ModelRunner,
        Role::Tracker,
    ];

    /// The interface name as it appears in WIT (`step`, `model-runner`...).
    pub fn interface(self) -> &'static str {
        match self {
            Role::Step => "step",
            Role::Validator => "validator",
            Role::ModelRunner => "model-runner",
            Role::Tracker => "tracker",
        }
    }

    /// The world a plugin of this role implements.
    pub fn world(self) -> String {
        format!("{}-plugin", self.interface())
    }

    /// The fully qualified export this role requires, e.g. `kiln:plugin/step@0.1.0`.
    pub fn export_name(self) -> String {
        let (pkg, version) = WIT_PACKAGE.split_once('@').unwrap_or((WIT_PACKAGE, ""));
        format!("{pkg}/{}@{version}", self.interface())
    }

    /// Parses `step`, `validator`, `model-runner` or `tracker`.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.interface() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// The component's imports and exports by name.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Surface {
    pub fn of(engine: &Engine, component: &Component) -> Surface {
        let ty = component.component_type();
        let names = |items: &mut dyn Iterator<Item = (&str, ComponentExtern<'_>)>| {
            items.map(|(n, _)| n.to_string()).collect::<Vec<_>>()
        };
        Surface {
            imports: names(&mut ty.imports(engine)),
            exports: names(&mut ty.exports(engine)),
        }
    }
}

/// Finds the role a component implements from its exports. `expected` names the role the
/// caller needs; a component of another role is refused, saying what it is instead.
pub fn detect_role(surface: &Surface, expected: Option<Role>) -> Result<Role, String> {
    let found: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| surface.exports.iter().any(|e| *e == r.export_name()))
        .collect();
    let role = match (found.as_slice(), expected) {
        ([], _) => return Err(no_role_message(surface)),
        (_, Some(want)) if found.contains(&want) => want,
        ([one], Some(want)) => {
            return Err(format!(
                "it is a {one} plugin (it exports `{}`), not a {want} plugin (which exports `{}`)",
                one.export_name(),
                want.export_name()
            ));
        }
        ([one], None) => *one,
        (many, _) => {
            return Err(format!(
                "it exports several roles ({}); a plugin implements exactly one",
                many.iter()
                    .map(Role::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    Ok(role)
}

fn no_role_message(surface: &Surface) -> String {
    let (pkg, _) = WIT_PACKAGE.split_once('@').unwrap_or((WIT_PACKAGE, ""));
    let other_versions: Vec<&String> = surface
        .exports
        .iter()
        .filter(|e| e.starts_with(&format!("{pkg}/")))
        .collect();
    let wanted = Role::ALL
        .iter()
        .map(|r| format!("`{}`", r.export_name()))
        .collect::<Vec<_>>()
        .join(", ");
    if !other_versions.is_empty() {
        return format!(
            "it exports {} but this host speaks {WIT_PACKAGE}: rebuild it against {WIT_PACKAGE} (exports expected: {wanted})",
            other_versions
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let exports = if surface.exports.is_empty() {
        "nothing".to_string()
    } else {
        surface
            .exports
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("it exports no Kiln role (it exports {exports}); a plugin must export one of {wanted}")
}

/// The functions a component's export instance `name` has, rendered WIT-like
/// (`describe: func() -> string`), to show next to a type mismatch.
pub fn exported_signatures(engine: &Engine, component: &Component, name: &str) -> Vec<String> {
    use wasmtime::component::types::ComponentItem as X;
    let ty = component.component_type();
    let Some(X::ComponentInstance(instance)) = ty.get_export(engine, name).map(|e| e.ty) else {
        return Vec::new();
    };
    instance
        .exports(engine)
        .filter_map(|(fname, item)| match item.ty {
            X::ComponentFunc(f) => {
                let params: Vec<String> = f
                    .params()
                    .map(|(n, t)| format!("{n}: {}", render_type(&t, 0)))
                    .collect();
                let results: Vec<String> = f.results().map(|t| render_type(&t, 0)).collect();
                let arrow = if results.is_empty() {
                    String::new()
                } else {
                    format!(" -> {}", results.join(", "))
                };
                Some(format!("{fname}: func({}){arrow}", params.join(", ")))
            }
            _ => None,
        })
        .collect()
}

/// A WIT-like rendering of a component-model type; records and variants show their
/// field or case names one level deep.
fn render_type(t: &wasmtime::component::types::Type, depth: usize) -> String {
    use wasmtime::component::types::Type as T;
    let inner = |t: &T| render_type(t, depth + 1);
    match t {
        T::Bool => "bool".into(),
        T::S8 => "s8".into(),
        T::U8 => "u8".into(),
        T::S16 => "s16".into(),
        T::U16 => "u16".into(),
        T::S32 => "s32".into(),
        T::U32 => "u32".into(),
        T::S64 => "s64".into(),
        T::U64 => "u64".into(),
        T::Float32 => "f32".into(),
        T::Float64 => "f64".into(),
        T::Char => "char".into(),
        T::String => "string".into(),
        T::List(l) => format!("list<{}>", inner(&l.ty())),
        T::Tuple(tu) => format!(
            "tuple<{}>",
            tu.types().map(|t| inner(&t)).collect::<Vec<_>>().join(", ")
        ),
        T::Option(o) => format!("option<{}>", inner(&o.ty())),
        T::Result(r) => format!(
            "result<{}, {}>",
            r.ok().map_or("_".into(), |t| inner(&t)),
            r.err().map_or("_".into(), |t| inner(&t))
        ),
        T::Record(r) if depth == 0 => format!(
            "record {{ {} }}",
            r.fields().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ),
        T::Variant(v) if depth == 0 => format!(
            "variant {{ {} }}",
            v.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
        ),
        T::Record(_) => "record".into(),
        T::Variant(_) => "variant".into(),
        T::Enum(_) => "enum".into(),
        T::Flags(_) => "flags".into(),
        T::Own(_) => "own<resource>".into(),
        T::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}").chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(exports: &[&str]) -> Surface {
        Surface {
            imports: vec![],
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn detects_the_exported_role() {
        let s = surface(&["kiln:plugin/validator@0.1.0"]);
        assert_eq!(detect_role(&s, None), Ok(Role::Validator));
        assert_eq!(detect_role(&s, Some(Role::Validator)), Ok(Role::Validator));
    }

    #[test]
    fn refuses_the_wrong_role_naming_both() {
        let s = surface(&["kiln:plugin/validator@0.1.0"]);
        let err = detect_role(&s, Some(Role::Step)).unwrap_err();
        assert!(err.contains("validator plugin"), "{err}");
        assert!(err.contains("kiln:plugin/step@0.1.0"), "{err}");
    }

    #[test]
    fn names_a_version_mismatch() {
        let s = surface(&["kiln:plugin/step@0.2.0"]);
        let err = detect_role(&s, None).unwrap_err();
        assert!(
            err.contains("kiln:plugin/step@0.2.0") && err.contains("this host speaks"),
            "{err}"
        );
    }

    #[test]
    fn lists_what_a_foreign_component_exports() {
        let s = surface(&["wasi:cli/run@0.2.0"]);
        let err = detect_role(&s, None).unwrap_err();
        assert!(
            err.contains("wasi:cli/run@0.2.0") && err.contains("no Kiln role"),
            "{err}"
        );
    }
}
