//! Configuration, loaded only here: built-in defaults, then a TOML file, then environment
//! variables (`KAMIYO_<SECTION>__<KEY>`, a `.env` file honoured), then validation. Every key is
//! documented in [`KEYS`]; `docs/CONFIGURATION.md` and `deploy/config/default.toml` are generated
//! from it (a test keeps them in sync). Unknown keys and invalid values are reported with their
//! path and the expected form, all at once, and `run` refuses to start on them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kamiyo_core_models::{Address, Coin};
use kamiyo_monitors::MonitorsConfig;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerSection,
    /// Storage.
    pub database: DatabaseSection,
    /// Hyperliquid endpoints and what to watch.
    pub hyperliquid: HyperliquidSection,
    /// Reference venues.
    pub references: ReferencesSection,
    /// Detectors.
    pub monitors: MonitorsConfig,
    /// Alert channels and delivery.
    pub alerts: kamiyo_alerts::AlertsConfig,
    /// The ML anomaly model.
    pub ml: MlSection,
    /// Logs, metrics, traces.
    pub telemetry: TelemetrySection,
}

/// `[ml]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlSection {
    /// Score markets with the anomaly model.
    pub enabled: bool,
    /// Model file; empty: `<data_dir>/models/anomaly.json` when it exists.
    pub anomaly_model: String,
    /// Score from which an anomaly is high rather than medium.
    pub high_score: f64,
    /// Bar length the model scores, in seconds: 0 takes the model's training interval (recorded
    /// in the model file); any other value must equal it (a model is refused otherwise).
    pub bar_secs: u32,
    /// Record every market's closed bars of this length (seconds) in the database, the history
    /// `ml train --from-store` learns the extended features from; 0 turns recording off.
    pub record_bar_secs: u32,
    /// Raise a risk_forecast incident when the 95 % interval of the next 24 h of HLP PnL
    /// reaches this loss (USD); 0 turns the forecast detector off.
    pub forecast_loss_usd: u64,
}

impl Default for MlSection {
    fn default() -> Self {
        Self {
            enabled: true,
            anomaly_model: String::new(),
            high_score: 0.78,
            bar_secs: 0,
            record_bar_secs: 300,
            forecast_loss_usd: 1_000_000,
        }
    }
}

/// `ip:port` as is; `host:port` resolved (the first IPv4 address, else the first address):
/// `localhost:8080` binds 127.0.0.1:8080.
fn socket_addr_or_host<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    use std::net::ToSocketAddrs;
    let text = String::deserialize(d)?;
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = |why: String| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address to listen on ({why}); write ip:port or host:port, e.g. 127.0.0.1:8080, localhost:8080 or 0.0.0.0:8080"
        ))
    };
    if text
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad("no port".into()));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| bad("the name has no address".into()))
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address: `ip:port`, or `host:port` resolved at start (`localhost:8080`).
    #[serde(deserialize_with = "socket_addr_or_host")]
    pub bind: SocketAddr,
    /// Public URL of the dashboard, used in alert links.
    pub public_url: String,
    /// Directory for the embedded database and model files.
    pub data_dir: PathBuf,
    /// Origins allowed by CORS (empty: same-origin only).
    pub cors_origins: Vec<String>,
    /// Failed authentications allowed per client address and minute; 0 disables the limit.
    pub failed_auth_per_minute: u32,
    /// Host names the server answers to (empty: loopback names on a loopback bind, any host
    /// beyond loopback, where API keys are required).
    pub allowed_hosts: Vec<String>,
    /// Seconds to wait for in-flight work on shutdown.
    pub shutdown_timeout_secs: u32,
    /// API requests per minute per key (or per client address without a key); 0 disables.
    pub rate_limit_per_minute: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u32,
    /// Messages a `/ws` subscriber may fall behind before it is dropped.
    pub ws_buffer: u32,
    /// HTTP worker threads.
    pub workers: u32,
    /// Milliseconds a read endpoint's body is shared between identical requests (0 disables).
    pub response_cache_ms: u32,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("kamiyo-data"),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            failed_auth_per_minute: 30,
            shutdown_timeout_secs: 10,
            rate_limit_per_minute: 600,
            max_body_bytes: 65_536,
            ws_buffer: 4096,
            workers: 2,
            response_cache_ms: 1000,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://user:pass@host/db`; empty means the embedded SQLite file in `data_dir`.
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
    /// Days of history kept (`DATA_RETENTION_DAYS`).
    pub retention_days: u32,
    /// Per-table overrides of `retention_days`.
    pub retention_overrides: BTreeMap<String, u32>,
    /// Seconds between retention passes.
    pub retention_interval_secs: u32,
    /// Rows per write transaction on the hot path.
    pub batch_max_rows: u32,
    /// Longest a row waits before its batch is committed.
    pub batch_max_delay_ms: u32,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
            retention_days: 90,
            retention_overrides: BTreeMap::new(),
            retention_interval_secs: 300,
            batch_max_rows: 2000,
            batch_max_delay_ms: 250,
        }
    }
}

/// `[hyperliquid]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperliquidSection {
    /// REST base URL.
    pub rest_url: String,
    /// WebSocket URL.
    pub ws_url: String,
    /// Perp markets to stream.
    pub coins: Vec<Coin>,
    /// HLP parent vault.
    pub hlp_vault: Address,
    /// Addresses always polled as whales.
    pub watch: Vec<Address>,
    /// Whales polled per period.
    pub whale_count: u32,
    /// Whale polling period, seconds.
    pub whale_interval_secs: u32,
    /// `vaultDetails` polling period, seconds.
    pub vault_interval_secs: u32,
    /// HLP child `clearinghouseState` polling period, seconds.
    pub hlp_positions_interval_secs: u32,
    /// `metaAndAssetCtxs` / open-interest-cap polling period, seconds.
    pub market_interval_secs: u32,
    /// A Hyperliquid feed is STALE after this many seconds without data.
    pub stale_after_secs: u32,
    /// … and DOWN after this many.
    pub down_after_secs: u32,
    /// REST request weight per minute (Hyperliquid allows 1200 per IP).
    pub weight_per_minute: u32,
    /// `system` (wall clock) or `exchange` (the exchange's reported time; for the loopback
    /// simulator replaying the past).
    pub clock: String,
    /// Exchange-clock extrapolation speed (the simulator's speed factor).
    pub exchange_clock_speed: f64,
}

impl Default for HyperliquidSection {
    fn default() -> Self {
        Self {
            rest_url: "https://api.hyperliquid.xyz".into(),
            ws_url: "wss://api.hyperliquid.xyz/ws".into(),
            coins: ["BTC", "ETH", "SOL", "ARB", "OP", "AVAX", "POL"]
                .iter()
                .filter_map(|c| Coin::new(c).ok())
                .collect(),
            hlp_vault: MonitorsConfig::default().hlp.vault,
            watch: Vec::new(),
            whale_count: 8,
            whale_interval_secs: 30,
            vault_interval_secs: 60,
            hlp_positions_interval_secs: 30,
            market_interval_secs: 30,
            stale_after_secs: 30,
            down_after_secs: 120,
            weight_per_minute: 1200,
            clock: "system".into(),
            exchange_clock_speed: 1.0,
        }
    }
}

/// HLP's child vaults, for estimating the REST weight of polling them: seven in 2026 (the
/// docs example of Dec 2024 listed three). The poller reads the real list from the vault.
pub const HLP_CHILDREN_ESTIMATE: u32 = 7;

/// One reference venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenueSection {
    /// Use this venue.
    pub enabled: bool,
    /// REST base URL.
    pub url: String,
    /// Read the venue's ticker socket (REST stays the fallback). Only venues with a socket
    /// client (OKX, Bybit, Kraken, KuCoin, Gate).
    pub websocket: bool,
    /// The socket URL (KuCoin hands out its own over REST: unused there).
    pub ws_url: String,
}

