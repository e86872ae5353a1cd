//! `cargo xtask tidy`: the architecture invariants of ARCHITECTURE.md, checked by code.
//!
//! 1. Nothing in the open core (`crates/`, `examples/`) depends on a workspace member outside
//!    it (the proprietary tree, xtask).
//! 2. `kamiyo-core-models` has no I/O crate in its normal dependency closure.
//! 3. Every published crate is documented: a README that is its crate doc, `missing_docs` on.
//! 4. A published crate depends only on published crates (else `cargo publish` fails).
//! 5. Source hygiene: every `.rs` file starts with `//!`; no should-panic or ignored tests.
//! 6. Generated files are up to date (checked by the tests that generate them; see
//!    `deploy/config/default.toml`).
//! 7. Ground truth is frozen: scenario truth and inputs change only in commits of their own,
//!    explained in the scenario's `NOTES.md` (`crate::frozen`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::workspace::{DepKind, Workspace};

/// Crates that mean I/O: runtimes, sockets, HTTP, databases, TLS, log sinks.
pub const FORBIDDEN_IN_CORE_MODELS: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "diesel",
    "diesel-async",
    "diesel_migrations",
    "libsqlite3-sys",
    "tokio-postgres",
    "postgres",
    "actix-web",
    "actix-http",
    "actix-rt",
    "actix-ws",
    "reqwest",
    "hyper",
    "hyper-util",
    "h2",
    "fastwebsockets",
    "rustls",
    "tokio-rustls",
    "tracing-subscriber",
    "lettre",
    "opentelemetry_sdk",
    "async-stripe",
];

/// Directories whose members form the open core.
pub const OPEN_CORE_DIRS: &[&str] = &["crates/", "examples/"];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Rule name.
    pub rule: &'static str,
    /// What is wrong, naming the file or crate.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.rule, self.detail)
    }
}

fn in_open_core(rel: &Path) -> bool {
    let s = rel.to_string_lossy().replace('\\', "/") + "/";
    OPEN_CORE_DIRS.iter().any(|d| s.starts_with(d))
}

/// Rule 1: the open core never reaches a member outside it (direct or transitive, any kind).
pub fn open_core_isolation(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in ws.members().filter(|p| in_open_core(&p.rel_dir)) {
        for (dep, kind) in &p.deps {
            let Some(target) = ws.packages.get(dep).filter(|t| t.member) else {
                continue;
            };
            if !in_open_core(&target.rel_dir) {
                out.push(Violation {
                    rule: "open-core-isolation",
                    detail: format!(
                        "{} ({}) has a {:?} dependency on {} ({}), which is outside the open core",
                        p.name,
                        p.rel_dir.display(),
                        kind,
                        target.name,
                        target.rel_dir.display()
                    ),
                });
            }
        }
        for dep in ws.normal_closure(&p.name) {
            let outside = ws
                .packages
                .get(&dep)
                .filter(|t| t.member && !in_open_core(&t.rel_dir));
            if let Some(target) = outside
                && !p.deps.iter().any(|(d, _)| d == &target.name)
            {
                out.push(Violation {
                    rule: "open-core-isolation",
                    detail: format!("{} reaches {} transitively", p.name, target.name),
                });
            }
        }
    }
    out
}

/// Rule 2: no I/O crate in core-models' normal closure.
pub fn core_models_no_io(ws: &Workspace, core: &str) -> Vec<Violation> {
    let closure = ws.normal_closure(core);
    FORBIDDEN_IN_CORE_MODELS
        .iter()
        .filter(|f| closure.contains(**f))
        .map(|f| Violation {
            rule: "core-models-no-io",
            detail: format!("{core} depends (normal, possibly transitively) on the I/O crate {f}"),
        })
        .collect()
}

/// Rule 3: published crates carry docs.
pub fn published_docs(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in ws.members().filter(|p| p.publishable) {
        let dir = ws.root.join(&p.rel_dir);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
        if readme.lines().filter(|l| !l.trim().is_empty()).count() < 3 {
            out.push(Violation {
                rule: "published-docs",
                detail: format!("{}: README.md is missing or shorter than 3 lines", p.name),
            });
        }
        let lib = dir.join("src/lib.rs");
        if let Ok(src) = std::fs::read_to_string(&lib) {
            for needle in [
                "#![doc = include_str!(\"../README.md\")]",
                "#![warn(missing_docs)]",
            ] {
                if !src.contains(needle) {
                    out.push(Violation {
                        rule: "published-docs",
                        detail: format!("{}: {} lacks `{needle}`", p.name, lib.display()),
                    });
                }
            }
        }
    }
    out
}

/// Rule 4: published crates depend only on published members.
pub fn published_deps_publishable(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in ws.members().filter(|p| p.publishable) {
        for (dep, kind) in p.deps.iter().filter(|(_, k)| *k != DepKind::Dev) {
            if let Some(t) = ws.packages.get(dep).filter(|t| t.member && !t.publishable) {
                out.push(Violation {
                    rule: "published-deps",
                    detail: format!(
                        "published {} has a {kind:?} dependency on unpublished {}",
                        p.name, t.name
                    ),
                });
            }
        }
    }
    out
}

