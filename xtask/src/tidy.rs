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
//! 8. Only `store` speaks SQL: no other member depends directly on a SQL crate (test support
//!    excepted).
//! 9. Only the API, the binaries and test support serve HTTP: no other member depends on an
//!    HTTP server crate or enables hyper's server.
//! 10. Only binaries read the environment: library sources (outside `main.rs` and `src/bin/`)
//!     never call `std::env::var*`.
//! 11. No unused dependency: every direct dependency is named in the code that can use it.

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

/// Crates that speak SQL.
pub const SQL_CRATES: &[&str] = &[
    "diesel",
    "diesel-async",
    "diesel_migrations",
    "libsqlite3-sys",
    "tokio-postgres",
    "postgres",
    "sqlx",
    "rusqlite",
];

/// Members that may depend on SQL crates, and why.
pub const SQL_ALLOWED: &[(&str, &str)] = &[
    ("kamiyo-store", "the store"),
    (
        "kamiyo-testing",
        "test support: creates a PostgreSQL database per test",
    ),
    // kamiyo:private-begin
    (
        "kamiyo-platform",
        "the platform's own tables, in its `db` module only (PostgreSQL with row-level security)",
    ),
    // kamiyo:private-end
];

/// Members allowed SQL crates that keep SQL in one source file (the rest of the member must
/// not name them): `(member, file under the member)`.
pub const SQL_MODULES: &[(&str, &str)] = &[
    // (none in the open core)
    // kamiyo:private-begin
    ("kamiyo-platform", "src/db.rs"),
    // kamiyo:private-end
];

/// Crates that serve HTTP (hyper and hyper-util count when their `server` feature is on).
pub const HTTP_SERVER_CRATES: &[&str] = &[
    "actix-web",
    "actix-http",
    "actix-ws",
    "actix-server",
    "axum",
    "warp",
    "poem",
    "rocket",
    "tower-http",
];

/// Members that may serve HTTP, and why.
pub const HTTP_SERVER_ALLOWED: &[(&str, &str)] = &[
    ("kamiyo-api", "everything HTTP-shaped"),
    ("kamiyo-server", "the binary"),
    (
        "kamiyo-simulator",
        "a loopback exchange: a server by nature",
    ),
    ("kamiyo-testing", "test support: loopback receivers"),
    // kamiyo:private-begin
    ("kamiyo-platform", "the platform's binary"),
    // kamiyo:private-end
];

/// Members whose library sources may read the environment, and why.
pub const ENV_ALLOWED: &[(&str, &str)] = &[
    ("kamiyo-server", "the binary crate: it owns configuration"),
    ("kamiyo-testing", "test support: the test database URL"),
    ("xtask", "the developer tool"),
];

/// Dependencies that are used without being named, and why.
pub const UNUSED_OK: &[(&str, &str, &str)] = &[(
    "kamiyo-store",
    "libsqlite3-sys",
    "enables SQLite's bundled build for diesel",
)];

fn allowed(list: &[(&str, &str)], member: &str) -> bool {
    list.iter().any(|(m, _)| *m == member)
}

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

/// Rule 8: SQL crates only under the store (direct dependencies of any kind).
pub fn sql_only_in_store(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in ws.members().filter(|p| !allowed(SQL_ALLOWED, &p.name)) {
        for (d, _) in p
            .deps
            .iter()
            .filter(|(d, _)| SQL_CRATES.contains(&d.as_str()))
        {
            out.push(Violation {
                rule: "sql-only-in-store",
                detail: format!("{} depends on {d}: only kamiyo-store speaks SQL", p.name),
            });
        }
    }
    out
}

/// Rule 9: HTTP servers only in the API, the binaries and test support (normal dependencies;
/// tests may start loopback servers).
pub fn http_servers_only_at_the_edge(ws: &Workspace) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in ws
        .members()
        .filter(|p| !allowed(HTTP_SERVER_ALLOWED, &p.name))
    {
        for d in p.dep_uses.iter().filter(|d| d.kind == DepKind::Normal) {
            let server = HTTP_SERVER_CRATES.contains(&d.package.as_str())
                || (matches!(d.package.as_str(), "hyper" | "hyper-util")
                    && d.features
                        .iter()
                        .any(|f| f == "server" || f.starts_with("server-")));
            if server {
                out.push(Violation {
                    rule: "http-server-at-the-edge",
                    detail: format!(
                        "{} depends on {} as a server: only the API, the binaries and test support serve HTTP",
                        p.name, d.package
                    ),
                });
            }
        }
    }
    out
}

