//! The platform binary's configuration: defaults → TOML file (`--config`) → environment
//! (`KAMIYO_PLATFORM__<SECTION>__<KEY>`). Every bad value is reported with its key.

use serde::Deserialize;

/// Configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// HTTP.
    pub(crate) server: Server,
    /// PostgreSQL.
    pub(crate) database: Database,
    /// What the platform serves.
    pub(crate) platform: Platform,
    /// Account mail (address verification, password reset).
    pub(crate) smtp: Smtp,
    /// Staff routes.
    pub(crate) admin: Admin,
    /// Billing with Stripe (off while `secret_key` is empty).
    pub(crate) billing: Billing,
    /// Per-protocol adapter settings for `ingest` (`[adapters.dydx]` …; each key left out
    /// keeps the venue's default).
    pub(crate) adapters: std::collections::BTreeMap<String, AdapterSettings>,
}

/// `[adapters.<protocol>]`: where a venue is read and how hard.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AdapterSettings {
    /// The venue's REST bases (Drift: its Data API, then its DLOB server; socket venues: the
    /// REST base of their bootstrap).
    pub(crate) base_urls: Vec<String>,
    /// A socket venue's WebSocket URL.
    pub(crate) ws_url: String,
    /// Markets whose trades (and books) are followed, as the venue spells them.
    pub(crate) markets: Option<Vec<String>>,
    /// Between two polls of the contexts (ms; polled venues).
    pub(crate) contexts_every_ms: u64,
    /// Between two rounds of trades (ms; polled venues).
    pub(crate) trades_every_ms: u64,
    /// Per request or connection attempt (ms).
    pub(crate) timeout_ms: u64,
    /// Requests per 10 s (polled venues; under the venue's published limit).
    pub(crate) requests_per_10s: u32,
    /// A socket silent this long is reopened (ms).
    pub(crate) idle_timeout_ms: u64,
    /// Coins quoted on the reference venues for the oracle-versus-reference rule.
    pub(crate) reference_coins: Option<Vec<String>>,
}

/// A settings list of base URLs that the venue's feed does not take whole.
fn self_len_mismatch(a: &AdapterSettings, defaults: usize) -> bool {
    !a.base_urls.is_empty() && a.base_urls.len() != defaults
}

impl AdapterSettings {
    /// The feed of `id`: its defaults with these settings over them.
    pub(crate) fn feed(&self, id: &str) -> Option<kamiyo_platform::ingest::Feed> {
        use kamiyo_platform::ingest::Feed;
        let ms = std::time::Duration::from_millis;
        Some(match kamiyo_platform::ingest::default_feed(id)? {
            Feed::Poll(mut c) => {
                if !self.base_urls.is_empty() {
                    c.base_urls.clone_from(&self.base_urls);
                }
                if let Some(m) = &self.markets {
                    c.markets.clone_from(m);
                }
                if self.contexts_every_ms > 0 {
                    c.contexts_every = ms(self.contexts_every_ms);
                }
                if self.trades_every_ms > 0 {
                    c.trades_every = ms(self.trades_every_ms);
                }
                if self.timeout_ms > 0 {
                    c.timeout = ms(self.timeout_ms);
                }
                if self.requests_per_10s > 0 {
                    c.requests_per_10s = self.requests_per_10s;
                }
                Feed::Poll(c)
            }
            Feed::Socket(mut c) => {
                if let Some(b) = self.base_urls.first() {
                    c.rest_url.clone_from(b);
                }
                if !self.ws_url.is_empty() {
                    c.ws_url.clone_from(&self.ws_url);
                }
                if let Some(m) = &self.markets {
                    c.markets.clone_from(m);
                }
                if self.timeout_ms > 0 {
                    c.connect_timeout = ms(self.timeout_ms);
                }
                if self.idle_timeout_ms > 0 {
                    c.idle_timeout = ms(self.idle_timeout_ms);
                }
                Feed::Socket(c)
            }
        })
    }
}

