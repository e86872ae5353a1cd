//! `cargo xtask release <version>` and `cargo xtask publish [--dry-run]`: version bumps across the
//! published crates, the changelog from conventional commits, the checks, `cargo publish` in
//! dependency order (never a `publish = false` crate) and release binaries with checksums.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::{DepKind, Workspace};

/// The publishable workspace members in an order where every crate comes after the members it
/// depends on (normal and build edges). Fails when a publishable crate depends on a member that
/// is not publishable, or on a cycle.
pub fn publish_order(ws: &Workspace) -> anyhow::Result<Vec<String>> {
    let members: BTreeMap<&str, &crate::workspace::Package> =
        ws.members().map(|p| (p.name.as_str(), p)).collect();
    let publishable: BTreeSet<&str> = members
        .values()
        .filter(|p| p.publishable)
        .map(|p| p.name.as_str())
        .collect();
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for name in &publishable {
        let p = members[name];
        let mut set = BTreeSet::new();
        for (dep, kind) in &p.deps {
            if *kind == DepKind::Dev || !members.contains_key(dep.as_str()) {
                continue;
            }
            if !publishable.contains(dep.as_str()) {
                bail!(
                    "{name} is published but depends on {dep}, which has publish = false; \
                     make {dep} publishable or a dev-dependency"
                );
            }
            set.insert(dep.as_str());
        }
        needs.insert(name, set);
    }
    let mut order: Vec<String> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < needs.len() {
        let ready: Vec<&str> = needs
            .iter()
            .filter(|(n, deps)| !done.contains(*n) && deps.iter().all(|d| done.contains(d)))
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            let left: Vec<&str> = needs
                .keys()
                .filter(|n| !done.contains(*n))
                .copied()
                .collect();
            bail!("dependency cycle among {left:?}");
        }
        for n in ready {
            done.insert(n);
            order.push(n.to_owned());
        }
    }
    Ok(order)
}

