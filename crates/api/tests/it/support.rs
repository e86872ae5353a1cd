//! A running API over a seeded SQLite store.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use actix_web::{App, HttpServer, dev::ServerHandle};
use kamiyo_api::{ApiConfig, ApiState, Hub};
use kamiyo_core_models::{
    Address, Coin, Decimal, DeviationKind, DeviationSample, Evidence, Incident, IncidentChange,
    IncidentKey, IncidentStatus, IncidentUpdate, IngestBatch, LiquidationMethod, LiquidationRecord,
    ManualClock, MarketStore, SecurityEvent, Severity, Side, StoredEvent, ThreatType, Timestamp,
    VaultPoint,
};
use kamiyo_store::Store;

pub(crate) const HLP: &str = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303";
/// "Now" of the test clock: 2025-03-26T16:00:00Z.
pub(crate) const NOW: i64 = 1_743_004_800_000;

pub(crate) fn registry() -> prometheus::Registry {
    static R: OnceLock<prometheus::Registry> = OnceLock::new();
    R.get_or_init(|| {
        let (provider, registry) = kamiyo_api::metrics::prometheus_provider().unwrap();
        opentelemetry::global::set_meter_provider(provider);
        registry
    })
    .clone()
}

pub(crate) fn config() -> ApiConfig {
    ApiConfig {
        require_keys: false,
        rate_limit_per_minute: 0,
        cors_origins: vec!["https://allowed.example".into()],
        allowed_hosts: Some(
            kamiyo_api::auth::LOOPBACK_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        ),
        max_body_bytes: 65_536,
        hlp_vault: HLP.parse().unwrap(),
    }
}

struct StoreProbe(Store);

#[async_trait::async_trait]
impl kamiyo_api::Probe for StoreProbe {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

pub(crate) struct TestApi {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) http: reqwest::Client,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl TestApi {
    pub(crate) async fn start(config: ApiConfig) -> Self {
        Self::start_with(config, Hub::default()).await
    }

    pub(crate) async fn start_with(config: ApiConfig, hub: Hub) -> Self {
        Self::start_custom(config, hub, |_, _| {}).await
    }

    /// Started with the state adjusted by `customize` (a host's own resolver …).
    pub(crate) async fn start_custom(
        config: ApiConfig,
        hub: Hub,
        customize: impl FnOnce(&mut ApiState, &Store),
    ) -> Self {
        kamiyo_aggregators::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("", dir.path(), 4).await.unwrap();
        let mut state = ApiState::new(
            kamiyo_api::ApiStores::single(&store),
            Arc::new(StoreProbe(store.clone())),
            hub.clone(),
            Arc::new(ManualClock::new(Timestamp(NOW))),
            config,
        );
        state.registry = Some(registry());
        customize(&mut state, &store);
        let state = state.shared();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server =
            HttpServer::new(move || App::new().configure(kamiyo_api::configure(state.clone())))
                .workers(2)
                .listen(listener)
                .unwrap()
                .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://{addr}"),
            addr,
            store,
            hub,
            http: reqwest::Client::new(),
            handle,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub(crate) async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    /// Commits a batch and publishes its events, as the server's writer does.
    pub(crate) async fn commit(&self, batch: &IngestBatch) -> Vec<StoredEvent> {
        let stored = self.store.commit(batch).await.unwrap();
        self.hub.publish_events(&stored);
        stored
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        let h = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { h.stop(false).await });
        }
    }
}

pub(crate) fn incident(
    n: usize,
    sev: Severity,
    threat: ThreatType,
    asset: &str,
    t: i64,
) -> Incident {
    let key = IncidentKey::parse(&format!("{}:{asset}:{n}", threat.as_str())).unwrap();
    Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, Timestamp(t)),
        key,
        detector: "test".into(),
        threat_type: threat,
        severity: sev,
        peak_severity: sev,
        asset: Some(Coin::new(asset).unwrap()),
        status: IncidentStatus::Open,
        title: format!("{asset} test incident {n}"),
        indicators: vec!["test".into()],
        evidence: Evidence::new()
            .with("notional_usd", Decimal::new(2_500_000, 0))
            .with("deviation_pct", Decimal::new(125, 2)),
        first_seen: Timestamp(t),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 1,
    }
}