/// `[references]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferencesSection {
    /// Polling period, seconds.
    pub interval_secs: u32,
    /// Binance spot.
    pub binance: VenueSection,
    /// OKX spot.
    pub okx: VenueSection,
    /// Bybit spot.
    pub bybit: VenueSection,
    /// Kraken spot.
    pub kraken: VenueSection,
    /// KuCoin spot.
    pub kucoin: VenueSection,
    /// Gate spot.
    pub gate: VenueSection,
    /// MEXC spot.
    pub mexc: VenueSection,
    /// Coinbase Exchange.
    pub coinbase: VenueSection,
}

impl ReferencesSection {
    /// Every venue section with its name, oracle inputs first.
    pub fn venues(&self) -> [(&'static str, &VenueSection); 8] {
        [
            ("binance", &self.binance),
            ("okx", &self.okx),
            ("bybit", &self.bybit),
            ("kraken", &self.kraken),
            ("kucoin", &self.kucoin),
            ("gate", &self.gate),
            ("mexc", &self.mexc),
            ("coinbase", &self.coinbase),
        ]
    }
}

impl Default for ReferencesSection {
    fn default() -> Self {
        Self {
            interval_secs: 5,
            binance: VenueSection {
                enabled: true,
                url: "https://api.binance.com".into(),
                websocket: false,
                ws_url: "".into(),
            },
            okx: VenueSection {
                enabled: true,
                url: "https://www.okx.com".into(),
                websocket: true,
                ws_url: "wss://ws.okx.com:8443/ws/v5/public".into(),
            },
            bybit: VenueSection {
                enabled: true,
                url: "https://api.bybit.com".into(),
                websocket: true,
                ws_url: "wss://stream.bybit.com/v5/public/spot".into(),
            },
            kraken: VenueSection {
                enabled: true,
                url: "https://api.kraken.com".into(),
                websocket: true,
                ws_url: "wss://ws.kraken.com/v2".into(),
            },
            kucoin: VenueSection {
                enabled: true,
                url: "https://api.kucoin.com".into(),
                websocket: true,
                ws_url: "".into(),
            },
            gate: VenueSection {
                enabled: true,
                url: "https://api.gateio.ws".into(),
                websocket: true,
                ws_url: "wss://api.gateio.ws/ws/v4/".into(),
            },
            mexc: VenueSection {
                enabled: true,
                url: "https://api.mexc.com".into(),
                websocket: true,
                ws_url: "wss://wbs-api.mexc.com/ws".into(),
            },
            coinbase: VenueSection {
                enabled: true,
                url: "https://api.exchange.coinbase.com".into(),
                websocket: false,
                ws_url: "".into(),
            },
        }
    }
}

impl Default for VenueSection {
    fn default() -> Self {
        Self {
            enabled: true,
            url: String::new(),
            websocket: false,
            ws_url: String::new(),
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySection {
    /// `pretty` or `json`.
    pub log_format: String,
    /// Log filter (`info`, `kamiyo=debug,info` …); `RUST_LOG` wins when set.
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces (empty: no export).
    pub otlp_endpoint: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            log_format: "pretty".into(),
            log_level: "info".into(),
            otlp_endpoint: String::new(),
        }
    }
}

/// Every key: its path and what it means. The single source of the configuration reference.
pub const KEYS: &[(&str, &str)] = &[
    (
        "server.bind",
        "Address the HTTP API, WebSocket and dashboard listen on: ip:port, or host:port resolved at start (localhost:8080). Binding beyond loopback requires API keys.",
    ),
    (
        "server.public_url",
        "Public URL of the dashboard; alert messages link to incidents under it.",
    ),
    (
        "server.data_dir",
        "Directory for the embedded SQLite database and ML model files (created with mode 0700).",
    ),
    (
        "server.cors_origins",
        "Origins allowed to call the API from a browser (empty: same-origin only). A request whose Origin is neither the server's own nor listed is refused with 403, /ws included.",
    ),
    (
        "server.failed_auth_per_minute",
        "Failed authentications allowed per client address and minute (bursts up to the same number); past it, 429 with Retry-After before any key is looked up. 0 disables.",
    ),
    (
        "server.allowed_hosts",
        "Host names (without port) requests may be addressed to; others get 421 (a DNS-rebinding page cannot reach the server under its own name). Empty: the loopback names (localhost, 127.0.0.1, [::1]) on a loopback bind, any host beyond loopback (API keys are required there). \"*\" accepts any.",
    ),
    (
        "server.shutdown_timeout_secs",
        "Seconds to wait for in-flight writes and deliveries on SIGTERM/SIGINT.",
    ),
    (
        "server.rate_limit_per_minute",
        "API requests per minute per API key (per client address without one); bursts up to the same number; 0 disables. Over budget: 429 with Retry-After.",
    ),
    (
        "server.max_body_bytes",
        "Largest request body accepted (413 above it).",
    ),
    (
        "server.ws_buffer",
        "Messages a /ws subscriber may fall behind before it is dropped with close code 1008 (it reconnects with last_event_id and misses nothing).",
    ),
    ("server.workers", "HTTP worker threads."),
    (
        "server.response_cache_ms",
        "Milliseconds a read endpoint's response is shared by identical requests (any new security event invalidates at once; live changes also arrive over /ws). 0 disables. Events, incidents, the dashboard summary, the HLP chart and `/ml/*` do not use it: they answer from read models kept in step with the store (ARCHITECTURE.md, `api::views`).",
    ),
    (
        "database.url",
        "PostgreSQL URL (postgres://user:pass@host:5432/db). Empty: embedded SQLite at <data_dir>/kamiyo.sqlite3. Also read from DATABASE_URL.",
    ),
    ("database.max_connections", "Connection pool size."),
    (
        "database.retention_days",
        "Days of history kept; older rows are deleted by a background job. Also read from DATA_RETENTION_DAYS.",
    ),
    (
        "database.retention_overrides",
        "Per-table retention in days, e.g. { deviation_samples = 30 }.",
    ),
    (
        "database.retention_interval_secs",
        "Seconds between retention passes (each deletes in small slices and never blocks ingest for long).",
    ),
    (
        "database.batch_max_rows",
        "Rows per write transaction on the hot path: a batch commits when it holds this many rows or when batch_max_delay_ms has passed.",
    ),
    (
        "database.batch_max_delay_ms",
        "Longest a row waits before its batch commits, in milliseconds. Ingest cursors commit in the same transaction, so a restart resumes exactly where the last commit ended.",
    ),
    (
        "hyperliquid.rest_url",
        "Hyperliquid REST base URL (the loopback simulator's URL for offline runs).",
    ),
    ("hyperliquid.ws_url", "Hyperliquid WebSocket URL."),
    (
        "hyperliquid.coins",
        "Perp markets to stream trades and asset contexts for.",
    ),
    (
        "hyperliquid.hlp_vault",
        "The HLP parent vault; its children are discovered at start from relationship.data.childAddresses.",
    ),
    (
        "hyperliquid.watch",
        "Addresses always polled as whales (positions and ledger).",
    ),
    (
        "hyperliquid.whale_count",
        "Whales polled per period (pinned addresses first, then the top traders by recent notional).",
    ),
    ("hyperliquid.whale_interval_secs", "Whale polling period."),
    (
        "hyperliquid.vault_interval_secs",
        "HLP vaultDetails polling period.",
    ),
    (
        "hyperliquid.hlp_positions_interval_secs",
        "HLP child clearinghouseState polling period.",
    ),
    (
        "hyperliquid.market_interval_secs",
        "metaAndAssetCtxs and perpsAtOpenInterestCap polling period.",
    ),
    (
        "hyperliquid.stale_after_secs",
        "A Hyperliquid feed is STALE after this long without data.",
    ),
    (
        "hyperliquid.down_after_secs",
        "A Hyperliquid feed is DOWN after this long without data.",
    ),
    (
        "hyperliquid.weight_per_minute",
        "Client-side REST budget in request weight per minute (Hyperliquid allows 1200 per IP). `config check` and the start-up log warn when the configured polls need more (the defaults need about 480).",
    ),
    (
        "hyperliquid.clock",
        "Time base: system (wall clock) or exchange (the exchange's reported time, extrapolated; use with the loopback simulator replaying the past).",
    ),
    (
        "hyperliquid.exchange_clock_speed",
        "Speed of the exchange clock between reports (set to the simulator's --speed).",
    ),
    (
        "references.interval_secs",
        "Reference-venue polling period.",
    ),
    (
        "references.binance.enabled",
        "Use Binance spot as a reference venue (an oracle input, weight 3).",
    ),
    ("references.binance.url", "Binance spot REST base URL."),
    (
        "references.binance.websocket",
        "Must stay false: Binance spot is polled over REST (no socket client).",
    ),
    ("references.binance.ws_url", "Unused for Binance spot."),
    (
        "references.okx.enabled",
        "Use OKX spot as a reference venue (an oracle input, weight 2).",
    ),
    ("references.okx.url", "OKX spot REST base URL."),
    (
        "references.okx.websocket",
        "Read OKX spot's ticker socket; REST answers only for what the socket has not refreshed in 10 s.",
    ),
    ("references.okx.ws_url", "OKX spot ticker socket URL."),
    (
        "references.bybit.enabled",
        "Use Bybit spot as a reference venue (an oracle input, weight 2).",
    ),
    ("references.bybit.url", "Bybit spot REST base URL."),
    (
        "references.bybit.websocket",
        "Read Bybit spot's ticker socket; REST answers only for what the socket has not refreshed in 10 s.",
    ),
    ("references.bybit.ws_url", "Bybit spot ticker socket URL."),
    (
        "references.kraken.enabled",
        "Use Kraken spot as a reference venue (an oracle input, weight 1).",
    ),
    ("references.kraken.url", "Kraken spot REST base URL."),
    (
        "references.kraken.websocket",
        "Read Kraken spot's ticker socket; REST answers only for what the socket has not refreshed in 10 s.",
    ),
    ("references.kraken.ws_url", "Kraken spot ticker socket URL."),
    (
        "references.kucoin.enabled",
        "Use KuCoin spot as a reference venue (an oracle input, weight 1).",
    ),
    ("references.kucoin.url", "KuCoin spot REST base URL."),
    (
        "references.kucoin.websocket",
        "Read KuCoin spot's ticker socket; REST answers only for what the socket has not refreshed in 10 s.",
    ),
    (
        "references.kucoin.ws_url",
        "Its ticker socket URL (unused: KuCoin hands out the URL from POST /api/v1/bullet-public).",
    ),
    (
        "references.gate.enabled",
        "Use Gate spot as a reference venue (an oracle input, weight 1).",
    ),
    ("references.gate.url", "Gate spot REST base URL."),
    (
        "references.gate.websocket",
        "Read Gate spot's ticker socket; REST answers only for what the socket has not refreshed in 10 s.",
    ),
    ("references.gate.ws_url", "Gate spot ticker socket URL."),
    (
        "references.mexc.enabled",
        "Use MEXC spot as a reference venue (an oracle input, weight 1).",
    ),
    ("references.mexc.url", "MEXC spot REST base URL."),
    (
        "references.mexc.websocket",
        "Read MEXC spot's best bid/ask socket (binary protobuf pushes); REST answers only for what the socket has not refreshed in 10 s.",
    ),
    ("references.mexc.ws_url", "MEXC spot socket URL."),
    (
        "references.coinbase.enabled",
        "Use Coinbase Exchange as a reference venue (an independent USD reference, not an oracle input).",
    ),
    (
        "references.coinbase.url",
        "Coinbase Exchange REST base URL.",
    ),
    (
        "references.coinbase.websocket",
        "Must stay false: Coinbase Exchange is polled over REST (no socket client).",
    ),
    (
        "references.coinbase.ws_url",
        "Unused for Coinbase Exchange.",
    ),
    (
        "monitors.incidents.resolve_after_secs",
        "An incident resolves after this long without a detection. Every polling period (vault, HLP children, whales, markets, reference venues; in exchange time on the exchange clock) must fit into it twice, or incidents fed by a poll would resolve between polls.",
    ),
    (
        "monitors.incidents.update_interval_secs",
        "At most one 'updated' message per incident per this interval (escalations are immediate).",
    ),
    (
        "monitors.hlp.vault",
        "HLP parent vault watched by the HLP detector.",
    ),
    (
        "monitors.hlp.children",
        "HLP child vaults (exposure); discovered children are added at run time.",
    ),
    (
        "monitors.hlp.liquidators",
        "Liquidator vaults among the children (stress, backstop fills).",
    ),
    (
        "monitors.hlp.loss_high_usd",
        "24 h PnL loss of HLP that is high.",
    ),
    (
        "monitors.hlp.loss_critical_usd",
        "24 h PnL loss of HLP that is critical.",
    ),
    (
        "monitors.hlp.drawdown_high_pct",
        "PnL drawdown from its peak, in percent of account value, that is high.",
    ),
    (
        "monitors.hlp.sigma",
        "Sigma threshold of the HLP return anomaly.",
    ),
    (
        "monitors.hlp.min_samples",
        "Return samples needed before the anomaly rule runs.",
    ),
    (
        "monitors.hlp.return_bucket_secs",
        "Bucket of the HLP return series.",
    ),
    (
        "monitors.hlp.exposure_high_oi_pct",
        "A child position worth this share of the market's open interest is high.",
    ),
    (
        "monitors.hlp.exposure_critical_oi_pct",
        "… and this share is critical.",
    ),
    (
        "monitors.hlp.exposure_min_usd",
        "Child positions below this notional are ignored.",
    ),
    (
        "monitors.hlp.liquidator_loss_high_pct",
        "Liquidator loss (unrealised + 24 h realised) as a share of its capital that is high.",
    ),
    (
        "monitors.hlp.liquidator_loss_critical_pct",
        "… that is critical (ADL trigger approaching).",
    ),
    (
        "monitors.oracle.warn_pct",
        "Oracle/mark deviation (absolute percent) that is high once sustained.",
    ),
    (
        "monitors.oracle.critical_pct",
        "Deviation that is critical once sustained.",
    ),
    (
        "monitors.oracle.sustain_secs",
        "How long a deviation must hold before it fires.",
    ),
    (
        "monitors.oracle.assets",
        "Per-asset overrides: [monitors.oracle.assets.HYPE] warn_pct = \"1.5\" …",
    ),
    (
        "monitors.oracle.reference_max_age_secs",
        "Reference quotes older than this are stale and left out of the median.",
    ),
    (
        "monitors.oracle.check_mid",
        "Also compare the book mid (not only the mark) with the oracle.",
    ),
    (
        "monitors.venues.split_pct",
        "Reference venues split into two groups at least this far apart (percent) open a venue_disagreement incident naming the group presumed dislocated (the one with fewer venues; on a tie the one without an independent reference such as Coinbase, then the lighter one): high, critical when its oracle weight can move the oracle's weighted median, medium when only independent venues moved.",
    ),
    (
        "monitors.venues.sustain_secs",
        "How long the split must hold.",
    ),
    (
        "monitors.venues.max_skew_secs",
        "Reference quotes count — in the reference median and in venue comparisons — only when at most this much older than the market's newest quote (a venue quoting per candle in a replay is compared at its own closes, never by its age).",
    ),
    (
        "monitors.liquidations.large_usd",
        "Liquidated notional in one market within large_window_secs that is high.",
    ),
    (
        "monitors.liquidations.large_critical_usd",
        "… that is critical (also: a single backstop fill of this size).",
    ),
    (
        "monitors.liquidations.large_window_secs",
        "Window of the large-liquidation rule.",
    ),
    (
        "monitors.liquidations.cascade_count",
        "Liquidations in one market within cascade_window_secs that form a cascade (high).",
    ),
    (
        "monitors.liquidations.cascade_critical_count",
        "A cascade with this many liquidations is critical.",
    ),
    (
        "monitors.liquidations.cascade_critical_usd",
        "A cascade with this much notional is critical.",
    ),
    (
        "monitors.liquidations.cascade_window_secs",
        "Window of the cascade rule.",
    ),
    (
        "monitors.liquidations.coordinated_count",
        "One account liquidated this many times …",
    ),
    (
        "monitors.liquidations.coordinated_usd",
        "… for at least this notional is coordinated (high).",
    ),
    (
        "monitors.liquidations.coordinated_window_secs",
        "Window of the coordinated rule.",
    ),
    (
        "monitors.liquidations.market_windows",
        "Market-wide cascade windows, e.g. [{ secs = 60, high = { liquidations = 100, notional_usd = \"20000000\", coins = 5 }, critical = { … } }]: a window reaches a level when its liquidation count, notional and number of markets all reach that level's minimums. One incident for the cascade; the per-market liquidation incidents are grouped under it and not alerted separately. [] disables the rule.",
    ),
    (
        "monitors.thin_market.window_secs",
        "Look-back of the price-move rule.",
    ),
    (
        "monitors.thin_market.move_high_pct",
        "Mark move within the window that is high on a thin market.",
    ),
    (
        "monitors.thin_market.move_critical_pct",
        "Mark move that is critical on a thin market.",
    ),
    (
        "monitors.thin_market.thin_volume_usd",
        "A market is thin below this 24 h notional volume …",
    ),
    (
        "monitors.thin_market.thin_oi_to_volume",
        "… or when open interest exceeds this multiple of its 24 h volume.",
    ),
    (
        "monitors.thin_market.any_market_critical_pct",
        "Mark move that is critical on any market, however deep.",
    ),
    (
        "monitors.thin_market.wall_multiple",
        "A book level worth this multiple of its side's median level is a wall …",
    ),
    (
        "monitors.thin_market.wall_min_usd",
        "… if it is also worth at least this notional.",
    ),
    (
        "monitors.thin_market.wall_pull_secs",
        "A wall pulled within this long after appearing is suspicious (high).",
    ),
    (
        "monitors.whales.min_notional_usd",
        "Positions below this notional are not whales.",
    ),
    (
        "monitors.whales.huge_notional_usd",
        "Positions above this notional get one severity level more.",
    ),
    (
        "monitors.whales.medium_pct",
        "Distance to liquidation (percent of mark) that is medium.",
    ),
    (
        "monitors.whales.high_pct",
        "Distance to liquidation that is high.",
    ),
    (
        "monitors.whales.critical_pct",
        "Distance to liquidation that is critical.",
    ),
    (
        "monitors.whales.withdrawal_window_secs",
        "A withdrawal by the same account within this long raises the severity one level.",
    ),
    (
        "monitors.feeds.enabled",
        "Report stale and down feeds as incidents.",
    ),
    (
        "alerts.enabled",
        "Deliver alerts to the configured channels (the outbox and delivery log are kept either way).",
    ),
    (
        "alerts.cooldown_secs",
        "An incident key that re-opens within this many seconds of its last alert, at the same or a lower severity, is not alerted again (recorded as suppressed); escalations always go out.",
    ),
    (
        "alerts.group_interval_secs",
        "Incidents on the same market share one notification thread per channel (Alertmanager's group_by asset): after the first, the others are reported in group updates at most this often, at once when they raise the thread's severity or its first incident resolves. 0 alerts each incident on its own.",
    ),
    (
        "alerts.max_attempts",
        "Delivery attempts before an alert is recorded as failed (4xx other than 429 fail at once).",
    ),
    (
        "alerts.initial_backoff_ms",
        "First retry delay; doubles per attempt with ±25 % jitter.",
    ),
    ("alerts.max_backoff_secs", "Longest retry delay."),
    (
        "alerts.channels",
        "Channels by name: [alerts.channels.ops] kind = \"discord\" | \"slack\" | \"telegram\" | \"sendgrid\" | \"smtp\" | \"webhook\" | \"pagerduty\" | \"opsgenie\", with url / secret / bot_token + chat_id / api_key + from + to / host + port + security + username + password / api_key (pagerduty routing key, opsgenie key), and filters min_severity, threat_types, assets, changes, rate. See docs/ALERTS.md.",
    ),
    (
        "ml.enabled",
        "Score every market's bars with the Isolation Forest (when a model file is present) and raise ml_anomaly incidents.",
    ),
    (
        "ml.anomaly_model",
        "Model file written by `kamiyo-hyperliquid ml train`; empty: <data_dir>/models/anomaly.json when it exists. A model built for another feature set is refused and the server does not start.",
    ),
    (
        "ml.high_score",
        "Anomaly score from which the detection is high rather than medium (the model's own threshold makes it medium).",
    ),
    (
        "ml.forecast_loss_usd",
        "Hourly ARIMA forecast of HLP PnL: a risk_forecast incident (high; critical when the point forecast itself) when the 95 % interval of the next 24 h change reaches this loss in USD. 0 disables.",
    ),
    (
        "ml.record_bar_secs",
        "Record every market's closed bars of this many seconds (prices, volume, funding, outside reference, open interest, liquidation notional, HLP) in the database while storing, for `ml train --from-store`; 0 disables. Measured ~125 bytes per bar on SQLite (calm-fortnight replay: 20,112 bars, 2.5 MB); 200 markets at 300 s is ~57,600 bars, roughly 7-10 MB a day before retention (database.retention_overrides.market_bars).",
    ),
    (
        "ml.bar_secs",
        "Bar length scored, in seconds. 0 (the default) takes the model's training interval from its file; any other value must equal it, or the model is refused (a guard for deployments that pin the interval).",
    ),
    (
        "telemetry.log_format",
        "Log format: pretty (terminal) or json.",
    ),
    (
        "telemetry.log_level",
        "Log filter, e.g. info or kamiyo=debug,info; RUST_LOG wins when set.",
    ),
    (
        "telemetry.otlp_endpoint",
        "OTLP/HTTP endpoint for traces, e.g. http://127.0.0.1:4318 (empty: no export).",
    ),
];

/// Keys whose value is a free-form table (their sub-keys are data, not configuration keys).
const OPEN_TABLES: &[&str] = &[
    "database.retention_overrides",
    "monitors.oracle.assets",
    "alerts.channels",
];

/// Keys whose value must never be logged.
pub const SECRET_KEYS: &[&str] = &["database.url"];

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path.
    pub path: String,
    /// Where the value came from (file, environment variable).
    pub origin: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.path, self.origin, self.message)
    }
}

