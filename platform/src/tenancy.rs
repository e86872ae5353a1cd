//! Tenants, users, roles, API keys and the request's [`Principal`]: the rules, no I/O.
//!
//! A key is `<tenant>.<secret>` (192 random bits, hex): the tenant part says whose rows to look
//! in, the SHA-256 of the whole key is what is stored (a fast hash is right for high-entropy
//! secrets). Passwords are hashed with argon2id (RFC 9106's second recommended setting:
//! m = 64 MiB, t = 3, p = 4) in PHC string form.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tiers::{Feature, Tier, TierMatrix};

/// Why an input or an action was refused, in words safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A field is malformed.
    #[error("{field}: {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is expected.
        expected: String,
    },
    /// The caller's role may not do this (403).
    #[error("the {role} role may not {action}")]
    Role {
        /// The caller's role.
        role: Role,
        /// What was refused.
        action: &'static str,
    },
    /// The tenant's plan lacks a feature (402), and the cheapest plan that has it.
    #[error("{feature:?} is not in the {plan} plan{}", upgrade.map(|t| format!("; the {t} plan includes it")).unwrap_or_default())]
    Feature {
        /// The tenant's plan.
        plan: Tier,
        /// The feature.
        feature: Feature,
        /// The cheapest plan with it.
        upgrade: Option<Tier>,
    },
}

/// A tenant's id: `[a-z0-9][a-z0-9-]{2,31}` (it is the first part of every key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Parses an id from outside.
    pub fn parse(s: &str) -> Result<Self, Refusal> {
        let ok = (3..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Refusal::Invalid {
                field: "tenant",
                expected: "3 to 32 characters [a-z0-9-], starting with a letter or digit".into(),
            })
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user or key may do, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read, and tune detection (thresholds, watched addresses).
    Analyst,
    /// Everything but the owners' own accounts: users, keys, channels, subscriptions, audit.
    Admin,
    /// Everything.
    Owner,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Self::Viewer, Self::Analyst, Self::Admin, Self::Owner];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Result<Self, Refusal> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Refusal::Invalid {
                field: "role",
                expected: "owner, admin, analyst or viewer".into(),
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request wants to do; [`authorize`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the tenant's settings, usage and the shared facts it subscribes to.
    Read,
    /// Change thresholds and watched addresses.
    Tune,
    /// Manage users and keys (never above one's own role).
    ManageAccess,
    /// Manage alert channels and protocol subscriptions.
    Configure,
    /// Read and export the audit log.
    ReadAudit,
    /// See and change the subscription (checkout, portal, plan, cancel).
    Billing,
    /// Work incidents: acknowledge, mute, resolve, reopen (the tenant's own state of them).
    Respond,
    /// Set the brand (white label).
    Brand,
    /// Set single sign-on.
    SingleSignOn,
    /// Read the monthly SLA reports.
    ReadSla,
}

impl Permission {
    /// The least role that has it.
    pub fn least_role(self) -> Role {
        match self {
            Self::Read | Self::ReadSla => Role::Viewer,
            Self::Tune | Self::Respond => Role::Analyst,
            Self::Brand | Self::SingleSignOn => Role::Admin,
            Self::ManageAccess | Self::Configure | Self::ReadAudit | Self::Billing => Role::Admin,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Tune => "change thresholds or watched addresses",
            Self::ManageAccess => "manage users or keys",
            Self::Configure => "change channels or subscriptions",
            Self::ReadAudit => "read the audit log",
            Self::Billing => "manage billing",
            Self::Respond => "act on incidents",
            Self::Brand => "change the brand",
            Self::SingleSignOn => "change single sign-on",
            Self::ReadSla => "read the SLA report",
        }
    }

    /// The plan feature it needs, if any.
    pub fn feature(self) -> Option<Feature> {
        match self {
            Self::ReadAudit => Some(Feature::AuditLog),
            Self::Brand => Some(Feature::CustomBranding),
            Self::SingleSignOn => Some(Feature::Sso),
            Self::ReadSla => Some(Feature::Sla),
            _ => None,
        }
    }
}

/// Who is asking, attached to every authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant.
    pub tenant: TenantId,
    /// For the audit log: `key:<id>`.
    pub actor: String,
    /// The key's role.
    pub role: Role,
    /// The tenant's plan.
    pub plan: Tier,
}