/// Rule 8b: a member listed in `modules` names its SQL crates in that one file only.
pub fn sql_in_one_module(ws: &Workspace, modules: &[(&str, &str)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (member, file) in modules {
        let Some(p) = ws.members().find(|p| p.name == *member) else {
            continue;
        };
        let dir = ws.root.join(&p.rel_dir);
        let mut files = Vec::new();
        collect_rs(&dir.join("src"), &mut files);
        for f in files.iter().filter(|f| **f != dir.join(file)) {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                // A path into the crate (`diesel::…`, `use diesel_async::…`), not the word in
                // prose or a URL scheme.
                let path = |c: &str| format!("{}::", c.replace('-', "_"));
                let named = |c: &&&str| {
                    let p = path(c);
                    line.match_indices(&p).any(|(i, _)| {
                        !line[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|b| b.is_alphanumeric() || b == '_')
                    })
                };
                if let Some(c) = SQL_CRATES.iter().find(named) {
                    out.push(Violation {
                        rule: "sql-in-one-module",
                        detail: format!(
                            "{}:{}: names {c}; in {member} only {file} speaks SQL",
                            f.strip_prefix(&ws.root).unwrap_or(f).display(),
                            i + 1
                        ),
                    });
                }
            }
        }
    }
    out
}

/// Rule 10: library sources never read the environment.
pub fn env_only_in_binaries(ws: &Workspace) -> Vec<Violation> {
    // Built at run time so that this file does not trip its own rule.
    let needles = [
        format!("env::{}(", "var"),
        format!("env::{}(", "var_os"),
        format!("env::{}(", "vars"),
    ];
    let mut out = Vec::new();
    for p in ws.members().filter(|p| !allowed(ENV_ALLOWED, &p.name)) {
        let src = ws.root.join(&p.rel_dir).join("src");
        let mut files = Vec::new();
        collect_rs(&src, &mut files);
        for f in files {
            let rel = f.strip_prefix(&src).unwrap_or(&f);
            if rel == Path::new("main.rs") || rel.starts_with("bin") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                if needles.iter().any(|n| line.contains(n.as_str())) {
                    out.push(Violation {
                        rule: "env-only-in-binaries",
                        detail: format!(
                            "{}:{}: a library reads the environment (binaries pass configuration in)",
                            f.strip_prefix(&ws.root).unwrap_or(&f).display(),
                            i + 1
                        ),
                    });
                }
            }
        }
    }
    out
}