/// `[billing]`: Stripe. Plans change only when Stripe confirms them (webhook or API read).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Billing {
    /// Stripe secret key (`sk_…`/`rk_…`); empty: billing off.
    pub(crate) secret_key: String,
    /// Stripe's API base; empty: `https://api.stripe.com/`.
    pub(crate) api_base: String,
    /// Webhook endpoint secrets (`whsec_…`): the current one, and the previous while rolling.
    pub(crate) webhook_secrets: Vec<String>,
    /// Stripe price per plan sold (`cloud_basic = "price_…"`, …).
    pub(crate) prices: std::collections::BTreeMap<String, String>,
    /// Trial with a tenant's first Checkout (days; 0: none).
    pub(crate) trial_days: u32,
    /// Grace after a failed payment before suspension (days, may be fractional).
    pub(crate) grace_days: f64,
    /// Webhook signature tolerance (seconds).
    pub(crate) tolerance_secs: i64,
    /// The plan of a tenant without a live subscription.
    pub(crate) unpaid_plan: String,
    /// Per attempt (ms).
    pub(crate) timeout_ms: u64,
    /// Attempts per Stripe call (transient failures retried with the same idempotency key).
    pub(crate) attempts: u32,
    /// Reconciliation with Stripe every this many seconds.
    pub(crate) sync_interval_secs: u64,
}

impl Default for Billing {
    fn default() -> Self {
        Self {
            secret_key: String::new(),
            api_base: String::new(),
            webhook_secrets: Vec::new(),
            prices: std::collections::BTreeMap::new(),
            trial_days: kamiyo_platform::billing::DEFAULT_TRIAL_DAYS,
            grace_days: 7.0,
            tolerance_secs: kamiyo_platform::billing::signature::DEFAULT_TOLERANCE_SECS,
            unpaid_plan: "open_source".into(),
            timeout_ms: 10_000,
            attempts: 4,
            sync_interval_secs: 3600,
        }
    }
}

impl Billing {
    /// Billing's settings, when it is on (`public_url` roots the return pages).
    pub(crate) fn settings(
        &self,
        public_url: &str,
    ) -> anyhow::Result<Option<kamiyo_platform::billing::Settings>> {
        if self.secret_key.is_empty() {
            return Ok(None);
        }
        let mut prices = Vec::new();
        for (plan, price) in &self.prices {
            prices.push((plan.parse()?, price.clone()));
        }
        let base = public_url.trim_end_matches('/');
        Ok(Some(kamiyo_platform::billing::Settings {
            secret_key: self.secret_key.clone(),
            api_base: (!self.api_base.is_empty()).then(|| self.api_base.clone()),
            webhook_secrets: self.webhook_secrets.clone(),
            prices,
            trial_days: self.trial_days,
            grace_ms: (self.grace_days * 86_400_000.0) as i64,
            tolerance_secs: self.tolerance_secs,
            unpaid_plan: self.unpaid_plan.parse()?,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            attempts: self.attempts,
            backoff: std::time::Duration::from_millis(500),
            success_url: format!("{base}/app?checkout=done#billing"),
            cancel_url: format!("{base}/app?checkout=cancelled#billing"),
            return_url: format!("{base}/app#billing"),
        }))
    }

    fn check(&self, p: &mut Vec<(String, String)>) {
        if self.secret_key.is_empty() {
            return;
        }
        if !(self.secret_key.starts_with("sk_") || self.secret_key.starts_with("rk_")) {
            p.push((
                "billing.secret_key".into(),
                "a Stripe secret key (sk_… or rk_…)".into(),
            ));
        }
        if self.webhook_secrets.is_empty()
            || self
                .webhook_secrets
                .iter()
                .any(|s| !s.starts_with("whsec_"))
        {
            p.push((
                "billing.webhook_secrets".into(),
                "at least one endpoint secret, each whsec_…".into(),
            ));
        }
        if !(self.api_base.is_empty()
            || self.api_base.starts_with("https://")
            || self.api_base.starts_with("http://127.0.0.1"))
        {
            p.push((
                "billing.api_base".into(),
                "https://… (or a loopback test server)".into(),
            ));
        }
        for plan in self.prices.keys() {
            if plan.parse::<kamiyo_platform::tiers::Tier>().is_err() {
                p.push((format!("billing.prices.{plan}"), "not a plan".into()));
            }
        }
        if self.prices.is_empty() {
            p.push((
                "billing.prices".into(),
                "the Stripe price of at least one plan".into(),
            ));
        }
        if self
            .unpaid_plan
            .parse::<kamiyo_platform::tiers::Tier>()
            .is_err()
        {
            p.push(("billing.unpaid_plan".into(), "not a plan".into()));
        }
        if !(self.grace_days.is_finite() && self.grace_days > 0.0 && self.grace_days <= 60.0) {
            p.push((
                "billing.grace_days".into(),
                "more than 0, at most 60".into(),
            ));
        }
        if !(1..=3600).contains(&self.tolerance_secs) {
            p.push((
                "billing.tolerance_secs".into(),
                "1 to 3600 (Stripe's default is 300)".into(),
            ));
        }
        if self.attempts == 0 || self.timeout_ms == 0 || self.sync_interval_secs == 0 {
            p.push((
                "billing".into(),
                "attempts, timeout_ms and sync_interval_secs must be at least 1".into(),
            ));
        }
    }
}

