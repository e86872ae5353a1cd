//! `kamiyo-hyperliquid keys create|list|revoke`: API keys, hashed at rest, shown once.

use std::io::Write;

use kamiyo_core_models::{ApiKeyStore, AuditEntry, AuditStore, Clock, KeyScope, SystemClock};
use kamiyo_store::Store;

/// Creates a key and prints it once.
pub async fn create(
    store: &Store,
    name: &str,
    scope: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 100 && !name.chars().any(char::is_control),
        "--name: 1 to 100 printable characters naming who or what uses the key"
    );
    let scope: KeyScope = scope
        .parse()
        .map_err(|_| anyhow::anyhow!("--scope: read or write, not {scope:?}"))?;
    let now = SystemClock.now();
    let k = kamiyo_api::auth::generate_key(name, scope, now);
    store.insert_key(&k.record).await?;
    store
        .audit(&AuditEntry {
            time: now,
            actor: "cli".into(),
            action: "api_key.create".into(),
            detail: format!("{} {name} scope={}", k.record.prefix, scope.as_str()),
        })
        .await?;
    writeln!(
        out,
        "created {} API key {} ({name})",
        scope.as_str(),
        k.record.prefix
    )?;
    writeln!(out)?;
    writeln!(out, "    {}", k.secret)?;
    writeln!(out)?;
    writeln!(
        out,
        "This is the only time the key is shown; only its SHA-256 is stored. Send it as `Authorization: Bearer <key>` (or `X-API-Key`)."
    )?;
    Ok(())
}

/// Lists keys (never the secrets).
pub async fn list(store: &Store, out: &mut impl Write) -> anyhow::Result<()> {
    let keys = store.keys().await?;
    if keys.is_empty() {
        writeln!(
            out,
            "no API keys (create one with `kamiyo-hyperliquid keys create --name <who>`)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<14} {:<8} {:<6} {:<26} name",
        "prefix", "state", "scope", "created"
    )?;
    for k in keys {
        let state = if k.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        writeln!(
            out,
            "{:<14} {:<8} {:<6} {:<26} {}",
            k.prefix,
            state,
            k.scope.as_str(),
            k.created_at,
            k.name
        )?;
    }
    Ok(())
}

/// Revokes a key by prefix or id.
pub async fn revoke(store: &Store, which: &str, out: &mut impl Write) -> anyhow::Result<bool> {
    let now = SystemClock.now();
    if store.revoke_key(which, now).await? {
        store
            .audit(&AuditEntry {
                time: now,
                actor: "cli".into(),
                action: "api_key.revoke".into(),
                detail: which.to_owned(),
            })
            .await?;
        writeln!(
            out,
            "revoked {which}; running servers stop accepting it within {} s",
            kamiyo_api::auth::KEY_CACHE_TTL.as_secs()
        )?;
        Ok(true)
    } else {
        writeln!(out, "no active key {which}")?;
        Ok(false)
    }
}