/// Rule 11: every direct dependency is named where it can be used — normal ones in `src/` or
/// `build.rs`, dev ones in any source of the member, build ones in `build.rs`.
pub fn unused_dependencies(ws: &Workspace) -> Vec<Violation> {
    let read_all = |dirs: &[PathBuf]| -> String {
        let mut files = Vec::new();
        for d in dirs {
            if d.is_file() {
                files.push(d.clone());
            } else {
                collect_rs(d, &mut files);
            }
        }
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut out = Vec::new();
    for p in ws.members() {
        let dir = ws.root.join(&p.rel_dir);
        let build = read_all(&[dir.join("build.rs")]);
        let src = read_all(&[dir.join("src"), dir.join("build.rs")]);
        let any = read_all(&[
            dir.join("src"),
            dir.join("tests"),
            dir.join("benches"),
            dir.join("examples"),
            dir.join("build.rs"),
        ]);
        for d in &p.dep_uses {
            if UNUSED_OK
                .iter()
                .any(|(m, dep, _)| *m == p.name && *dep == d.package)
            {
                continue;
            }
            let text = match d.kind {
                DepKind::Normal => &src,
                DepKind::Dev => &any,
                DepKind::Build => &build,
            };
            if !mentions(text, &d.ident) {
                out.push(Violation {
                    rule: "unused-dependency",
                    detail: format!(
                        "{} ({}) never names its {:?} dependency {} (`{}`)",
                        p.name,
                        p.rel_dir.display(),
                        d.kind,
                        d.package,
                        d.ident
                    ),
                });
            }
        }
    }
    out
}

/// True when `ident` appears in `text` as a whole word.
fn mentions(text: &str, ident: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + ident.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// Runs every rule on the workspace at `root`.
pub fn run(root: &Path) -> anyhow::Result<Vec<Violation>> {
    let ws = Workspace::load(root)?;
    let mut v = open_core_isolation(&ws);
    v.extend(core_models_no_io(&ws, "kamiyo-core-models"));
    v.extend(published_docs(&ws));
    v.extend(published_deps_publishable(&ws));
    v.extend(sql_only_in_store(&ws));
    v.extend(sql_in_one_module(&ws, SQL_MODULES));
    v.extend(http_servers_only_at_the_edge(&ws));
    v.extend(env_only_in_binaries(&ws));
    v.extend(unused_dependencies(&ws));
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

    /// Writes `text` to `rel` under `root`, creating directories.
    fn write_file(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

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
    fn catches_sql_outside_a_members_one_sql_module() {
        let dir = tempfile::tempdir().unwrap();
        let mut ws = model(vec![member("kamiyo-private", "private", false, &[])]);
        ws.root = dir.path().to_path_buf();
        write_file(&ws.root, "private/src/db.rs", "use diesel::sql_query;\n");
        write_file(&ws.root, "private/src/web.rs", "//! Web.\nfn f() {}\n");
        let modules = [("kamiyo-private", "src/db.rs")];
        assert!(sql_in_one_module(&ws, &modules).is_empty());
        write_file(
            &ws.root,
            "private/src/web.rs",
            "//! Web.\nfn f<R: diesel::QueryableByName<X>>() {}\n",
        );
        let v = sql_in_one_module(&ws, &modules);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("web.rs:2") && v[0].detail.contains("diesel"));
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
        let write = |p: &str, s: &str| write_file(root, p, s);
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

    #[test]
    fn catches_sql_outside_the_store_and_http_servers_inside_the_core() {
        let mut hyper_server = member(
            "kamiyo-monitors",
            "crates/monitors",
            true,
            &[("hyper", DepKind::Normal)],
        );
        hyper_server.dep_uses[0].features = vec!["server".into()];
        let ws = model(vec![
            member(
                "kamiyo-store",
                "crates/store",
                true,
                &[("diesel", DepKind::Normal)],
            ),
            member(
                "kamiyo-api",
                "crates/api",
                true,
                &[
                    ("actix-web", DepKind::Normal),
                    ("diesel-async", DepKind::Dev),
                ],
            ),
            member(
                "kamiyo-aggregators",
                "crates/aggregators",
                true,
                &[("hyper", DepKind::Normal), ("axum", DepKind::Dev)],
            ),
            hyper_server,
            member(
                "kamiyo-alerts",
                "crates/alerts",
                true,
                &[("actix-web", DepKind::Normal)],
            ),
        ]);
        let sql = sql_only_in_store(&ws);
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(
            sql[0]
                .detail
                .starts_with("kamiyo-api depends on diesel-async")
        );
        let http = http_servers_only_at_the_edge(&ws);
        let who: BTreeSet<&str> = http
            .iter()
            .map(|v| v.detail.split(' ').next().unwrap())
            .collect();
        // hyper as a client and a server crate among dev-dependencies are fine.
        assert_eq!(
            who,
            BTreeSet::from(["kamiyo-alerts", "kamiyo-monitors"]),
            "{http:?}"
        );
    }

    #[test]
    fn catches_a_library_reading_the_environment_and_an_unused_dependency() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |p: &str, s: &str| write_file(root, p, s);
        let env_call = format!("std::env::{}(\"X\")", "var");
        write(
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"crates/lib\", \"crates/util\", \"crates/extra\", \"crates/bin\"]\n",
        );
        write(
            "crates/lib/Cargo.toml",
            "[package]\nname = \"lib\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n[dependencies]\nutil = { path = \"../util\" }\n[dev-dependencies]\nrenamed = { package = \"extra\", path = \"../extra\" }\n",
        );
        write(
            "crates/lib/src/lib.rs",
            &format!("//! Lib.\npub fn f() -> bool {{ {env_call}.is_ok() }}\n"),
        );
        write("crates/lib/tests/t.rs", "//! T.\nuse renamed as _;\n");
        write(
            "crates/util/Cargo.toml",
            "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n",
        );
        write("crates/util/src/lib.rs", "//! Util.\n");
        write(
            "crates/extra/Cargo.toml",
            "[package]\nname = \"extra\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n",
        );
        write("crates/extra/src/lib.rs", "//! Extra.\n");
        write(
            "crates/bin/Cargo.toml",
            "[package]\nname = \"bin\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n[dependencies]\nutil = { path = \"../util\" }\n",
        );
        write(
            "crates/bin/src/main.rs",
            &format!("//! Bin.\nuse util as _;\nfn main() {{ let _ = {env_call}; }}\n"),
        );
        let ws = Workspace::load(root).unwrap();
        let env = env_only_in_binaries(&ws);
        assert_eq!(env.len(), 1, "{env:?}");
        assert!(env[0].detail.contains("crates/lib/src/lib.rs:2"), "{env:?}");
        let unused = unused_dependencies(&ws);
        assert_eq!(unused.len(), 1, "{unused:?}");
        assert!(
            unused[0]
                .detail
                .contains("lib (crates/lib) never names its Normal dependency util"),
            "{unused:?}"
        );
        assert!(mentions("use util::x;", "util") && !mentions("use utility;", "util"));
    }
}