pub(crate) fn step(i: &Incident, change: IncidentChange, t: i64) -> IncidentUpdate {
    let mut i = i.clone();
    i.last_seen = Timestamp(t);
    IncidentUpdate {
        event: SecurityEvent::from_incident(&i, change, Timestamp(t)),
        incident: i,
    }
}

/// `n` events over `n` incidents ending at NOW, alternating severities and threats.
pub(crate) fn updates(n: usize, offset: usize) -> Vec<IncidentUpdate> {
    (0..n)
        .map(|k| {
            let j = k + offset;
            let sev = [Severity::Medium, Severity::High, Severity::Critical][j % 3];
            let threat = [
                ThreatType::OracleDeviation,
                ThreatType::LargeLiquidation,
                ThreatType::HlpLoss,
            ][j % 3];
            let asset = ["ETH", "BTC", "JELLY"][j % 3];
            let t = NOW - (n as i64 * 1000) + k as i64 * 1000 + offset as i64 * 1000;
            step(
                &incident(j, sev, threat, asset, t),
                IncidentChange::Opened,
                t,
            )
        })
        .collect()
}

/// History around NOW: ETH deviations and HLP points every minute for 3 h, liquidations.
pub(crate) fn history() -> IngestBatch {
    let hlp: Address = HLP.parse().unwrap();
    let mut b = IngestBatch::default();
    for m in 0..180i64 {
        let t = NOW - (180 - m) * Timestamp::MINUTE;
        b.deviations.push(DeviationSample {
            protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
            coin: Coin::new("ETH").unwrap(),
            time: Timestamp(t),
            kind: DeviationKind::OracleVsReference,
            venue: None,
            value: Decimal::new(200_000 + m, 2),
            reference: Decimal::new(200_000, 2),
            deviation_pct: Decimal::new(m, 4),
        });
        b.vault_points.push(VaultPoint {
            protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
            vault: hlp,
            time: Timestamp(t),
            account_value: Decimal::new(300_000_000, 0),
            pnl: Decimal::new(60_000_000 - m * 1000, 0),
        });
        if m % 30 == 0 {
            b.liquidations.push(LiquidationRecord {
                protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                time: Timestamp(t),
                coin: Coin::new("ETH").unwrap(),
                user: hlp,
                liquidated_user: None,
                side: Side::Buy,
                px: Decimal::new(2000, 0),
                sz: Decimal::new(100, 0),
                notional: Decimal::new(200_000, 0),
                method: Some(LiquidationMethod::Market),
                is_adl: m == 150,
                tid: m as u64,
            });
        }
    }
    // A whale short and long ETH, then flat; the HLP vault long BTC.
    let whale: Address = "0xf3f496c9486be5924a93d67e98298733bb47057c"
        .parse()
        .unwrap();
    for (t, user, coin, szi, value) in [
        (NOW - 3_600_000, whale, "ETH", -1500, 3_000_000),
        (NOW - 600_000, whale, "ETH", 2000, 4_000_000),
        (NOW - 600_000, hlp, "BTC", 10, 850_000),
        (NOW - 300_000, whale, "SOL", 0, 0),
    ] {
        b.positions.push(kamiyo_core_models::PositionRecord {
            protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
            user,
            time: Timestamp(t),
            coin: Coin::new(coin).unwrap(),
            szi: Decimal::from(szi),
            position_value: Decimal::from(value),
            liquidation_px: (szi != 0).then(|| Decimal::new(1650, 0)),
            account_value: Decimal::from(1_000_000),
        });
    }
    b
}

pub(crate) async fn seeded() -> TestApi {
    seed(TestApi::start(config()).await).await
}

/// `api` with [`history`] and 30 incident steps.
pub(crate) async fn seed(api: TestApi) -> TestApi {
    api.commit(&history()).await;
    api.commit(&IngestBatch {
        updates: updates(30, 0),
        ..IngestBatch::default()
    })
    .await;
    api
}