/// Allows `p` to do `what` under its role and plan: 403 ([`Refusal::Role`]) or 402
/// ([`Refusal::Feature`]) otherwise.
pub fn authorize(p: &Principal, what: Permission, tiers: &TierMatrix) -> Result<(), Refusal> {
    if p.role < what.least_role() {
        return Err(Refusal::Role {
            role: p.role,
            action: what.action(),
        });
    }
    match what.feature() {
        Some(f) => require(p.plan, f, tiers),
        None => Ok(()),
    }
}

/// Refuses with [`Refusal::Feature`] unless `plan` has `feature`.
pub fn require(plan: Tier, feature: Feature, tiers: &TierMatrix) -> Result<(), Refusal> {
    if tiers.is_feature_enabled(plan, feature) {
        Ok(())
    } else {
        Err(Refusal::Feature {
            plan,
            feature,
            upgrade: tiers.cheapest_with(feature),
        })
    }
}

/// Refuses giving `granted` (to a new user or key) when it is above the granter's own role;
/// roles below admin need the plan's `rbac` feature (smaller plans have owners and admins).
pub fn may_grant(p: &Principal, granted: Role, tiers: &TierMatrix) -> Result<(), Refusal> {
    if granted > p.role {
        return Err(Refusal::Role {
            role: p.role,
            action: "grant a role above its own",
        });
    }
    if granted < Role::Admin {
        require(p.plan, Feature::Rbac, tiers)?;
    }
    Ok(())
}

/// A new API key: the secret to show once and the hash to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Its id (shown in lists, used to revoke).
    pub id: String,
    /// `<tenant>.<secret>`: shown once, never stored.
    pub secret: String,
    /// SHA-256 of `secret`, hex.
    pub hash: String,
}

fn fill_random(b: &mut [u8]) {
    <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng().fill_bytes(b);
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    fill_random(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh random id (`<prefix>_<16 hex>`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(8))
}

/// A fresh random secret (192 bits, hex): session cookies, CSRF and one-time tokens.
pub fn new_secret() -> String {
    random_hex(24)
}

/// A valid argon2id hash of no one's password: an unknown address is checked against it, so a
/// sign-in takes as long whether or not the address exists.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$0Jg6AdDxkWyS8tDOlsSWSLx9ofFCRc8MhlCk1OS1r7Y";

/// Generates a key of `tenant`.
pub fn generate_key(tenant: &TenantId) -> NewKey {
    let secret = format!("{tenant}.{}", random_hex(24));
    NewKey {
        id: new_id("key"),
        hash: hash_key(&secret),
        secret,
    }
}

/// Hex SHA-256 of a presented key.
pub fn hash_key(presented: &str) -> String {
    Sha256::digest(presented.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tenant a presented key names, if it has the key's shape.
pub fn key_tenant(presented: &str) -> Option<TenantId> {
    let (tenant, secret) = presented.split_once('.')?;
    (secret.len() == 48 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| TenantId::parse(tenant).ok())
        .flatten()
}

/// Shortest and longest password accepted (NIST SP 800-63B: at least 8; we ask 12).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 12..=256;

fn argon() -> argon2::Argon2<'static> {
    // RFC 9106 §4, second recommended option; the crate's defaults are lighter.
    let params = argon2::Params::new(64 * 1024, 3, 4, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password with argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String, Refusal> {
    if !PASSWORD_LEN.contains(&password.chars().count()) {
        return Err(Refusal::Invalid {
            field: "password",
            expected: format!(
                "{} to {} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        });
    }
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Refusal::Invalid {
        field: "password",
        expected: e.to_string(),
    })?;
    argon()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Refusal::Invalid {
            field: "password",
            expected: e.to_string(),
        })
}

/// True when `password` matches the stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| argon().verify_password(password.as_bytes(), &h).is_ok())
}

/// A plausible email address (one `@`, a dot in the domain, no spaces, ≤ 254 characters),
/// lower-cased.
pub fn parse_email(s: &str) -> Result<String, Refusal> {
    let s = s.trim();
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(s.to_lowercase())
    } else {
        Err(Refusal::Invalid {
            field: "email",
            expected: "an email address".into(),
        })
    }
}

/// A label or name: 1 to `max` printable characters.
pub fn parse_label(field: &'static str, s: &str, max: usize) -> Result<String, Refusal> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(Refusal::Invalid {
            field,
            expected: format!("1 to {max} printable characters"),
        });
    }
    Ok(t.to_owned())
}