/// Where the layers come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables (name → value), already including `.env`.
    pub env: BTreeMap<String, String>,
}

impl Sources {
    /// The process environment plus `.env` (process variables win), and the file named by
    /// `--config`, `KAMIYO_CONFIG`, or `./kamiyo.toml` when it exists.
    pub fn from_process(config_arg: Option<&Path>) -> Self {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        if let Ok(iter) = dotenvy::from_path_iter(".env") {
            for (k, v) in iter.flatten() {
                env.insert(k, v);
            }
        }
        env.extend(std::env::vars());
        let file = config_arg
            .map(Path::to_path_buf)
            .or_else(|| env.get("KAMIYO_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from("kamiyo.toml");
                p.is_file().then_some(p)
            });
        Self { file, env }
    }
}

fn leaf_paths(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) if !OPEN_TABLES.contains(&prefix) => {
            for (k, x) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(x, &p, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge(bv, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn set_path(root: &mut toml::Value, path: &str, value: toml::Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Some(t) = cur.as_table_mut() else { return };
        if i + 1 == parts.len() {
            t.insert((*p).to_owned(), value);
            return;
        }
        cur = t
            .entry((*p).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::map::Map::new()));
    }
}

/// Parses an environment value: a TOML value when it is one (numbers, booleans, arrays),
/// else a string.
fn env_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    if matches!(default, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn remove_path(root: &mut toml::Value, path: &str) {
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
    let target = if parent.is_empty() {
        Some(root)
    } else {
        parent.split('.').try_fold(root, |cur, p| cur.get_mut(p))
    };
    if let Some(t) = target.and_then(toml::Value::as_table_mut) {
        t.remove(last);
    }
}

/// True for a key path that no configuration key (nor an open table) covers.
fn problems_unknown(known: &[String], l: &str) -> bool {
    let open = OPEN_TABLES
        .iter()
        .any(|o| l.starts_with(&format!("{o}.")) || l == *o);
    !open && !known.iter().any(|k| k == l)
}

/// Reads one section of `root`; on failure the full key path of the value and the message.
fn deserialize_section(root: &toml::Value, section: &str) -> Result<(), (String, String)> {
    let Some(v) = root.get(section) else {
        return Ok(());
    };
    macro_rules! try_section {
        ($t:ty) => {
            serde_path_to_error::deserialize::<_, $t>(v.clone())
                .map(drop)
                .map_err(|e| (format!("{section}.{}", e.path()), e.inner().to_string()))
        };
    }
    match section {
        "server" => try_section!(ServerSection),
        "database" => try_section!(DatabaseSection),
        "hyperliquid" => try_section!(HyperliquidSection),
        "references" => try_section!(ReferencesSection),
        "monitors" => try_section!(MonitorsConfig),
        "alerts" => try_section!(kamiyo_alerts::AlertsConfig),
        "ml" => try_section!(MlSection),
        "telemetry" => try_section!(TelemetrySection),
        _ => Ok(()),
    }
}

fn lookup<'a>(v: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    path.split('.').try_fold(v, |cur, p| cur.get(p))
}

/// Loads and validates. `Err` holds every problem found.
pub fn load(sources: &Sources) -> Result<Config, Vec<ConfigProblem>> {
    let defaults = toml::Value::try_from(Config::default())
        .unwrap_or(toml::Value::Table(toml::map::Map::new()));
    let mut known = Vec::new();
    leaf_paths(&defaults, "", &mut known);
    let mut problems = Vec::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut merged = defaults.clone();

    if let Some(path) = &sources.file {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Err(e) => problems.push(ConfigProblem {
                path: "(file)".into(),
                origin: name.clone(),
                message: format!("cannot read: {e}"),
            }),
            Ok(text) => match toml::from_str::<toml::Value>(&text) {
                Err(e) => problems.push(ConfigProblem {
                    path: "(file)".into(),
                    origin: name.clone(),
                    message: format!("not valid TOML: {e}"),
                }),
                Ok(v) => {
                    let mut leaves = Vec::new();
                    leaf_paths(&v, "", &mut leaves);
                    for l in leaves {
                        origin.insert(l, name.clone());
                    }
                    merge(&mut merged, v);
                }
            },
        }
    }

    // Environment: KAMIYO_SECTION__KEY (double underscore between levels), plus the documented
    // aliases.
    for (k, raw) in &sources.env {
        let path = if k == "DATABASE_URL" {
            Some("database.url".to_owned())
        } else if k == "DATA_RETENTION_DAYS" {
            Some("database.retention_days".to_owned())
        } else if k == "KAMIYO_BIND" {
            Some("server.bind".to_owned())
        } else {
            k.strip_prefix("KAMIYO_")
                .filter(|r| r.contains("__"))
                .map(|rest| rest.to_ascii_lowercase().replace("__", "."))
        };
        let Some(path) = path else { continue };
        let v = env_value(raw, lookup(&defaults, &path));
        origin.insert(path.clone(), format!("environment variable {k}"));
        set_path(&mut merged, &path, v);
    }

    // Unknown keys, by path.
    let mut leaves = Vec::new();
    leaf_paths(&merged, "", &mut leaves);
    for l in &leaves {
        let open = OPEN_TABLES
            .iter()
            .any(|o| l.starts_with(&format!("{o}.")) || l == o);
        if !open && !known.contains(l) {
            let expected: Vec<&str> = known
                .iter()
                .map(String::as_str)
                .filter(|k| k.rsplit_once('.').map(|x| x.0) == l.rsplit_once('.').map(|x| x.0))
                .collect();
            problems.push(ConfigProblem {
                path: l.clone(),
                origin: origin
                    .get(l)
                    .cloned()
                    .unwrap_or_else(|| "configuration".into()),
                message: if expected.is_empty() {
                    "unknown key".into()
                } else {
                    format!("unknown key; keys here are: {}", expected.join(", "))
                },
            });
        }
    }
    let Some(_) = merged.as_table() else {
        problems.push(ConfigProblem {
            path: "(root)".into(),
            origin: "configuration".into(),
            message: "not a table".into(),
        });
        return Err(problems);
    };
    let origin_of = |path: &str| {
        origin
            .get(path)
            .cloned()
            .unwrap_or_else(|| "configuration".into())
    };
    // Numbers must be finite wherever they are read (TOML allows nan and inf).
    let mut bad: Vec<String> = Vec::new();
    for l in &leaves {
        if let Some(toml::Value::Float(f)) = lookup(&merged, l)
            && !f.is_finite()
        {
            problems.push(ConfigProblem {
                path: l.clone(),
                origin: origin_of(l),
                message: format!("{f} is not a finite number"),
            });
            bad.push(l.clone());
        }
    }
    // Types, value by value: each value given is tried alone on top of the defaults, so every
    // bad value is reported with its full key path — in flattened sections too, and next to
    // unknown keys — and the rest is still checked.
    let is_unknown = |l: &str| problems_unknown(&known, l);
    let sections: [&str; 8] = [
        "server",
        "database",
        "hyperliquid",
        "references",
        "monitors",
        "alerts",
        "ml",
        "telemetry",
    ];
    for l in leaves.iter().filter(|l| origin.contains_key(*l)) {
        if is_unknown(l) || bad.contains(l) {
            continue;
        }
        let Some(section) = l.split('.').next().filter(|s| sections.contains(s)) else {
            continue;
        };
        let Some(value) = lookup(&merged, l).cloned() else {
            continue;
        };
        let mut candidate = defaults.clone();
        set_path(&mut candidate, l, value);
        if let Err((path, msg)) = deserialize_section(&candidate, section) {
            let path = if path.starts_with(l.as_str()) {
                path
            } else {
                l.clone()
            };
            let expected = KEYS
                .iter()
                .find(|(k, _)| *k == path)
                .map_or(String::new(), |(_, d)| format!(" — {d}"));
            problems.push(ConfigProblem {
                origin: origin_of(l),
                path,
                message: format!("{msg}{expected}"),
            });
            bad.push(l.clone());
        }
    }
    // Everything else, with the bad and unknown values left at their defaults, is read and
    // checked for meaning.
    let mut good = merged.clone();
    for l in leaves.iter().filter(|l| bad.contains(l) || is_unknown(l)) {
        match lookup(&defaults, l) {
            Some(d) => set_path(&mut good, l, d.clone()),
            None => remove_path(&mut good, l),
        }
    }
    let cfg = match Config::deserialize(good) {
        Ok(c) => c,
        Err(e) => {
            problems.push(ConfigProblem {
                path: "(configuration)".into(),
                origin: "configuration".into(),
                message: e.to_string(),
            });
            return Err(problems);
        }
    };
    problems.extend(cfg.validate().into_iter().map(|(path, message)| {
        ConfigProblem {
            origin: origin
                .get(&path)
                .cloned()
                .unwrap_or_else(|| "configuration".into()),
            path,
            message,
        }
    }));
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

impl Config {
    /// Semantic checks, as (path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Err(e) = self.monitors.validate("monitors") {
            p.push((e.key, e.reason));
        }
        let url_ok = |u: &str, schemes: &[&str]| schemes.iter().any(|s| u.starts_with(s));
        if !url_ok(&self.hyperliquid.rest_url, &["http://", "https://"]) {
            p.push((
                "hyperliquid.rest_url".into(),
                "expected an http:// or https:// URL".into(),
            ));
        }
        if !url_ok(&self.hyperliquid.ws_url, &["ws://", "wss://"]) {
            p.push((
                "hyperliquid.ws_url".into(),
                "expected a ws:// or wss:// URL".into(),
            ));
        }
        for (name, v) in self.references.venues() {
            if v.enabled && !url_ok(&v.url, &["http://", "https://"]) {
                p.push((
                    format!("references.{name}.url"),
                    "expected an http:// or https:// URL".into(),
                ));
            }
            let has_socket = ["okx", "bybit", "kraken", "kucoin", "gate", "mexc"].contains(&name);
            if v.websocket && !has_socket {
                p.push((
                    format!("references.{name}.websocket"),
                    format!("{name} has no socket client; it is polled over REST"),
                ));
            }
            if v.enabled
                && v.websocket
                && name != "kucoin"
                && !url_ok(&v.ws_url, &["ws://", "wss://"])
            {
                p.push((
                    format!("references.{name}.ws_url"),
                    "expected a ws:// or wss:// URL".into(),
                ));
            }
        }
        if self.hyperliquid.coins.is_empty() {
            p.push((
                "hyperliquid.coins".into(),
                "list at least one perp market".into(),
            ));
        }
        if !self.database.url.is_empty()
            && !url_ok(&self.database.url, &["postgres://", "postgresql://"])
        {
            p.push((
                "database.url".into(),
                "expected postgres://… (or empty for the embedded SQLite database)".into(),
            ));
        }
        if self.database.max_connections == 0 {
            p.push((
                "database.max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        for (key, ok) in [
            ("server.workers", (1..=64).contains(&self.server.workers)),
            (
                "server.response_cache_ms",
                self.server.response_cache_ms <= 60_000,
            ),
            (
                "server.ws_buffer",
                (16..=1_000_000).contains(&self.server.ws_buffer),
            ),
            (
                "server.max_body_bytes",
                (1024..=16_777_216).contains(&self.server.max_body_bytes),
            ),
            (
                "database.batch_max_rows",
                (1..=100_000).contains(&self.database.batch_max_rows),
            ),
            (
                "database.batch_max_delay_ms",
                (1..=60_000).contains(&self.database.batch_max_delay_ms),
            ),
            (
                "database.retention_interval_secs",
                self.database.retention_interval_secs >= 1,
            ),
        ] {
            if !ok {
                p.push((
                    key.into(),
                    "out of range (see docs/CONFIGURATION.md)".into(),
                ));
            }
        }
        for (table, days) in &self.database.retention_overrides {
            if !kamiyo_store::retention::TABLES.contains(&table.as_str()) {
                p.push((
                    format!("database.retention_overrides.{table}"),
                    format!(
                        "unknown table; expected one of {}",
                        kamiyo_store::retention::TABLES.join(", ")
                    ),
                ));
            } else if *days == 0 {
                p.push((
                    format!("database.retention_overrides.{table}"),
                    "must be at least 1 day".into(),
                ));
            }
        }
        if self.database.retention_days == 0 {
            p.push((
                "database.retention_days".into(),
                "must be at least 1 day".into(),
            ));
        }
        for (path, message) in self.alerts.problems() {
            p.push((format!("alerts.{path}"), message));
        }
        if !matches!(self.telemetry.log_format.as_str(), "pretty" | "json") {
            p.push((
                "telemetry.log_format".into(),
                "expected pretty or json".into(),
            ));
        }
        if self.hyperliquid.weight_per_minute == 0 || self.hyperliquid.weight_per_minute > 1200 {
            p.push((
                "hyperliquid.weight_per_minute".into(),
                "expected 1..=1200 (Hyperliquid's per-IP limit)".into(),
            ));
        }
        if !matches!(self.hyperliquid.clock.as_str(), "system" | "exchange") {
            p.push((
                "hyperliquid.clock".into(),
                "expected system or exchange".into(),
            ));
        }
        if !(self.hyperliquid.exchange_clock_speed > 0.0
            && self.hyperliquid.exchange_clock_speed.is_finite())
        {
            p.push((
                "hyperliquid.exchange_clock_speed".into(),
                "expected a positive number".into(),
            ));
        }
        if self.references.interval_secs == 0 {
            p.push((
                "references.interval_secs".into(),
                "must be at least 1".into(),
            ));
        }
        p.extend(self.polls_outlast_quiet_period());
        // Anomaly scores are in (0, 1]; NaN compares false with everything, so it must be
        // refused by name or it would silently disable the high level.
        if !(self.ml.high_score.is_finite()
            && self.ml.high_score > 0.0
            && self.ml.high_score <= 1.0)
        {
            p.push((
                "ml.high_score".into(),
                "expected a number in (0, 1] (not NaN or infinite)".into(),
            ));
        }
        p
    }

    /// The REST weight the configured polls spend a minute in steady state, by poller —
    /// Hyperliquid's documented weights (`budget::request_weight`), the watched HLP vault's
    /// children counted as [`HLP_CHILDREN_ESTIMATE`] (they are read from the vault at start),
    /// ledger pages as one page a poll. On the exchange clock the periods are wall time, as
    /// the budget is.
    pub fn rest_weight_per_minute(&self) -> Vec<(&'static str, u32)> {
        use kamiyo_aggregators::hyperliquid::budget::request_weight;
        let h = &self.hyperliquid;
        let per_minute = |weight: u32, secs: u32| weight.saturating_mul(60) / secs.max(1);
        vec![
            (
                "vaultDetails (vault_interval_secs)",
                per_minute(request_weight("vaultDetails"), h.vault_interval_secs),
            ),
            (
                "clearinghouseState of HLP's children (hlp_positions_interval_secs)",
                per_minute(
                    request_weight("clearinghouseState") * HLP_CHILDREN_ESTIMATE,
                    h.hlp_positions_interval_secs,
                ),
            ),
            (
                "metaAndAssetCtxs and perpsAtOpenInterestCap (market_interval_secs)",
                per_minute(
                    request_weight("metaAndAssetCtxs") + request_weight("perpsAtOpenInterestCap"),
                    h.market_interval_secs,
                ),
            ),
            (
                "clearinghouseState and ledger of each whale (whale_count, whale_interval_secs)",
                per_minute(
                    (request_weight("clearinghouseState")
                        + request_weight("userNonFundingLedgerUpdates"))
                    .saturating_mul(h.whale_count),
                    h.whale_interval_secs,
                ),
            ),
        ]
    }

    /// What is valid but will not work as well as it could: the polls spending more REST
    /// weight a minute than `hyperliquid.weight_per_minute` allows (the budget then refuses
    /// some of them, and the REST feed is reported down while it does). Logged at start and
    /// printed by `config check`.
    pub fn warnings(&self) -> Vec<String> {
        let parts = self.rest_weight_per_minute();
        let total: u32 = parts.iter().map(|(_, w)| *w).sum();
        let budget = self.hyperliquid.weight_per_minute;
        if total <= budget {
            return Vec::new();
        }
        let detail: Vec<String> = parts
            .iter()
            .map(|(what, w)| format!("{w} {what}"))
            .collect();
        vec![format!(
            "the Hyperliquid polls need about {total} REST weight a minute ({}), more than \
             hyperliquid.weight_per_minute ({budget}): some polls will be refused and the REST \
             feed reported down while they are; poll less often or fewer whales",
            detail.join(", ")
        )]
    }

    /// An incident whose evidence comes from a poll (the vault, HLP's children, whales, open
    /// interest caps, reference venues) is seen again at each poll while its condition holds,
    /// and resolves after `monitors.incidents.resolve_after_secs` without being seen. A poll
    /// slower than half that period would let it resolve between two polls that both show it,
    /// and open it again at the next: each poll period must fit twice into the quiet period,
    /// so one late or failed poll does not end an incident. Periods count in exchange time
    /// (scaled by `exchange_clock_speed` on the exchange clock).
    fn polls_outlast_quiet_period(&self) -> Vec<(String, String)> {
        let h = &self.hyperliquid;
        let speed = if h.clock == "exchange" {
            h.exchange_clock_speed
        } else {
            1.0
        };
        let quiet = f64::from(self.monitors.incidents.resolve_after_secs);
        [
            ("hyperliquid.vault_interval_secs", h.vault_interval_secs),
            (
                "hyperliquid.hlp_positions_interval_secs",
                h.hlp_positions_interval_secs,
            ),
            ("hyperliquid.whale_interval_secs", h.whale_interval_secs),
            ("hyperliquid.market_interval_secs", h.market_interval_secs),
            ("references.interval_secs", self.references.interval_secs),
        ]
        .into_iter()
        .filter(|(_, secs)| f64::from(*secs) * speed * 2.0 > quiet)
        .map(|(key, secs)| {
            let scaled = if speed == 1.0 {
                String::new()
            } else {
                format!(
                    " ({} s of exchange time at speed {speed})",
                    f64::from(secs) * speed
                )
            };
            (
                key.to_owned(),
                format!(
                    "a poll every {secs} s{scaled} is more than half of \
                     monitors.incidents.resolve_after_secs ({quiet} s): incidents it feeds would \
                     resolve between two polls that both show them; poll more often or raise \
                     the quiet period"
                ),
            )
        })
        .collect()
    }

    /// The configuration as TOML with secrets masked (for logs and `config show`).
    pub fn redacted_toml(&self) -> String {
        let mut v =
            toml::Value::try_from(self).unwrap_or(toml::Value::Table(toml::map::Map::new()));
        for k in SECRET_KEYS {
            let secret = lookup(&v, k)
                .and_then(toml::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(redact_url);
            if let Some(r) = secret {
                set_path(&mut v, k, toml::Value::String(r));
            }
        }
        toml::to_string_pretty(&v).unwrap_or_default()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(a)) if a > s => {
            let creds = &u[s + 3..a];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &u[..s + 3], user, &u[a..])
        }
        _ => u.to_owned(),
    }
}