/// `[admin]`: staff routes under `/api/v1/admin/` (served only when tokens are set; they act
/// through the owner's connection, `database.url`, and are audited in the tenant's log).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Admin {
    /// `name:sha256-hex-of-token` per staff member.
    pub(crate) tokens: Vec<String>,
}

impl Admin {
    /// (name, hash) pairs.
    pub(crate) fn parsed(&self) -> Vec<(String, String)> {
        self.tokens
            .iter()
            .filter_map(|t| t.split_once(':'))
            .map(|(n, h)| (n.to_owned(), h.to_ascii_lowercase()))
            .collect()
    }
}

/// `[smtp]`: the relay account mail goes through (empty host: no account mail).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Smtp {
    /// Relay host.
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
    /// `starttls`, `tls` or `none` (a loopback relay only).
    pub(crate) security: String,
    /// Login.
    pub(crate) username: String,
    /// Password.
    pub(crate) password: String,
    /// Sender.
    pub(crate) from: String,
}

impl Default for Smtp {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            from: "kamiyo.ai <accounts@kamiyo.ai>".into(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Server {
    /// `host:port`.
    pub(crate) bind: String,
    /// HTTP worker threads (0: one per core).
    pub(crate) workers: usize,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Database {
    /// The owner's URL: migrations and staff commands.
    pub(crate) url: String,
    /// The application role's URL: serving (row-level security binds it).
    pub(crate) app_url: String,
    /// The application role's name (granted its privileges by `migrate`).
    pub(crate) app_role: String,
    /// Pool size.
    pub(crate) max_connections: u32,
}

/// `[platform]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Platform {
    /// Protocols ingested (tenants subscribe to these); the first is every new tenant's.
    pub(crate) protocols: Vec<String>,
    /// A tier matrix file replacing the embedded one (empty: embedded).
    pub(crate) tiers_file: String,
    /// A protocol registry file replacing the embedded one (empty: embedded).
    pub(crate) registry_file: String,
    /// The HLP vault the open core's routes show.
    pub(crate) hlp_vault: String,
    /// How often the tenant router looks for new shared steps (ms).
    pub(crate) router_interval_ms: u64,
    /// The address people open (the links in account mail).
    pub(crate) public_url: String,
    /// Let tenants add channels to `http://` loopback addresses (a single-machine trial or a
    /// test; never on a shared deployment: it lets a tenant reach the platform's own host).
    pub(crate) allow_loopback_channels: bool,
    /// Where the alert workers probe the API each minute for the status page and the SLA
    /// reports: its public address as clients reach it (the Kubernetes Service or the load
    /// balancer); empty: this replica's own `server.bind`.
    pub(crate) status_probe_url: String,
    /// Seconds between probes (5 … 60: every minute is probed).
    pub(crate) probe_interval_secs: u64,
    /// The SLA's API availability target over a month, per cent.
    pub(crate) sla_availability_pct: f64,
    /// The SLA's alert-delivery target: 99th percentile, seconds from enqueue to delivery.
    pub(crate) sla_delivery_p99_secs: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8090".into(),
            workers: 0,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            url: String::new(),
            app_url: String::new(),
            app_role: "kamiyo_app".into(),
            max_connections: 16,
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            protocols: vec!["hyperliquid".into()],
            tiers_file: String::new(),
            registry_file: String::new(),
            hlp_vault: "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303".into(),
            router_interval_ms: 1000,
            public_url: "https://app.kamiyo.ai".into(),
            allow_loopback_channels: false,
            status_probe_url: String::new(),
            probe_interval_secs: 60,
            sla_availability_pct: 99.9,
            sla_delivery_p99_secs: 60,
        }
    }
}

