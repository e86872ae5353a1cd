//! A small model of the workspace built from `cargo metadata`, so the tidy rules can run on the
//! real workspace and, in tests, on hand-built workspaces with planted violations.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// Kind of a dependency edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DepKind {
    /// `[dependencies]`
    Normal,
    /// `[dev-dependencies]`
    Dev,
    /// `[build-dependencies]`
    Build,
}

/// A package of the workspace (a member) or of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Directory of its manifest, relative to the workspace root (empty for registry packages).
    pub rel_dir: PathBuf,
    /// True for workspace members.
    pub member: bool,
    /// False when `publish = false`.
    pub publishable: bool,
    /// Direct dependencies of the manifest: (name, kind).
    pub deps: Vec<(String, DepKind)>,
    /// The same dependencies with what the code calls them (the rename, else the library
    /// name) and the features enabled on them.
    pub dep_uses: Vec<DepUse>,
}

/// A direct dependency as the code sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepUse {
    /// Package name.
    pub package: String,
    /// The identifier in code (`async_trait`, a rename …); resolved by [`Workspace::load`].
    pub ident: String,
    /// Kind.
    pub kind: DepKind,
    /// Features enabled by this manifest.
    pub features: Vec<String>,
}

/// The workspace and its resolved graph.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// Root directory.
    pub root: PathBuf,
    /// Packages by name (workspace members and everything resolved).
    pub packages: BTreeMap<String, Package>,
    /// Resolved edges: package → set of (dependency name, kind).
    pub resolved: BTreeMap<String, BTreeSet<(String, DepKind)>>,
    /// Library target names (`rust_decimal` for `rust_decimal`, `async_trait` for `async-trait`).
    pub lib_names: BTreeMap<String, String>,
}

impl Workspace {
    /// Runs `cargo metadata` in `root` and builds the model.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1"])
            .current_dir(root)
            .output()
            .context("running cargo metadata")?;
        if !out.status.success() {
            bail!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
        Self::from_metadata(&v)
    }

    /// Builds the model from `cargo metadata` JSON.
    pub fn from_metadata(v: &Value) -> anyhow::Result<Self> {
        let root = PathBuf::from(v["workspace_root"].as_str().context("workspace_root")?);
        let members: BTreeSet<&str> = v["workspace_members"]
            .as_array()
            .context("workspace_members")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut id_to_name = BTreeMap::new();
        let mut ws = Workspace {
            root: root.clone(),
            ..Default::default()
        };
        for p in v["packages"].as_array().context("packages")? {
            let id = p["id"].as_str().context("id")?;
            let name = p["name"].as_str().context("name")?.to_owned();
            id_to_name.insert(id.to_owned(), name.clone());
            let manifest = PathBuf::from(p["manifest_path"].as_str().context("manifest_path")?);
            let member = members.contains(id);
            let rel_dir = if member {
                manifest
                    .parent()
                    .and_then(|d| d.strip_prefix(&root).ok())
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            } else {
                PathBuf::new()
            };
            let publishable = !matches!(&p["publish"], Value::Array(a) if a.is_empty());
            let deps = p["dependencies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| {
                            let n = d["name"].as_str()?.to_owned();
                            Some((n, kind_of(&d["kind"])))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let dep_uses = p["dependencies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| {
                            let package = d["name"].as_str()?.to_owned();
                            Some(DepUse {
                                ident: d["rename"].as_str().unwrap_or(&package).replace('-', "_"),
                                package,
                                kind: kind_of(&d["kind"]),
                                features: d["features"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|f| f.as_str().map(str::to_owned))
                                    .collect(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(lib) = p["targets"].as_array().into_iter().flatten().find(|t| {
                t["kind"].as_array().into_iter().flatten().any(|k| {
                    matches!(
                        k.as_str(),
                        Some("lib" | "rlib" | "proc-macro" | "dylib" | "cdylib")
                    )
                })
            }) && let Some(n) = lib["name"].as_str()
            {
                ws.lib_names
                    .entry(name.clone())
                    .or_insert_with(|| n.replace('-', "_"));
            }
            // Several versions of one crate may coexist; the model keys by name, which is
            // enough for the rules (they ask "is X anywhere in the closure").
            ws.packages.entry(name.clone()).or_insert(Package {
                name,
                rel_dir,
                member,
                publishable,
                deps,
                dep_uses,
            });
        }
        if let Some(nodes) = v["resolve"]["nodes"].as_array() {
            for n in nodes {
                let Some(name) = n["id"].as_str().and_then(|id| id_to_name.get(id)) else {
                    continue;
                };
                let edges = ws.resolved.entry(name.clone()).or_default();
                for d in n["deps"].as_array().into_iter().flatten() {
                    let Some(dep) = d["pkg"].as_str().and_then(|id| id_to_name.get(id)) else {
                        continue;
                    };
                    for k in d["dep_kinds"].as_array().into_iter().flatten() {
                        edges.insert((dep.clone(), kind_of(&k["kind"])));
                    }
                }
            }
        }
        // What code calls an unrenamed dependency: its library target's name.
        let libs = ws.lib_names.clone();
        for p in ws.packages.values_mut() {
            for d in &mut p.dep_uses {
                if d.ident == d.package.replace('-', "_")
                    && let Some(l) = libs.get(&d.package)
                {
                    d.ident.clone_from(l);
                }
            }
        }
        Ok(ws)
    }

    /// Workspace members.
    pub fn members(&self) -> impl Iterator<Item = &Package> {
        self.packages.values().filter(|p| p.member)
    }

    /// Every package reachable from `name` through normal (non-dev, non-build) edges.
    pub fn normal_closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([name.to_owned()]);
        while let Some(n) = queue.pop_front() {
            for (dep, kind) in self.resolved.get(&n).into_iter().flatten() {
                if *kind == DepKind::Normal && seen.insert(dep.clone()) {
                    queue.push_back(dep.clone());
                }
            }
        }
        seen
    }
}

fn kind_of(v: &Value) -> DepKind {
    match v.as_str() {
        Some("dev") => DepKind::Dev,
        Some("build") => DepKind::Build,
        _ => DepKind::Normal,
    }
}

/// Hand-built workspaces for the tests of the rules.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::BTreeSet;

    use super::{DepKind, Package, Workspace};

    /// A workspace member.
    pub(crate) fn member(
        name: &str,
        dir: &str,
        publishable: bool,
        deps: &[(&str, DepKind)],
    ) -> Package {
        Package {
            name: name.into(),
            rel_dir: dir.into(),
            member: true,
            publishable,
            deps: deps.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect(),
            dep_uses: deps
                .iter()
                .map(|(n, k)| super::DepUse {
                    package: (*n).to_owned(),
                    ident: n.replace('-', "_"),
                    kind: *k,
                    features: Vec::new(),
                })
                .collect(),
        }
    }

    /// A workspace of `pkgs` whose resolved graph is their direct dependencies.
    pub(crate) fn model(pkgs: Vec<Package>) -> Workspace {
        let mut ws = Workspace::default();
        for p in pkgs {
            let edges: BTreeSet<_> = p.deps.iter().cloned().collect();
            ws.resolved.insert(p.name.clone(), edges);
            ws.packages.insert(p.name.clone(), p);
        }
        ws
    }
}