fn default_value_text(path: &str) -> String {
    let defaults = toml::Value::try_from(Config::default())
        .unwrap_or(toml::Value::Table(toml::map::Map::new()));
    match lookup(&defaults, path) {
        Some(toml::Value::Table(t)) if t.is_empty() => "{}".into(),
        // An array of tables (the market-wide cascade windows) is written inline, one line.
        Some(v @ toml::Value::Array(a)) if a.iter().any(toml::Value::is_table) => v.to_string(),
        Some(v) => {
            let mut t = toml::map::Map::new();
            t.insert("v".into(), v.clone());
            toml::to_string(&toml::Value::Table(t))
                .unwrap_or_default()
                .trim()
                .trim_start_matches("v = ")
                .to_owned()
        }
        None => String::new(),
    }
}

/// `deploy/config/default.toml`: every key with its default and description.
pub fn render_default_toml() -> String {
    let mut s = String::from(
        "# kamiyo-hyperliquid configuration: every key with its default.\n# Generated by `kamiyo-hyperliquid config default`. To configure a server, copy it (for example to\n# kamiyo.toml), keep the keys you change and delete the rest. The copy in the repository,\n# deploy/config/default.toml, is regenerated by a test: change the defaults in the code, not there.\n# Environment variables override the file: KAMIYO_<SECTION>__<KEY>, e.g. KAMIYO_HYPERLIQUID__REST_URL.\n",
    );
    let mut section = String::new();
    for (path, doc) in KEYS {
        let (sec, key) = path.rsplit_once('.').unwrap_or(("", path));
        if sec != section {
            let _ = write!(s, "\n[{sec}]\n");
            section = sec.to_owned();
        }
        let _ = writeln!(s, "# {doc}");
        let v = default_value_text(path);
        if v.is_empty() || v == "{}" {
            let _ = writeln!(s, "# {key} = {{}}");
        } else {
            let _ = writeln!(s, "{key} = {v}");
        }
    }
    s
}