/// Rule 5: source hygiene of every `.rs` file under `dirs`.
pub fn source_hygiene(root: &Path, dirs: &[PathBuf]) -> Vec<Violation> {
    // Built at run time so that this file does not trip its own rule.
    let banned = [
        format!("#[{}", "should_panic"),
        format!("#[{}]", "ignore"),
        format!("#[{}(", "ignore"),
    ];
    let mut out = Vec::new();
    let mut files = Vec::new();
    for d in dirs {
        collect_rs(&root.join(d), &mut files);
    }
    files.sort();
    for f in files {
        let Ok(src) = std::fs::read_to_string(&f) else {
            continue;
        };
        let rel = f.strip_prefix(root).unwrap_or(&f).display().to_string();
        if !src.trim_start_matches('\u{feff}').starts_with("//!") {
            out.push(Violation {
                rule: "module-doc",
                detail: format!("{rel} does not start with a `//!` module doc"),
            });
        }
        for (i, line) in src.lines().enumerate() {
            if banned
                .iter()
                .any(|b| line.trim_start().starts_with(b.as_str()))
            {
                out.push(Violation {
                    rule: "test-hygiene",
                    detail: format!("{rel}:{}: should-panic/ignored tests are not allowed; assert the error instead", i + 1),
                });
            }
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                collect_rs(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// Runs every rule on the workspace at `root`.
pub fn run(root: &Path) -> anyhow::Result<Vec<Violation>> {
    let ws = Workspace::load(root)?;
    let mut v = open_core_isolation(&ws);
    v.extend(core_models_no_io(&ws, "kamiyo-core-models"));
    v.extend(published_docs(&ws));
    v.extend(published_deps_publishable(&ws));
    let dirs: Vec<PathBuf> = ws.members().map(|p| p.rel_dir.clone()).collect();
    v.extend(source_hygiene(&ws.root, &dirs));
    v.extend(crate::frozen::check(&crate::frozen::read(&ws.root)?));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::fake::{member, model};
    use std::collections::BTreeSet;

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn the_real_workspace_is_tidy() {
        let v = run(&repo_root()).unwrap();
        assert!(
            v.is_empty(),
            "tidy violations:\n{}",
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn catches_open_core_depending_on_the_private_tree() {
        let ws = model(vec![
            member("kamiyo-core-models", "crates/core-models", true, &[]),
            member(
                "kamiyo-api",
                "crates/api",
                true,
                &[
                    ("kamiyo-core-models", DepKind::Normal),
                    ("kamiyo-private", DepKind::Dev),
                ],
            ),
            member(
                "kamiyo-private",
                "platform",
                false,
                &[("kamiyo-core-models", DepKind::Normal)],
            ),
        ]);
        let v = open_core_isolation(&ws);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("kamiyo-api") && v[0].detail.contains("kamiyo-private"));
        // The reverse direction is allowed.
        let ok = model(vec![
            member("kamiyo-core-models", "crates/core-models", true, &[]),
            member(
                "kamiyo-private",
                "platform",
                false,
                &[("kamiyo-core-models", DepKind::Normal)],
            ),
        ]);
        assert!(open_core_isolation(&ok).is_empty());
    }

    #[test]
    fn catches_transitive_io_in_core_models() {
        let mut ws = model(vec![member(
            "kamiyo-core-models",
            "crates/core-models",
            true,
            &[("helper", DepKind::Normal), ("tokio", DepKind::Dev)],
        )]);
        ws.resolved.insert(
            "helper".into(),
            BTreeSet::from([("reqwest".into(), DepKind::Normal)]),
        );
        let v = core_models_no_io(&ws, "kamiyo-core-models");
        assert_eq!(
            v.len(),
            1,
            "dev-dependency tokio is fine, transitive reqwest is not: {v:?}"
        );
        assert!(v[0].detail.contains("reqwest"));
    }

    #[test]
    fn catches_published_crate_depending_on_unpublished() {
        let ws = model(vec![
            member(
                "kamiyo-server",
                "crates/server",
                true,
                &[("kamiyo-testing", DepKind::Normal)],
            ),
            member("kamiyo-testing", "crates/testing", false, &[]),
        ]);
        assert_eq!(published_deps_publishable(&ws).len(), 1);
        let dev_only = model(vec![
            member(
                "kamiyo-server",
                "crates/server",
                true,
                &[("kamiyo-testing", DepKind::Dev)],
            ),
            member("kamiyo-testing", "crates/testing", false, &[]),
        ]);
        assert!(published_deps_publishable(&dev_only).is_empty());
    }

    #[test]
    fn catches_undocumented_published_crate_and_bad_sources() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("crates/bad/src");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("lib.rs"), "pub fn f() {}\n").unwrap();
        let tests = format!("//! Tests.\n#[test]\n#[{}]\nfn t() {{}}\n", "ignore");
        std::fs::write(c.join("t.rs"), tests).unwrap();
        let mut ws = model(vec![member("bad", "crates/bad", true, &[])]);
        ws.root = dir.path().to_path_buf();
        let docs = published_docs(&ws);
        assert!(docs.iter().any(|v| v.detail.contains("README")), "{docs:?}");
        assert!(
            docs.iter().any(|v| v.detail.contains("missing_docs")),
            "{docs:?}"
        );
        let hyg = source_hygiene(dir.path(), &[PathBuf::from("crates/bad")]);
        assert!(
            hyg.iter()
                .any(|v| v.rule == "module-doc" && v.detail.contains("lib.rs")),
            "{hyg:?}"
        );
        assert!(
            hyg.iter()
                .any(|v| v.rule == "test-hygiene" && v.detail.contains("t.rs:3")),
            "{hyg:?}"
        );
    }

    #[test]
    fn catches_a_planted_violation_in_a_real_cargo_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"crates/core\", \"private\"]\n",
        );
        write(
            "crates/core/Cargo.toml",
            "[package]\nname = \"core\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n[dependencies]\nprivate = { path = \"../../private\" }\n",
        );
        write("crates/core/src/lib.rs", "//! Core.\n");
        write(
            "private/Cargo.toml",
            "[package]\nname = \"private\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n",
        );
        write("private/src/lib.rs", "//! Private.\n");
        let ws = Workspace::load(root).unwrap();
        let v = open_core_isolation(&ws);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("core (crates/core)") && v[0].detail.contains("private"));
    }
}
