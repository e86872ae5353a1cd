//! `cargo xtask export-oss <dir>`: writes the open-source tree.
//!
//! - Paths listed in `.oss-exclude` are dropped (the proprietary tree, the list itself).
//! - In every text file, the lines from one containing the [`BEGIN`] marker to one containing
//!   the [`END`] marker (inclusive) are removed, so shared files (the workspace manifest, the CI
//!   script, docs) lose their private parts. (The markers are spelled with `concat!` here so
//!   that this file does not mark itself.)
//! - `Cargo.lock` loses the entries of excluded workspace members.
//! - The result is scanned for the forbidden tokens of `.oss-exclude`; any hit fails the export.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Marker opening a private region.
pub const BEGIN: &str = concat!("kamiyo:", "private-begin");
/// Marker closing a private region.
pub const END: &str = concat!("kamiyo:", "private-end");

/// The parsed `.oss-exclude`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeList {
    /// Path prefixes to drop.
    pub paths: Vec<String>,
    /// Tokens that must not appear in the export.
    pub tokens: Vec<String>,
}

impl ExcludeList {
    /// Parses the file format (comments `#`, tokens `!token`, else path prefixes).
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            match line.strip_prefix('!') {
                Some(tok) => list.tokens.push(tok.to_owned()),
                None => list.paths.push(line.to_owned()),
            }
        }
        list
    }

    fn excluded(&self, rel: &str) -> bool {
        self.paths
            .iter()
            .any(|p| rel == p.trim_end_matches('/') || rel.starts_with(p.as_str()))
    }
}

/// Removes private regions. Fails on an unbalanced marker, naming the line.
pub fn strip_private(text: &str, file: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut inside: Option<usize> = None;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.contains(BEGIN) {
            if inside.is_some() {
                bail!("{file}:{}: nested {BEGIN}", i + 1);
            }
            inside = Some(i + 1);
        } else if line.contains(END) {
            if inside.take().is_none() {
                bail!("{file}:{}: {END} without {BEGIN}", i + 1);
            }
        } else if inside.is_none() {
            out.push_str(line);
        }
    }
    if let Some(l) = inside {
        bail!("{file}:{l}: {BEGIN} is never closed");
    }
    Ok(out)
}

/// Removes `[[package]]` entries named in `names` from a Cargo.lock.
pub fn strip_lock_packages(lock: &str, names: &[String]) -> String {
    let mut out = String::with_capacity(lock.len());
    for (i, block) in lock.split("\n[[package]]\n").enumerate() {
        let named = block
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"'));
        if i > 0 && named.is_some_and(|n| names.iter().any(|x| x == n)) {
            continue;
        }
        if i > 0 {
            out.push_str("\n[[package]]\n");
        }
        out.push_str(block);
    }
    out
}

fn git_files(root: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    if !out.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .filter(|f| root.join(f).is_file())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let pkg = text.split("[package]").nth(1)?;
    pkg.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("name")?
            .trim_start()
            .strip_prefix('=')?
            .trim()
            .trim_matches('"')
            .to_owned()
            .into()
    })
}

/// Exports the open-source tree of `root` into `dest` (which must not exist or be empty).
pub fn export(root: &Path, dest: &Path) -> anyhow::Result<usize> {
    // An exported tree has no exclude list; exporting it again only strips markers.
    let list =
        ExcludeList::parse(&std::fs::read_to_string(root.join(".oss-exclude")).unwrap_or_default());
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!("{} exists and is not empty", dest.display());
    }
    let excluded_pkgs: Vec<String> = list
        .paths
        .iter()
        .filter_map(|p| package_name(&root.join(p).join("Cargo.toml")))
        .collect();
    let mut written = 0;
    for rel in git_files(root)? {
        if list.excluded(&rel) {
            continue;
        }
        let src = root.join(&rel);
        let dst = dest.join(&rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let bytes = std::fs::read(&src)?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                let mut text = strip_private(&text, &rel)?;
                if rel == "Cargo.lock" {
                    text = strip_lock_packages(&text, &excluded_pkgs);
                }
                std::fs::write(&dst, text)?;
            }
            Err(e) => std::fs::write(&dst, e.into_bytes())?,
        }
        let perms = std::fs::metadata(&src)?.permissions();
        std::fs::set_permissions(&dst, perms)?;
        written += 1;
    }
    let hits = scan_tokens(dest, &list.tokens)?;
    if !hits.is_empty() {
        bail!(
            "the export still mentions private parts:\n{}",
            hits.join("\n")
        );
    }
    Ok(written)
}