/// Refuses crates that must never be published.
pub fn check_publishable(ws: &Workspace, names: &[String]) -> anyhow::Result<()> {
    for n in names {
        match ws.packages.get(n) {
            Some(p) if p.member && p.publishable => {}
            Some(p) if p.member => {
                bail!("{n} has publish = false and is never published")
            }
            _ => bail!("{n} is not a member of this workspace"),
        }
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` part.
pub fn parse_version(v: &str) -> anyhow::Result<(u64, u64, u64)> {
    let core = v.split_once('-').map_or(v, |(c, _)| c);
    let parts: Vec<&str> = core.split('.').collect();
    let num = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|_| !s.is_empty() && (s == "0" || !s.starts_with('0')))
    };
    match parts.as_slice() {
        [a, b, c] => match (num(a), num(b), num(c)) {
            (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
            _ => bail!("{v:?} is not a semantic version (MAJOR.MINOR.PATCH)"),
        },
        _ => bail!("{v:?} is not a semantic version (MAJOR.MINOR.PATCH)"),
    }
}

/// Rewrites the root manifest: `[workspace.package] version` and the `version` of every
/// `kamiyo-*` entry of `[workspace.dependencies]` that has one. Returns the new text.
pub fn bump_manifest(text: &str, version: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    let mut bumped_package = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_owned();
        }
        if section == "[workspace.package]" && t.starts_with("version") && t.contains('=') {
            out.push_str(&format!("version = \"{version}\"\n"));
            bumped_package = true;
            continue;
        }
        if section == "[workspace.dependencies]"
            && t.starts_with("kamiyo-")
            && t.contains("path =")
            && let Some(i) = line.find("version = \"")
        {
            let start = i + "version = \"".len();
            let end = line[start..]
                .find('"')
                .map(|e| start + e)
                .context("unterminated version string")?;
            out.push_str(&line[..start]);
            out.push_str(version);
            out.push_str(&line[end..]);
            continue;
        }
        out.push_str(line);
    }
    if !bumped_package {
        bail!("no version in [workspace.package]");
    }
    Ok(out)
}

/// The changelog section of `version` from commit subjects (newest first). Conventional commits
/// (`type(scope)!: text`) are grouped by type; our `area: text` subjects go under "Changed"
/// with their area; `!` or `BREAKING CHANGE` marks a breaking change.
pub fn changelog_section(version: &str, date: &str, subjects: &[String]) -> String {
    const TYPES: &[(&str, &str)] = &[
        ("feat", "Added"),
        ("fix", "Fixed"),
        ("perf", "Performance"),
        ("refactor", "Changed"),
        ("docs", "Documentation"),
        ("test", "Tests"),
        ("build", "Build"),
        ("ci", "Build"),
        ("chore", "Other"),
    ];
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let order = [
        "Breaking",
        "Added",
        "Changed",
        "Fixed",
        "Performance",
        "Documentation",
        "Tests",
        "Build",
        "Other",
    ];
    let slot = |g: &str| {
        order
            .iter()
            .position(|o| *o == g)
            .unwrap_or(order.len() - 1)
    };
    for s in subjects {
        let s = s.trim();
        if s.is_empty() || s.starts_with("Merge ") || s.starts_with("release: ") {
            continue;
        }
        let (head, text) = match s.split_once(": ") {
            Some((h, t)) if conventional_head(h) => (h, t),
            _ => ("", s),
        };
        let breaking = head.ends_with('!') || s.contains("BREAKING CHANGE");
        let head = head.trim_end_matches('!');
        let (kind, scope) = match head.split_once('(') {
            Some((k, sc)) => (k, sc.trim_end_matches(')')),
            None => (head, ""),
        };
        let (group, scope) = match TYPES.iter().find(|(t, _)| *t == kind) {
            Some((_, g)) => (*g, scope),
            None => ("Changed", head),
        };
        let group = if breaking { "Breaking" } else { group };
        let line = if scope.is_empty() {
            format!("- {text}")
        } else {
            format!("- **{scope}**: {text}")
        };
        groups.entry(slot(group)).or_default().push(line);
    }
    let mut out = format!("## [{version}] - {date}\n");
    for (i, lines) in groups {
        out.push_str(&format!("\n### {}\n\n", order[i]));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// `type`, `type!`, `type(scope)` or `type(scope)!`, without spaces (`area: text` subjects of
/// this repository have the same shape: one word, then a colon).
fn conventional_head(h: &str) -> bool {
    let h = h.trim_end_matches('!');
    let (kind, scope) = match h.split_once('(') {
        Some((k, rest)) => match rest.strip_suffix(')') {
            Some(scope) => (k, scope),
            None => return false,
        },
        None => (h, ""),
    };
    !kind.is_empty() && !kind.contains(' ') && !scope.contains(' ')
}

/// Inserts `section` after the `## [Unreleased]` heading (the unreleased notes move into it).
pub fn insert_changelog(changelog: &str, section: &str) -> String {
    match changelog.find("## [Unreleased]") {
        Some(i) => {
            let after = i + "## [Unreleased]".len();
            let rest = &changelog[after..];
            // Hand-written unreleased notes, up to the next release heading.
            let end = rest.find("\n## [").map_or(rest.len(), |e| e + 1);
            let notes = rest[..end].trim();
            let mut s = String::new();
            s.push_str(&changelog[..after]);
            s.push_str("\n\n");
            s.push_str(section.trim_end());
            if !notes.is_empty() {
                s.push_str("\n\n### Notes\n\n");
                s.push_str(notes);
            }
            s.push_str("\n\n");
            s.push_str(rest[end..].trim_start());
            s.trim_end().to_owned() + "\n"
        }
        None => format!("{}\n\n{section}", changelog.trim_end()),
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn git_out(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The newest `v*` tag reachable from HEAD, if any.
pub fn last_tag(root: &Path) -> Option<String> {
    git_out(root, &["describe", "--tags", "--abbrev=0", "--match", "v*"])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The crates to publish, in dependency order, each checked to be publishable.
pub fn release_order(root: &Path) -> anyhow::Result<Vec<String>> {
    let ws = Workspace::load(root)?;
    let order = publish_order(&ws)?;
    check_publishable(&ws, &order)?;
    Ok(order)
}

/// `cargo publish` for every publishable crate in dependency order, in one invocation so that a
/// dry run verifies each crate against the others' packaged sources.
pub fn publish(root: &Path, dry_run: bool) -> anyhow::Result<Vec<String>> {
    let order = release_order(root)?;
    publish_crates(root, &order, dry_run)?;
    Ok(order)
}

fn publish_crates(root: &Path, order: &[String], dry_run: bool) -> anyhow::Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args(["publish", "--locked"]);
    if dry_run {
        cmd.args(["--dry-run", "--allow-dirty"]);
    }
    for n in order {
        cmd.args(["-p", n]);
    }
    run(&mut cmd)
}

/// Builds the release binary into `dist/` with a SHA-256 checksum file.
pub fn dist(root: &Path, version: &str) -> anyhow::Result<Vec<String>> {
    run(Command::new(cargo()).current_dir(root).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "kamiyo-server",
        "--bin",
        "kamiyo-hyperliquid",
    ]))?;
    let triple = {
        let out = Command::new("rustc")
            .arg("-vV")
            .output()
            .context("rustc -vV")?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .context("rustc -vV names no host")?
    };
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist)?;
    let name = format!("kamiyo-hyperliquid-{version}-{triple}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), Into::into)
        .join("release/kamiyo-hyperliquid");
    std::fs::copy(&target, dist.join(&name))
        .with_context(|| format!("copying {}", target.display()))?;
    let sums = Command::new("sha256sum")
        .arg(&name)
        .current_dir(&dist)
        .output()
        .context("sha256sum")?;
    if !sums.status.success() {
        bail!("sha256sum failed");
    }
    std::fs::write(dist.join("SHA256SUMS"), &sums.stdout)?;
    Ok(vec![name, "SHA256SUMS".into()])
}

/// Runs cargo-semver-checks for the crates of `order` against the last release tag; with no
/// tag yet (the first release) there is nothing to compare and it says so.
pub fn semver_checks(root: &Path, tag: Option<&str>, order: &[String]) -> anyhow::Result<()> {
    let Some(tag) = tag else {
        let _ = writeln!(
            std::io::stderr(),
            "semver-checks: no previous release tag (v*); nothing to compare against"
        );
        return Ok(());
    };
    let installed = Command::new(cargo())
        .args(["semver-checks", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        bail!(
            "cargo-semver-checks is needed to compare with {tag}: cargo install --locked cargo-semver-checks"
        );
    }
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["semver-checks", "--baseline-rev", tag]);
    for n in order {
        cmd.args(["-p", n]);
    }
    run(&mut cmd)
}

/// The whole release: bump, changelog, tidy, tests, export-oss, publish dry run, binaries.
pub fn release(root: &Path, version: &str, date: &str) -> anyhow::Result<()> {
    parse_version(version)?;
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, bump_manifest(&text, version)?)?;
    // Refresh Cargo.lock for the new versions.
    run(Command::new(cargo())
        .current_dir(root)
        .args(["update", "--workspace"]))?;

    let tag = last_tag(root);
    let range = tag
        .as_ref()
        .map_or_else(|| "HEAD".to_owned(), |t| format!("{t}..HEAD"));
    let subjects: Vec<String> = git_out(root, &["log", "--format=%s", &range])?
        .lines()
        .map(str::to_owned)
        .collect();
    let path = root.join("CHANGELOG.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(
        &path,
        insert_changelog(&old, &changelog_section(version, date, &subjects)),
    )?;

    let violations = crate::tidy::run(root)?;
    if !violations.is_empty() {
        bail!("tidy: {violations:?}");
    }
    crate::testcmd::test(root, &[])?;
    let order = release_order(root)?;
    semver_checks(root, tag.as_deref(), &order)?;
    let oss = std::env::temp_dir().join(format!("kamiyo-oss-{version}"));
    let _ = std::fs::remove_dir_all(&oss);
    crate::export::export(root, &oss)?;
    publish_crates(root, &order, true)?;
    dist(root, version)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::workspace::fake::{member, model};

    fn repo_root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn the_real_workspace_publishes_in_dependency_order_without_private_crates() {
        let ws = Workspace::load(&repo_root()).unwrap();
        let order = publish_order(&ws).unwrap();
        let pos = |n: &str| order.iter().position(|o| o == n);
        assert_eq!(
            order.first().map(String::as_str),
            Some("kamiyo-core-models")
        );
        assert_eq!(order.last().map(String::as_str), Some("kamiyo-server"));
        for p in ws.members().filter(|p| p.publishable) {
            for (dep, kind) in &p.deps {
                if *kind != DepKind::Dev && pos(dep).is_some() {
                    assert!(pos(dep) < pos(&p.name), "{dep} must precede {}", p.name);
                }
            }
        }
        let private: Vec<&str> = ws
            .members()
            .filter(|p| !p.publishable)
            .map(|p| p.name.as_str())
            .collect();
        assert!(private.contains(&"kamiyo-simulator") && private.contains(&"xtask"));
        for name in private {
            assert!(pos(name).is_none(), "{name} must never be published");
            let e = check_publishable(&ws, &[name.to_owned()]).unwrap_err();
            assert!(e.to_string().contains("publish = false"), "{e}");
        }
    }

    #[test]
    fn order_and_refusals_on_a_planted_workspace() {
        let ws = model(vec![
            member(
                "c",
                "crates/c",
                true,
                &[("b", DepKind::Normal), ("a", DepKind::Normal)],
            ),
            member(
                "b",
                "crates/b",
                true,
                &[("a", DepKind::Normal), ("t", DepKind::Dev)],
            ),
            member("a", "crates/a", true, &[]),
            member("t", "crates/t", false, &[]),
        ]);
        assert_eq!(publish_order(&ws).unwrap(), ["a", "b", "c"]);
        assert!(check_publishable(&ws, &["t".into()]).is_err());
        assert!(check_publishable(&ws, &["zzz".into()]).is_err());
        // A published crate may not need an unpublished one at run time.
        let bad = model(vec![
            member("a", "crates/a", true, &[("t", DepKind::Normal)]),
            member("t", "crates/t", false, &[]),
        ]);
        let e = publish_order(&bad).unwrap_err().to_string();
        assert!(e.contains("a is published but depends on t"), "{e}");
        let cycle = model(vec![
            member("a", "crates/a", true, &[("b", DepKind::Normal)]),
            member("b", "crates/b", true, &[("a", DepKind::Normal)]),
        ]);
        assert!(
            publish_order(&cycle)
                .unwrap_err()
                .to_string()
                .contains("cycle")
        );
    }

    #[test]
    fn versions_manifest_and_changelog() {
        assert_eq!(parse_version("1.2.3").unwrap(), (1, 2, 3));
        assert_eq!(parse_version("0.2.0-rc.1").unwrap(), (0, 2, 0));
        for bad in ["1.2", "v1.2.3", "01.2.3", "1.2.x", ""] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        let manifest = "[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace.dependencies]\nkamiyo-core-models = { path = \"crates/core-models\", version = \"0.1.0\" }\nkamiyo-testing = { path = \"crates/testing\" }\nserde = { version = \"1.0.228\" }\n";
        let bumped = bump_manifest(manifest, "0.2.0").unwrap();
        assert!(bumped.contains("[workspace.package]\nversion = \"0.2.0\"\n"));
        assert!(bumped.contains(
            "kamiyo-core-models = { path = \"crates/core-models\", version = \"0.2.0\" }"
        ));
        assert!(bumped.contains("kamiyo-testing = { path = \"crates/testing\" }"));
        assert!(
            bumped.contains("serde = { version = \"1.0.228\" }"),
            "third-party versions untouched"
        );
        let real = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
        assert!(
            bump_manifest(&real, "9.9.9")
                .unwrap()
                .contains("version = \"9.9.9\"")
        );

        let subjects: Vec<String> = [
            "feat(api)!: events paginate by cursor only",
            "fix: dedup window keeps the newest fill",
            "alerts: Slack Block Kit messages",
            "perf(aggregators): faster trades decoder",
            "Merge branch 'x'",
            "xtask release (order, refusals): tests",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let section = changelog_section("0.2.0", "2026-12-01", &subjects);
        assert_eq!(
            section,
            "## [0.2.0] - 2026-12-01\n\n### Breaking\n\n- **api**: events paginate by cursor only\n\n### Changed\n\n- **alerts**: Slack Block Kit messages\n- xtask release (order, refusals): tests\n\n### Fixed\n\n- dedup window keeps the newest fill\n\n### Performance\n\n- **aggregators**: faster trades decoder\n"
        );
        let log = insert_changelog(
            "# Changelog\n\n## [Unreleased]\n\nHand note.\n\n## [0.1.0] - 2026-11-01\n\n- first\n",
            &section,
        );
        assert!(log.starts_with("# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-12-01\n"));
        assert!(
            log.contains("### Notes\n\nHand note.\n\n## [0.1.0]"),
            "{log}"
        );
    }
}
