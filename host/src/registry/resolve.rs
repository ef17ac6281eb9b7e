//! Version resolution with Cargo's rules, on top of the `semver` crate's matching:
//! `^1.2`, `~1.2.3`, `=1.2.3`, comparison ranges and `*`; a pre-release matches only a
//! requirement that names a pre-release of the same `major.minor.patch`; a yanked
//! version is skipped unless the requirement pins it exactly with `=`.

use semver::{Op, Version, VersionReq};

/// A candidate version and whether it is yanked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: Version,
    pub yanked: bool,
}

/// Whether `req` pins exactly one version (`=1.2.3`, with every part given).
pub fn is_exact_pin(req: &VersionReq) -> bool {
    matches!(
        req.comparators.as_slice(),
        [c] if c.op == Op::Exact && c.minor.is_some() && c.patch.is_some()
    )
}

/// The highest candidate `req` accepts, or `None`.
pub fn resolve<'a>(
    req: &VersionReq,
    candidates: impl IntoIterator<Item = &'a Candidate>,
) -> Option<&'a Candidate> {
    let pinned = is_exact_pin(req);
    candidates
        .into_iter()
        .filter(|c| (!c.yanked || pinned) && req.matches(&c.version))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Splits `name@req` (the requirement defaults to `*`).
pub fn parse_spec(spec: &str) -> Result<(&str, VersionReq), String> {
    let (name, req) = match spec.split_once('@') {
        Some((name, req)) => (name, req),
        None => (spec, "*"),
    };
    if name.is_empty() {
        return Err(format!("`{spec}` has no plugin name"));
    }
    let req =
        VersionReq::parse(req).map_err(|e| format!("`{req}` is not a version requirement: {e}"))?;
    Ok((name, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(list: &[(&str, bool)]) -> Vec<Candidate> {
        list.iter()
            .map(|(v, yanked)| Candidate {
                version: Version::parse(v).unwrap(),
                yanked: *yanked,
            })
            .collect()
    }

    fn pick(req: &str, list: &[Candidate]) -> Option<String> {
        resolve(&VersionReq::parse(req).unwrap(), list).map(|c| c.version.to_string())
    }

    #[test]
    fn resolution_table() {
        let list = cands(&[
            ("0.1.0", false),
            ("0.1.5", false),
            ("0.2.0", false),
            ("1.0.0", false),
            ("1.2.0", false),
            ("1.2.7", false),
            ("1.3.0", true),
            ("1.4.0-beta.1", false),
            ("2.0.0-rc.1", false),
            ("2.0.0", false),
        ]);
        let table: &[(&str, Option<&str>)] = &[
            ("*", Some("2.0.0")),
            ("^1", Some("1.2.7")), // 1.3.0 is yanked, 1.4.0-beta.1 is a pre-release
            ("^1.2", Some("1.2.7")),
            ("~1.2.3", Some("1.2.7")),
            ("~1.2", Some("1.2.7")),
            ("=1.2.0", Some("1.2.0")),
            ("=1.3.0", Some("1.3.0")), // a yanked version pinned exactly
            ("^1.3", None),            // only the yanked 1.3.0 matches
            (">=1.0.0, <1.2.0", Some("1.0.0")),
            ("^0.1", Some("0.1.5")), // caret on 0.x stays within the minor
            ("^0.2", Some("0.2.0")),
            ("^1.4.0-beta.1", Some("1.4.0-beta.1")), // a pre-release when asked for
            (">=1.4.0-alpha, <1.5", Some("1.4.0-beta.1")),
            ("^2.0.0-rc.0", Some("2.0.0")), // the release beats its pre-release
            ("^3", None),
        ];
        for (req, want) in table {
            assert_eq!(pick(req, &list).as_deref(), *want, "requirement {req}");
        }
    }

    #[test]
    fn exact_pins_are_recognised() {
        assert!(is_exact_pin(&VersionReq::parse("=1.2.3").unwrap()));
        assert!(!is_exact_pin(&VersionReq::parse("=1.2").unwrap()));
        assert!(!is_exact_pin(&VersionReq::parse("^1.2.3").unwrap()));
        assert!(!is_exact_pin(
            &VersionReq::parse(">=1.2.3, <=1.2.3").unwrap()
        ));
    }

    #[test]
    fn specs_parse() {
        assert_eq!(parse_spec("csv-reader").unwrap().1, VersionReq::STAR);
        assert_eq!(parse_spec("csv-reader@^1.2").unwrap().0, "csv-reader");
        assert!(parse_spec("@1").is_err());
        assert!(parse_spec("x@not a req").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn version() -> impl Strategy<Value = Version> {
            (0u64..4, 0u64..4, 0u64..4, prop::option::of(0u64..3)).prop_map(|(a, b, c, pre)| {
                let mut v = Version::new(a, b, c);
                if let Some(p) = pre {
                    v.pre = semver::Prerelease::new(&format!("rc.{p}")).unwrap();
                }
                v
            })
        }

        fn requirement() -> impl Strategy<Value = VersionReq> {
            (
                prop::sample::select(vec!["^", "~", "=", ">=", "<", "*"]),
                version(),
            )
                .prop_map(|(op, v)| {
                    if op == "*" {
                        VersionReq::STAR
                    } else {
                        VersionReq::parse(&format!("{op}{v}")).unwrap()
                    }
                })
        }

        proptest! {
            /// Resolution picks exactly the highest version the semver crate itself
            /// accepts, skipping yanked versions unless the requirement pins one exactly.
            #[test]
            fn agrees_with_semver_matching(
                versions in prop::collection::vec((version(), any::<bool>()), 0..12),
                req in requirement(),
            ) {
                let list: Vec<Candidate> = versions.into_iter().map(|(version, yanked)| Candidate { version, yanked }).collect();
                let got = resolve(&req, &list).map(|c| c.version.clone());
                let exact = is_exact_pin(&req);
                let want = list
                    .iter()
                    .filter(|c| req.matches(&c.version) && (!c.yanked || exact))
                    .map(|c| c.version.clone())
                    .max();
                prop_assert_eq!(got.clone(), want);
                if let Some(v) = got {
                    // Never a pre-release the requirement did not ask for.
                    if !v.pre.is_empty() {
                        prop_assert!(req.comparators.iter().any(|c| !c.pre.is_empty()));
                    }
                }
            }
        }
    }
}