/// A detector or setting name: `[a-z][a-z0-9_]{0,63}`.
pub fn parse_name(field: &'static str, s: &str) -> Result<String, Refusal> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Refusal::Invalid {
            field,
            expected: "[a-z][a-z0-9_], at most 64 characters".into(),
        })
    }
}

/// Alert channel kinds a tenant may add (the open core's channels that a URL and a secret
/// describe; `email` goes through the platform's relay to a `mailto:` address).
pub const CHANNEL_KINDS: [&str; 6] = [
    "webhook",
    "slack",
    "discord",
    "email",
    "pagerduty",
    "opsgenie",
];

/// Severities, least first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, plan: Tier) -> Principal {
        Principal {
            tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
            actor: "key:x".into(),
            role,
            plan,
        }
    }

    #[test]
    fn roles_and_plans_decide() {
        let t = TierMatrix::default_matrix().unwrap_or_else(|e| panic!("{e}"));
        assert!(authorize(&p(Role::Viewer, Tier::CloudBasic), Permission::Read, &t).is_ok());
        assert!(matches!(
            authorize(&p(Role::Viewer, Tier::CloudBasic), Permission::Tune, &t),
            Err(Refusal::Role { .. })
        ));
        assert!(authorize(&p(Role::Analyst, Tier::CloudBasic), Permission::Tune, &t).is_ok());
        // The audit log is an enterprise feature: an owner on Pro is told which plan has it.
        assert_eq!(
            authorize(&p(Role::Owner, Tier::CloudPro), Permission::ReadAudit, &t),
            Err(Refusal::Feature {
                plan: Tier::CloudPro,
                feature: Feature::AuditLog,
                upgrade: Some(Tier::CloudEnterprise)
            })
        );
        assert!(
            authorize(
                &p(Role::Admin, Tier::CloudEnterprise),
                Permission::ReadAudit,
                &t
            )
            .is_ok()
        );
        // Granting: never above one's own role; viewer/analyst need RBAC.
        assert!(may_grant(&p(Role::Admin, Tier::CloudEnterprise), Role::Owner, &t).is_err());
        assert!(may_grant(&p(Role::Admin, Tier::CloudEnterprise), Role::Viewer, &t).is_ok());
        assert!(matches!(
            may_grant(&p(Role::Owner, Tier::CloudBasic), Role::Viewer, &t),
            Err(Refusal::Feature { .. })
        ));
        assert!(may_grant(&p(Role::Owner, Tier::CloudBasic), Role::Admin, &t).is_ok());
    }

    #[test]
    fn keys_name_their_tenant_and_hash_stably() {
        let t = TenantId::parse("acme-1").unwrap_or_else(|e| panic!("{e}"));
        let k = generate_key(&t);
        assert_eq!(key_tenant(&k.secret), Some(t));
        assert_eq!(hash_key(&k.secret), k.hash);
        assert_ne!(generate_key(&k_tenant()).secret, k.secret);
        for bad in ["", "acme", "acme.", "ac.0123", "UPPER.0011", "a b.00"] {
            assert_eq!(key_tenant(bad), None, "{bad}");
        }
        fn k_tenant() -> TenantId {
            TenantId::parse("acme-1").unwrap_or_else(|e| panic!("{e}"))
        }
    }

    #[test]
    fn passwords_are_argon2id_and_verified() {
        let h = hash_password("correct horse battery").unwrap_or_else(|e| panic!("{e}"));
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a phc string"));
        // The stand-in for unknown addresses parses (so it costs a full argon2id check).
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("correct horse battery", DUMMY_HASH));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn inputs_are_checked() {
        assert_eq!(
            parse_email(" Ops@Example.COM ").ok().as_deref(),
            Some("ops@example.com")
        );
        for bad in ["", "a", "a@b", "a@@b.c", "a b@c.d", "@x.io", "a@.io"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(TenantId::parse("ab").is_err());
        assert!(TenantId::parse("-ab").is_err());
        assert!(TenantId::parse("acme").is_ok());
        assert!(parse_name("detector", "oracle_deviation").is_ok());
        assert!(parse_name("detector", "Oracle").is_err());
    }
}
