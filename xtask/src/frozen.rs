//! Frozen ground truth: the rule that keeps the detection figures honest.
//!
//! A scenario's ground truth (`truth.toml`) and its inputs (`scenario.toml`, `events.jsonl`, and
//! the market data under `testdata/market/` that scenarios read — a file added there changes no
//! scenario until a `scenario.toml` names it) may change only in commits of
//! their own: a commit that changes them must not also change detector code (`crates/monitors/src`,
//! `crates/ml/src`), and a commit that modifies or deletes an existing scenario file must also
//! change that scenario's `NOTES.md`, where the change is explained and the public fact behind it
//! cited. Adding a new scenario is not a change of truth.
//!
//! The rule reads the whole history reachable from `HEAD` (one `git log` call) plus the
//! uncommitted changes, so a violation is refused before it is committed and cannot land later.
//! Two commits predate the rule and broke it; they are listed in [`GRANDFATHERED`] with what was
//! done about them (see `docs/DETECTION.md`, "Method").

use std::path::Path;
use std::process::Command;

use crate::tidy::Violation;

/// Commits made before the rule existed that changed truth or inputs together with detector code.
/// Both edits were reverted or justified in their own commits (scenario `NOTES.md` files).
pub const GRANDFATHERED: &[&str] = &[
    // monitors: detection engine … (moved the ETH-whale `not_before`, changed the XPL mark).
    "847e5486f505ef3d0577afb61f98fe8f42f5c7aa",
    // server: backtest and replay subcommands … (moved the takeover expectation's `not_before`).
    "b7b0a7157c5f3005df85c562eabbea7a77d176ee",
];

/// How a commit touched one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The path is new.
    Added,
    /// The path existed and was modified, deleted, renamed away or had its type changed.
    Modified,
}

/// One commit (or the uncommitted work tree) and the paths it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full commit id, or `"work tree"`.
    pub id: String,
    /// Subject line.
    pub subject: String,
    /// Paths relative to the repository root, with how they changed.
    pub paths: Vec<(String, Change)>,
}

fn is_detector_code(p: &str) -> bool {
    p.starts_with("crates/monitors/src/") || p.starts_with("crates/ml/src/")
}

/// The scenario a truth or input path belongs to, if it is one.
fn scenario_of(p: &str) -> Option<&str> {
    let rest = p.strip_prefix("scenarios/")?;
    let (name, file) = rest.split_once('/')?;
    matches!(file, "truth.toml" | "scenario.toml" | "events.jsonl").then_some(name)
}

fn is_market_input(p: &str) -> bool {
    p.starts_with("testdata/market/") && !p.ends_with("SOURCES.md")
}

/// Checks `commits` against the rule; grandfathered commits are skipped.
pub fn check(commits: &[Commit]) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in commits {
        if GRANDFATHERED
            .iter()
            .any(|g| c.id.starts_with(g) || g.starts_with(&c.id))
        {
            continue;
        }
        let short = c.id.get(..10).unwrap_or(&c.id);
        let truth: Vec<&str> = c
            .paths
            .iter()
            .filter(|(p, how)| {
                scenario_of(p).is_some() || (is_market_input(p) && *how == Change::Modified)
            })
            .map(|(p, _)| p.as_str())
            .collect();
        let code: Vec<&str> = c
            .paths
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| is_detector_code(p))
            .collect();
        if !truth.is_empty() && !code.is_empty() {
            out.push(Violation {
                rule: "frozen-truth",
                detail: format!(
                    "{short} ({}) changes scenario truth or inputs ({}) together with detector code ({}): commit them separately",
                    c.subject,
                    truth.join(", "),
                    code.join(", ")
                ),
            });
        }
        for (p, how) in &c.paths {
            let Some(name) = scenario_of(p) else { continue };
            if *how != Change::Modified {
                continue;
            }
            let notes = format!("scenarios/{name}/NOTES.md");
            if !c.paths.iter().any(|(q, _)| *q == notes) {
                out.push(Violation {
                    rule: "frozen-truth",
                    detail: format!(
                        "{short} ({}) changes {p} without explaining it in {notes} (cite the public fact behind the change)",
                        c.subject
                    ),
                });
            }
        }
    }
    out
}

fn git(root: &Path, args: &[&str]) -> anyhow::Result<Option<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn parse_status(code: &str) -> Change {
    if code.starts_with('A') {
        Change::Added
    } else {
        Change::Modified
    }
}

/// Parses `git log --no-renames --format=%x00%H%x00%s --name-status` output: NUL, id, NUL,
/// then the subject line and the name-status lines of that commit.
pub fn parse_log(text: &str) -> Vec<Commit> {
    let parts: Vec<&str> = text.split('\0').skip(1).collect();
    parts
        .chunks(2)
        .filter_map(|c| {
            let [id, rest] = c else { return None };
            let mut lines = rest.lines();
            let subject = lines.next().unwrap_or_default().to_owned();
            let paths = lines
                .filter_map(|l| l.split_once('\t'))
                .map(|(code, p)| (p.to_owned(), parse_status(code)))
                .collect();
            Some(Commit {
                id: id.trim().to_owned(),
                subject,
                paths,
            })
        })
        .collect()
}

