//! The packaging under deploy/ is consistent with the binary: the systemd unit passes
//! `systemd-analyze verify`, the shipped configuration files pass `config check`, and what the
//! Dockerfile and Compose file reference exists (no Docker engine runs on the CI machine, so the
//! image itself is not built here; docs/DEPLOYMENT.md says so).

use std::process::Command;

use crate::support::root;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kamiyo-hyperliquid")
}

#[test]
fn the_systemd_unit_verifies_against_this_binary() {
    let unit =
        std::fs::read_to_string(root().join("deploy/systemd/kamiyo-hyperliquid.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/kamiyo-hyperliquid --config /etc/kamiyo/kamiyo.toml run"
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kamiyo-hyperliquid.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/kamiyo-hyperliquid", bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd; .ci/run installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shipped_configuration_files_pass_config_check() {
    for file in ["deploy/config/default.toml", "deploy/config/kamiyo.toml"] {
        let out = Command::new(bin())
            .args([
                "--config",
                root().join(file).to_str().unwrap(),
                "config",
                "check",
            ])
            .env_remove("DATABASE_URL")
            .env_remove("KAMIYO_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_dockerfile_and_compose_file_reference_what_exists() {
    let docker = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    // Non-root, with a health check through the binary's own probe.
    assert!(docker.contains("\nUSER kamiyo:kamiyo\n"));
    assert!(docker.contains(r#"CMD ["kamiyo-hyperliquid", "health"]"#));
    let help = Command::new(bin())
        .args(["health", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = line.split_whitespace().nth(1).unwrap();
        if src != "." {
            assert!(
                root().join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
    let compose = std::fs::read_to_string(root().join("deploy/docker-compose.yml")).unwrap();
    for line in compose.lines() {
        let l = line.trim().trim_start_matches("- ");
        if let Some(rest) = l.strip_prefix("./") {
            let src = rest.split(':').next().unwrap();
            if src.ends_with(".key") || src == "kamiyo.env" {
                continue; // created by the operator (docs/DEPLOYMENT.md)
            }
            assert!(
                root().join("deploy").join(src).exists(),
                "docker-compose.yml mounts ./{src}, which does not exist"
            );
        }
    }
    assert!(compose.contains("dockerfile: deploy/Dockerfile"));
    // The Grafana dashboard is valid JSON with panels.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/kamiyo.json")).unwrap(),
    )
    .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() >= 10);
}