/// The non-empty, trimmed items of a comma-separated value.
pub(crate) fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Environment keys read, and where they go.
const ENV: [(&str, &str); 12] = [
    ("KAMIYO_PLATFORM__BILLING__SECRET_KEY", "billing.secret_key"),
    (
        "KAMIYO_PLATFORM__BILLING__WEBHOOK_SECRETS",
        "billing.webhook_secrets",
    ),
    ("KAMIYO_PLATFORM__ADMIN__TOKENS", "admin.tokens"),
    ("KAMIYO_PLATFORM__SMTP__HOST", "smtp.host"),
    ("KAMIYO_PLATFORM__SMTP__PASSWORD", "smtp.password"),
    ("KAMIYO_PLATFORM__SERVER__BIND", "server.bind"),
    ("KAMIYO_PLATFORM__DATABASE__URL", "database.url"),
    ("KAMIYO_PLATFORM__DATABASE__APP_URL", "database.app_url"),
    ("KAMIYO_PLATFORM__DATABASE__APP_ROLE", "database.app_role"),
    (
        "KAMIYO_PLATFORM__DATABASE__MAX_CONNECTIONS",
        "database.max_connections",
    ),
    (
        "KAMIYO_PLATFORM__PLATFORM__TIERS_FILE",
        "platform.tiers_file",
    ),
    ("KAMIYO_PLATFORM__PLATFORM__PROTOCOLS", "platform.protocols"),
];