/// Lists `file:line: token` for every forbidden token found under `dir`.
pub fn scan_tokens(dir: &Path, tokens: &[String]) -> anyhow::Result<Vec<String>> {
    let mut hits = Vec::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if e.file_name() != "target" && e.file_name() != ".git" {
                    stack.push(p);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                for t in tokens.iter().filter(|t| line.contains(t.as_str())) {
                    let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                    hits.push(format!("{rel}:{}: {t}", i + 1));
                }
            }
        }
    }
    hits.sort();
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_marked_regions_and_rejects_unbalanced_markers() {
        let text = format!("a\n# {BEGIN}\nsecret\n# {END}\nb\n");
        assert_eq!(strip_private(&text, "f").unwrap(), "a\nb\n");
        assert!(
            strip_private(&format!("# {BEGIN}\n"), "f")
                .unwrap_err()
                .to_string()
                .contains("never closed")
        );
        assert!(strip_private(&format!("# {END}\n"), "f").is_err());
    }

    #[test]
    fn strips_lock_entries() {
        let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1\"\n\n[[package]]\nname = \"secret\"\nversion = \"1\"\n\n[[package]]\nname = \"b\"\nversion = \"1\"\n";
        let out = strip_lock_packages(lock, &["secret".into()]);
        assert!(
            out.contains("name = \"a\"") && out.contains("name = \"b\"") && !out.contains("secret")
        );
    }

    #[test]
    fn parses_the_exclude_list() {
        let l = ExcludeList::parse("# c\nprivate/\n!tok\n");
        assert_eq!(l.paths, ["private/"]);
        assert_eq!(l.tokens, ["tok"]);
        assert!(
            l.excluded("private/src/lib.rs") && l.excluded("private") && !l.excluded("privateer")
        );
    }

    #[test]
    fn exports_the_real_tree_without_private_parts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("oss");
        let n = export(root, &dest).unwrap();
        assert!(n > 10);
        assert!(dest.join("Cargo.toml").is_file());
        assert!(dest.join("LICENSE").is_file());
        assert!(!dest.join(".oss-exclude").exists());
        // What a contributor needs is there.
        for want in [
            "README.md",
            "CONTRIBUTING.md",
            "ARCHITECTURE.md",
            "CHANGELOG.md",
            ".ci/run",
            ".ci/schemathesis.sh",
            "docs/EXTENDING.md",
            "docs/SELF_HOSTING.md",
            "deploy/Dockerfile",
            "examples/README.md",
            "examples/custom-venue/Cargo.toml",
            "examples/file-notifier/Cargo.toml",
            "examples/replay-incidents/Cargo.toml",
            "examples/two-protocols/Cargo.toml",
            "crates/pipeline/Cargo.toml",
        ] {
            assert!(dest.join(want).exists(), "{want} missing from the export");
        }
        let manifest = std::fs::read_to_string(dest.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("\"examples/custom-venue\""));
        let list = ExcludeList::parse(
            &std::fs::read_to_string(root.join(".oss-exclude")).unwrap_or_default(),
        );
        for p in &list.paths {
            assert!(!dest.join(p).exists(), "{p} was exported");
        }
        assert!(scan_tokens(&dest, &list.tokens).unwrap().is_empty());
    }
}