/// The history reachable from `HEAD` plus the uncommitted changes. A tree without commits (the
/// exported open-source tree before its first commit) has no history to check.
pub fn read(root: &Path) -> anyhow::Result<Vec<Commit>> {
    let mut commits = Vec::new();
    if git(root, &["rev-parse", "--verify", "-q", "HEAD"])?.is_none() {
        return Ok(commits);
    }
    if let Some(log) = git(
        root,
        &[
            "log",
            "--no-renames",
            "--format=%x00%H%x00%s",
            "--name-status",
            "HEAD",
        ],
    )? {
        commits = parse_log(&log);
    }
    if let Some(diff) = git(root, &["diff", "--no-renames", "--name-status", "HEAD"])? {
        let paths: Vec<(String, Change)> = diff
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(code, p)| (p.to_owned(), parse_status(code)))
            .collect();
        if !paths.is_empty() {
            commits.push(Commit {
                id: "work tree".into(),
                subject: "uncommitted changes".into(),
                paths,
            });
        }
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str, paths: &[(&str, Change)]) -> Commit {
        Commit {
            id: id.into(),
            subject: "s".into(),
            paths: paths.iter().map(|(p, c)| ((*p).to_owned(), *c)).collect(),
        }
    }

    #[test]
    fn refuses_truth_and_detector_code_in_one_commit() {
        let c = commit(
            "aaaaaaaaaaaa",
            &[
                ("scenarios/x/truth.toml", Change::Modified),
                ("scenarios/x/NOTES.md", Change::Modified),
                ("crates/monitors/src/detectors/oracle.rs", Change::Modified),
            ],
        );
        let v = check(&[c]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("truth.toml") && v[0].detail.contains("oracle.rs"));
        // Market data the scenarios read counts as input too, and ML code as detector code.
        let c = commit(
            "bbbbbbbbbbbb",
            &[
                ("testdata/market/binance/x.csv", Change::Modified),
                ("crates/ml/src/iforest.rs", Change::Modified),
            ],
        );
        assert_eq!(check(&[c]).len(), 1);
    }

    #[test]
    fn a_truth_change_must_be_explained_in_the_notes() {
        let bare = commit(
            "cccccccccccc",
            &[("scenarios/x/scenario.toml", Change::Modified)],
        );
        let v = check(&[bare]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("scenarios/x/NOTES.md"));
        let explained = commit(
            "dddddddddddd",
            &[
                ("scenarios/x/events.jsonl", Change::Modified),
                ("scenarios/x/NOTES.md", Change::Added),
            ],
        );
        assert!(check(&[explained]).is_empty());
        // A new scenario and a detector change of their own are both fine.
        let new = commit("eeeeeeeeeeee", &[("scenarios/y/truth.toml", Change::Added)]);
        let code = commit(
            "ffffffffffff",
            &[("crates/monitors/src/engine.rs", Change::Modified)],
        );
        assert!(check(&[new, code]).is_empty());
    }

    #[test]
    fn the_two_commits_before_the_rule_are_the_only_exceptions() {
        let old = commit(
            GRANDFATHERED[0],
            &[
                ("scenarios/x/truth.toml", Change::Modified),
                ("crates/monitors/src/engine.rs", Change::Modified),
            ],
        );
        assert!(check(&[old]).is_empty());
        let real = read(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()).unwrap();
        // Where history is present (not in the exported tree before its first commit), the
        // grandfathered commits are in it and would break the rule without the exception.
        for c in real
            .iter()
            .filter(|c| GRANDFATHERED.contains(&c.id.as_str()))
        {
            let mut c = c.clone();
            c.id = "0000000000".into();
            assert!(!check(&[c]).is_empty());
        }
    }

    #[test]
    fn parses_git_log_output() {
        let text = "\0abc123\0first subject\n\nM\tscenarios/x/truth.toml\nA\tscenarios/x/NOTES.md\n\0def456\0second\n\nD\tcrates/ml/src/a.rs\n";
        let c = parse_log(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].id, "abc123");
        assert_eq!(c[0].subject, "first subject");
        assert_eq!(
            c[0].paths,
            vec![
                ("scenarios/x/truth.toml".to_owned(), Change::Modified),
                ("scenarios/x/NOTES.md".to_owned(), Change::Added)
            ]
        );
        assert_eq!(
            c[1].paths,
            vec![("crates/ml/src/a.rs".to_owned(), Change::Modified)]
        );
    }
}