impl Config {
    /// The SLA's targets.
    pub(crate) fn sla(&self) -> kamiyo_platform::status::SlaTargets {
        kamiyo_platform::status::SlaTargets {
            availability_pct: self.platform.sla_availability_pct,
            delivery_p99_ms: i64::try_from(self.platform.sla_delivery_p99_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        }
    }

    /// Loads `file` (if any) over the defaults, then the environment; every problem as
    /// `(key, message)`.
    pub(crate) fn load(
        file: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| vec![(path.display().to_string(), e.to_string())])?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    vec![(
                        path.display().to_string(),
                        e.to_string().lines().collect::<Vec<_>>().join(" "),
                    )]
                })?
            }
            None => Config::default(),
        };
        let mut problems = Vec::new();
        for (var, key) in ENV {
            // `<VAR>_FILE` names a file holding the value (a mounted Kubernetes or Docker
            // secret): secrets need not sit in the environment.
            let v = match (env(var), env(&format!("{var}_FILE"))) {
                (Some(v), _) => v,
                (None, Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(text) => text.trim_end_matches(['\r', '\n']).to_owned(),
                    Err(e) => {
                        problems.push((key.into(), format!("{var}_FILE={path}: {e}")));
                        continue;
                    }
                },
                (None, None) => continue,
            };
            match key {
                "server.bind" => c.server.bind = v,
                "database.url" => c.database.url = v,
                "database.app_url" => c.database.app_url = v,
                "database.app_role" => c.database.app_role = v,
                "database.max_connections" => match v.parse() {
                    Ok(n) => c.database.max_connections = n,
                    Err(_) => {
                        problems.push((key.into(), format!("{var}: expected a whole number")))
                    }
                },
                "platform.tiers_file" => c.platform.tiers_file = v,
                "smtp.host" => c.smtp.host = v,
                "admin.tokens" => {
                    c.admin.tokens = comma_list(&v);
                }
                "smtp.password" => c.smtp.password = v,
                "billing.secret_key" => c.billing.secret_key = v,
                "billing.webhook_secrets" => {
                    c.billing.webhook_secrets = comma_list(&v);
                }
                _ => {
                    c.platform.protocols = comma_list(&v);
                }
            }
        }
        problems.extend(c.check());
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }

    /// Every problem, with its key.
    pub(crate) fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (id, a) in &self.adapters {
            let key = |k: &str| format!("adapters.{id}.{k}");
            match a.feed(id) {
                None => p.push((
                    format!("adapters.{id}"),
                    format!(
                        "no adapter of that name (one of {})",
                        kamiyo_platform::ingest::ADAPTERS.join(", ")
                    ),
                )),
                Some(f) => {
                    let urls = f.base_urls();
                    if urls
                        .iter()
                        .any(|u| !(u.starts_with("https://") || u.starts_with("http://")))
                    {
                        p.push((key("base_urls"), "http(s):// URLs".into()));
                    }
                    let defaults = kamiyo_platform::ingest::default_feed(id)
                        .map_or(0, |d| d.base_urls().len());
                    if urls.len() != defaults || self_len_mismatch(a, defaults) {
                        p.push((
                            key("base_urls"),
                            format!("{defaults} URL(s), as the venue has"),
                        ));
                    }
                    if let kamiyo_platform::ingest::Feed::Socket(s) = &f
                        && !(s.ws_url.starts_with("wss://") || s.ws_url.starts_with("ws://"))
                    {
                        p.push((key("ws_url"), "a ws(s):// URL".into()));
                    }
                }
            }
            if let Some(coins) = &a.reference_coins
                && let Some(bad) = coins
                    .iter()
                    .find(|c| kamiyo_core_models::Coin::new(c).is_err())
            {
                p.push((key("reference_coins"), format!("{bad:?} is not a coin")));
            }
        }
        if self
            .server
            .bind
            .rsplit_once(':')
            .is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err())
        {
            p.push(("server.bind".into(), "expected host:port".into()));
        }
        for (key, url) in [
            ("database.url", &self.database.url),
            ("database.app_url", &self.database.app_url),
        ] {
            if !(url.is_empty()
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                p.push((
                    key.into(),
                    "expected postgres://… (the platform runs on PostgreSQL only)".into(),
                ));
            }
        }
        if !kamiyo_platform::db::valid_identifier(&self.database.app_role) {
            p.push((
                "database.app_role".into(),
                "expected a plain role name [a-z_][a-z0-9_]*".into(),
            ));
        }
        if self.database.max_connections == 0 {
            p.push(("database.max_connections".into(), "at least 1".into()));
        }
        if self.platform.protocols.is_empty() {
            p.push((
                "platform.protocols".into(),
                "list at least one protocol".into(),
            ));
        }
        for (i, s) in self.platform.protocols.iter().enumerate() {
            if let Err(e) = kamiyo_core_models::ProtocolId::parse(s) {
                p.push((format!("platform.protocols[{i}]"), e.to_string()));
            }
        }
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let ok = t.split_once(':').is_some_and(|(n, h)| {
                !n.is_empty() && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                p.push((
                    format!("admin.tokens[{i}]"),
                    "name:<SHA-256 of the token, 64 hex digits>".into(),
                ));
            }
        }
        if !self.admin.tokens.is_empty() && self.database.url.is_empty() {
            p.push((
                "database.url".into(),
                "staff routes act through the owner's connection: set it".into(),
            ));
        }
        if !["starttls", "tls", "none"].contains(&self.smtp.security.as_str()) {
            p.push(("smtp.security".into(), "starttls, tls or none".into()));
        }
        if !(self.platform.public_url.starts_with("https://")
            || self.platform.public_url.starts_with("http://"))
        {
            p.push(("platform.public_url".into(), "an http(s):// URL".into()));
        }
        if !(5..=60).contains(&self.platform.probe_interval_secs) {
            p.push((
                "platform.probe_interval_secs".into(),
                "5 to 60 seconds (every minute must be probed)".into(),
            ));
        }
        if !(self.platform.status_probe_url.is_empty()
            || self.platform.status_probe_url.starts_with("https://")
            || self.platform.status_probe_url.starts_with("http://"))
        {
            p.push((
                "platform.status_probe_url".into(),
                "an http(s):// URL, or empty for this replica's own address".into(),
            ));
        }
        if !(self.platform.sla_availability_pct > 0.0
            && self.platform.sla_availability_pct <= 100.0)
        {
            p.push((
                "platform.sla_availability_pct".into(),
                "a percentage above 0 and at most 100".into(),
            ));
        }
        if kamiyo_core_models::Address::parse(&self.platform.hlp_vault).is_err() {
            p.push((
                "platform.hlp_vault".into(),
                "expected 0x followed by 40 hex digits".into(),
            ));
        }
        self.billing.check(&mut p);
        match self.registry() {
            Ok(r) => {
                let ingested: Vec<_> = self
                    .platform
                    .protocols
                    .iter()
                    .filter_map(|s| kamiyo_core_models::ProtocolId::parse(s).ok())
                    .collect();
                if let Err(e) = r.check_ingested(&ingested) {
                    p.extend(e.0);
                }
            }
            Err(e) => p.push(("platform.registry_file".into(), e.to_string())),
        }
        if !self.platform.tiers_file.is_empty() {
            match std::fs::read_to_string(&self.platform.tiers_file) {
                Ok(t) => {
                    if let Err(e) = kamiyo_platform::tiers::TierMatrix::load(&t) {
                        p.push(("platform.tiers_file".into(), e.to_string()));
                    }
                }
                Err(e) => p.push(("platform.tiers_file".into(), e.to_string())),
            }
        }
        p
    }

    /// The protocol registry in force.
    pub(crate) fn registry(&self) -> anyhow::Result<kamiyo_platform::registry::Registry> {
        Ok(if self.platform.registry_file.is_empty() {
            kamiyo_platform::registry::Registry::embedded()?
        } else {
            kamiyo_platform::registry::Registry::load(&std::fs::read_to_string(
                &self.platform.registry_file,
            )?)?
        })
    }

    /// The tier matrix in force.
    pub(crate) fn tiers(&self) -> anyhow::Result<kamiyo_platform::tiers::TierMatrix> {
        Ok(if self.platform.tiers_file.is_empty() {
            kamiyo_platform::tiers::TierMatrix::default_matrix()?
        } else {
            kamiyo_platform::tiers::TierMatrix::load(&std::fs::read_to_string(
                &self.platform.tiers_file,
            )?)?
        })
    }
}