/// `docs/CONFIGURATION.md`.
pub fn render_markdown() -> String {
    let mut s = String::from(
        "# Configuration\n\nGenerated from `crates/server/src/config.rs` by `kamiyo-hyperliquid config docs` (a test keeps it in sync).\n\nLayers, later ones winning: built-in defaults → a TOML file (`--config FILE`, `KAMIYO_CONFIG`, or `./kamiyo.toml` when present) → environment variables `KAMIYO_<SECTION>__<KEY>` (for example `KAMIYO_HYPERLIQUID__REST_URL=http://127.0.0.1:9010`; nested sections join with `__`: `KAMIYO_MONITORS__ORACLE__WARN_PCT=0.8`), plus `DATABASE_URL`, `DATA_RETENTION_DAYS` and `KAMIYO_BIND`. A `.env` file in the working directory is read too (process variables win).\n\n`kamiyo-hyperliquid config check` reports every unknown key and invalid value with its path and the expected form; `run` refuses to start on them — among them a polling period that does not fit twice into `monitors.incidents.resolve_after_secs`, which would let incidents resolve between two polls that both show them. It also warns, as `run` does at start, when the configured polls need more REST weight a minute than `hyperliquid.weight_per_minute`. Secrets (`database.url`) are never logged.\n\nThe complete file with defaults is [`deploy/config/default.toml`](../deploy/config/default.toml).\n\n| Key | Default | Meaning |\n|---|---|---|\n",
    );
    for (path, doc) in KEYS {
        let v = default_value_text(path).replace('|', "\\|");
        let _ = writeln!(
            s,
            "| `{path}` | `{}` | {} |",
            if v.is_empty() { "{}".into() } else { v },
            doc.replace('|', "\\|")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(file: Option<&str>, env: &[(&str, &str)]) -> Sources {
        let file = file.map(|text| {
            let dir = std::env::temp_dir().join(format!(
                "kamiyo-cfg-{}-{}",
                std::process::id(),
                text.len()
            ));
            let _ = std::fs::create_dir_all(&dir);
            let p = dir.join("k.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        Sources {
            file,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn every_key_is_documented_and_every_documented_key_exists() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut leaves = Vec::new();
        leaf_paths(&defaults, "", &mut leaves);
        let documented: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        for l in &leaves {
            assert!(documented.contains(&l.as_str()), "undocumented key {l}");
        }
        for k in &documented {
            assert!(
                leaves.iter().any(|l| l == k) || OPEN_TABLES.contains(k),
                "documented key {k} does not exist"
            );
        }
    }

    #[test]
    fn bind_takes_a_host_name_and_says_what_is_wrong() {
        let c = load(&src(Some("[server]\nbind = \"localhost:8080\"\n"), &[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080".parse().unwrap());
        let c = load(&src(None, &[("KAMIYO_SERVER__BIND", "[::1]:9000")])).unwrap();
        assert_eq!(c.server.bind, "[::1]:9000".parse().unwrap());
        let errs = load(&src(None, &[("KAMIYO_SERVER__BIND", "localhost")])).unwrap_err();
        let text: String = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.contains("server.bind") && text.contains("no port"),
            "{text}"
        );
    }

    #[test]
    fn layers_apply_in_order() {
        let c = load(&src(
            Some("[hyperliquid]\nrest_url = \"http://file\"\ncoins = [\"BTC\"]\n"),
            &[
                ("KAMIYO_HYPERLIQUID__REST_URL", "http://env"),
                ("DATA_RETENTION_DAYS", "30"),
                ("KAMIYO_MONITORS__ORACLE__WARN_PCT", "0.8"),
            ],
        ))
        .unwrap();
        assert_eq!(c.hyperliquid.rest_url, "http://env");
        assert_eq!(c.hyperliquid.coins.len(), 1);
        assert_eq!(c.database.retention_days, 30);
        assert_eq!(c.monitors.oracle.thresholds.warn_pct.to_string(), "0.8");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errs = load(&src(
            Some("[server]\nbnd = \"x\"\n[hyperliquid]\nws_url = \"http://nope\"\nwhale_count = \"many\"\n[monitors.oracle]\nwarn_pct = \"2\"\ncritical_pct = \"1\"\n"),
            &[("KAMIYO_DATABASE__RETENTION_DAYS", "0"), ("KAMIYO_TELEMETRY__COLOUR", "1")],
        ))
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|p| p.path.as_str()).collect();
        for want in ["server.bnd", "hyperliquid.whale_count", "telemetry.colour"] {
            assert!(paths.contains(&want), "{want} missing in {errs:#?}");
        }
        let env = errs.iter().find(|p| p.path == "telemetry.colour").unwrap();
        assert!(env.origin.contains("KAMIYO_TELEMETRY__COLOUR"));
        assert!(
            errs.iter()
                .find(|p| p.path == "server.bnd")
                .unwrap()
                .message
                .contains("bind"),
            "suggests the valid keys"
        );
    }

    #[test]
    fn every_bad_value_of_a_section_is_reported_even_beside_an_unknown_key() {
        // One section holding an unknown key, two mistyped values and a bad value of a
        // flattened threshold table; a float that is not finite elsewhere; and a semantic
        // error in a section that is otherwise fine: all reported, each at its full path.
        let errs = load(&src(
            Some(
                "[server]\nbnd = \"x\"\nworkers = \"two\"\nrate_limit_per_minute = -5\n[monitors.oracle]\nwarn_pct = \"half\"\nsustain_secs = \"soon\"\n[monitors.oracle.assets.HYPE]\ncritical_pct = \"lots\"\n[hyperliquid]\nexchange_clock_speed = nan\nws_url = \"http://nope\"\n",
            ),
            &[],
        ))
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "server.bnd",
            "server.workers",
            "server.rate_limit_per_minute",
            "monitors.oracle.warn_pct",
            "monitors.oracle.sustain_secs",
            "monitors.oracle.assets.HYPE.critical_pct",
            "hyperliquid.exchange_clock_speed",
            "hyperliquid.ws_url",
        ] {
            assert!(paths.contains(&want), "{want} missing in {errs:#?}");
        }
        let nan = errs
            .iter()
            .find(|p| p.path == "hyperliquid.exchange_clock_speed")
            .unwrap();
        assert!(nan.message.contains("finite"), "{nan:?}");
    }

    #[test]
    fn semantic_errors_after_types_pass() {
        let errs = load(&src(Some("[hyperliquid]\nws_url = \"http://nope\"\n[monitors.oracle]\nwarn_pct = \"2\"\ncritical_pct = \"1\"\n"), &[("DATA_RETENTION_DAYS", "0")])).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"hyperliquid.ws_url")
                && paths.contains(&"database.retention_days")
                && paths.contains(&"monitors.oracle.critical_pct"),
            "{errs:#?}"
        );
    }

    #[test]
    fn nan_and_infinite_scores_are_refused_by_name() {
        for v in ["nan", "inf", "-inf", "0.0", "1.5"] {
            let errs = load(&src(Some(&format!("[ml]\nhigh_score = {v}\n")), &[])).unwrap_err();
            assert!(
                errs.iter().any(|p| p.path == "ml.high_score"),
                "{v}: {errs:#?}"
            );
        }
        assert!(load(&src(Some("[ml]\nhigh_score = 0.9\n"), &[])).is_ok());
    }

    #[test]
    fn a_poll_slower_than_half_the_quiet_period_is_refused() {
        // The defaults poll every 30–60 s against a 600 s quiet period.
        assert!(load(&src(None, &[])).is_ok());
        let errs = load(&src(
            Some("[hyperliquid]\nvault_interval_secs = 301\n"),
            &[],
        ))
        .unwrap_err();
        let vault = errs
            .iter()
            .find(|p| p.path == "hyperliquid.vault_interval_secs")
            .unwrap();
        assert!(vault.message.contains("resolve_after_secs"), "{vault:?}");
        assert!(
            load(&src(
                Some("[hyperliquid]\nvault_interval_secs = 300\n"),
                &[]
            ))
            .is_ok()
        );
        // Raising the quiet period instead is accepted.
        assert!(
            load(&src(
                Some("[hyperliquid]\nvault_interval_secs = 301\n[monitors.incidents]\nresolve_after_secs = 602\n"),
                &[],
            ))
            .is_ok()
        );
        // On the exchange clock a replay's poll covers `speed` times as much exchange time.
        let replay = "[hyperliquid]\nclock = \"exchange\"\nexchange_clock_speed = 120\nvault_interval_secs = 5\nwhale_interval_secs = 2\nhlp_positions_interval_secs = 2\nmarket_interval_secs = 2\n[references]\ninterval_secs = 2\n";
        let errs = load(&src(Some(replay), &[])).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["hyperliquid.vault_interval_secs"], "{errs:#?}");
        assert!(
            errs[0].message.contains("600 s of exchange time"),
            "{errs:#?}"
        );
        // The same periods on the system clock: the speed does not apply.
        assert!(
            load(&src(
                Some(&replay.replace("\"exchange\"", "\"system\"")),
                &[]
            ))
            .is_ok()
        );
    }

    #[test]
    fn polls_over_the_rest_budget_are_a_warning() {
        let defaults = load(&src(None, &[])).unwrap();
        let total: u32 = defaults
            .rest_weight_per_minute()
            .iter()
            .map(|(_, w)| w)
            .sum();
        // 20 (vault) + 28 (7 children every 30 s) + 80 (markets) + 352 (8 whales every 30 s).
        assert_eq!(total, 480);
        assert!(defaults.warnings().is_empty());
        let busy = load(&src(
            Some("[hyperliquid]\nwhale_count = 20\nwhale_interval_secs = 10\n"),
            &[],
        ))
        .unwrap();
        let w = busy.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("about 2768 REST weight") && w[0].contains("(1200)"),
            "{w:?}"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.database.url = "postgres://kamiyo:hunter2@db:5432/k".into();
        let t = c.redacted_toml();
        assert!(!t.contains("hunter2") && t.contains("kamiyo:***@db"), "{t}");
    }

    #[test]
    fn generated_files_are_in_sync() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let toml_path = root.join("deploy/config/default.toml");
        let md_path = root.join("docs/CONFIGURATION.md");
        if std::env::var("KAMIYO_BLESS").is_ok() {
            std::fs::create_dir_all(toml_path.parent().unwrap()).unwrap();
            std::fs::write(&toml_path, render_default_toml()).unwrap();
            std::fs::write(&md_path, render_markdown()).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&toml_path).unwrap_or_default(),
            render_default_toml(),
            "deploy/config/default.toml is stale: run KAMIYO_BLESS=1 cargo test -p kamiyo-server config"
        );
        assert_eq!(
            std::fs::read_to_string(&md_path).unwrap_or_default(),
            render_markdown(),
            "docs/CONFIGURATION.md is stale: run KAMIYO_BLESS=1 cargo test -p kamiyo-server config"
        );
        // The generated default file loads as a valid configuration.
        let dir = std::env::temp_dir().join(format!("kamiyo-default-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("d.toml"), render_default_toml()).unwrap();
        assert_eq!(
            load(&Sources {
                file: Some(dir.join("d.toml")),
                env: BTreeMap::new()
            })
            .unwrap(),
            Config::default()
        );
    }
}