impl Smtp {
    /// The relay as the open core's SMTP channel, when a host is set.
    pub(crate) fn mailer(&self) -> anyhow::Result<Option<kamiyo_alerts::channels::Smtp>> {
        use kamiyo_alerts::channels::{SmtpSecurity, SmtpSettings};
        if self.host.is_empty() {
            return Ok(None);
        }
        let security = match self.security.as_str() {
            "tls" => SmtpSecurity::Tls,
            "none" => SmtpSecurity::None,
            _ => SmtpSecurity::Starttls,
        };
        Ok(Some(kamiyo_alerts::channels::Smtp::new(
            "accounts",
            &SmtpSettings {
                host: self.host.clone(),
                port: self.port,
                security,
                username: self.username.clone(),
                password: kamiyo_alerts::Secret::new(self.password.clone()),
                from: self.from.clone(),
                // Account mail names its recipient per message.
                to: vec![self.from.clone()],
                ca_pem: None,
            },
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let env = |k: &str| match k {
            "KAMIYO_PLATFORM__SERVER__BIND" => Some("nope".to_owned()),
            "KAMIYO_PLATFORM__DATABASE__URL" => Some("mysql://x".to_owned()),
            "KAMIYO_PLATFORM__DATABASE__APP_ROLE" => Some("x; DROP".to_owned()),
            "KAMIYO_PLATFORM__DATABASE__MAX_CONNECTIONS" => Some("many".to_owned()),
            "KAMIYO_PLATFORM__PLATFORM__PROTOCOLS" => Some("hyperliquid,Bad Id".to_owned()),
            _ => None,
        };
        let Err(problems) = Config::load(None, env) else {
            panic!("accepted")
        };
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "database.max_connections",
                "server.bind",
                "database.url",
                "database.app_role",
                "platform.protocols[1]"
            ]
        );
        assert!(Config::load(None, |_| None).is_ok());
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("database-url");
        std::fs::write(&url, "postgres://owner:pw@db.internal/kamiyo\n").unwrap();
        let path = url.display().to_string();
        let env = |k: &str| match k {
            "KAMIYO_PLATFORM__DATABASE__URL_FILE" => Some(path.clone()),
            "KAMIYO_PLATFORM__BILLING__SECRET_KEY_FILE" => Some("/nonexistent/stripe".to_owned()),
            _ => None,
        };
        let Err(problems) = Config::load(None, env) else {
            panic!("a missing secret file was accepted")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "billing.secret_key");
        assert!(
            problems[0].1.contains("/nonexistent/stripe"),
            "{problems:?}"
        );
        let env = |k: &str| (k == "KAMIYO_PLATFORM__DATABASE__URL_FILE").then(|| path.clone());
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.database.url, "postgres://owner:pw@db.internal/kamiyo");
    }
}
