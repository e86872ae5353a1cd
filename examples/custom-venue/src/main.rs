//! kamiyo's engine with a price source and a detector of your own.

use std::io::Write;
use std::time::Duration;

use async_trait::async_trait;
use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, Detection, Evidence, IncidentKey, MarketEvent, PriceSource,
    ProtocolId, ReferenceQuote, Severity, SourceError, ThreatType, Timestamp, Venue, deviation_pct,
};
use kamiyo_monitors::{Detector, DetectorRegistry, Engine, MarketState, MonitorsConfig, Sink};
use kamiyo_testing::receiver::{Receiver, Reply};

/// The made-up venue's answer.
#[derive(serde::Deserialize)]
struct AcmePrice {
    symbol: String,
    price: Decimal,
    ts: i64,
}

/// A [`PriceSource`] for the "acme" venue.
struct AcmeSource {
    venue: Venue,
    base: String,
    http: reqwest::Client,
}

impl AcmeSource {
    fn new(base: &str) -> Result<Self, SourceError> {
        let err = |detail: String| SourceError::Transport {
            venue: "acme".into(),
            detail,
        };
        Ok(Self {
            venue: Venue::new("acme").map_err(|e| err(e.to_string()))?,
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| err(e.to_string()))?,
        })
    }
}

#[async_trait]
impl PriceSource for AcmeSource {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
        let err = |detail: String| SourceError::Transport {
            venue: "acme".into(),
            detail,
        };
        let mut out = Vec::new();
        for coin in coins {
            let r = self
                .http
                .get(format!("{}/v1/price", self.base))
                .query(&[("symbol", coin.as_str())])
                .send()
                .await
                .map_err(|e| err(e.to_string()))?;
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                continue; // the venue does not list this coin
            }
            if !r.status().is_success() {
                return Err(err(format!("HTTP {}", r.status())));
            }
            let body = r.bytes().await.map_err(|e| err(e.to_string()))?;
            let p: AcmePrice = serde_json::from_slice(&body)
                .map_err(|e| err(format!("undecodable answer: {e}")))?;
            if p.symbol != coin.as_str() {
                return Err(err(format!("asked for {coin}, got {}", p.symbol)));
            }
            out.push(ReferenceQuote {
                venue: self.venue.clone(),
                coin: coin.clone(),
                price: p.price,
                bid: None,
                ask: None,
                time: Timestamp(p.ts),
            });
        }
        Ok(out)
    }
}

/// Fires when the acme price and Hyperliquid's mark differ by `high_pct` or more.
struct AcmeDivergence {
    high_pct: Decimal,
    /// The declared threat type of its incidents.
    threat: ThreatType,
}

impl Detector for AcmeDivergence {
    fn name(&self) -> &'static str {
        "acme_divergence"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        let MarketEvent::Reference(q) = event else {
            return;
        };
        if q.venue.as_str() != "acme" {
            return;
        }
        let Some(mark) = state.mark(&q.coin) else {
            return; // no Hyperliquid price yet
        };
        let Some(dev) = deviation_pct(q.price, mark) else {
            return;
        };
        if dev.abs() < self.high_pct {
            return;
        }
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: IncidentKey::new("acme_divergence", &[q.coin.as_str()]),
            detector: self.name().into(),
            threat_type: self.threat,
            severity: Severity::High,
            asset: Some(q.coin.clone()),
            title: format!(
                "{}: acme {} vs Hyperliquid mark {} ({:+.2} %)",
                q.coin,
                q.price,
                mark,
                dev.round_dp(2)
            ),
            indicators: vec!["venue:acme".into()],
            evidence: Evidence::new()
                .with("acme_px", q.price.to_string())
                .with("mark_px", mark.to_string())
                .with("deviation_pct", dev.round_dp(4).to_string()),
            time: q.time,
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    kamiyo_aggregators::install_crypto_provider();
    let t0 = Timestamp::parse("2026-01-05T12:00:00Z").unwrap_or_default();

    // The venue: ETH at 2,000 for three polls, then 2,031 (+1.55 %); it does not list BTC.
    let eth_requests = std::sync::atomic::AtomicI64::new(0);
    let venue = Receiver::start(move |_, req| {
        if !req.query.contains("symbol=ETH") {
            return Reply::new(404, r#"{"error":"unknown symbol"}"#);
        }
        let n = eth_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let px = if n < 3 { "2000.0" } else { "2031.0" };
        let ts = t0.0 + n * 1_000;
        Reply::new(
            200,
            &format!(r#"{{"symbol":"ETH","price":"{px}","ts":{ts}}}"#),
        )
        .header("content-type", "application/json")
    })
    .await;
    let acme = AcmeSource::new(&venue.url(""))?;

    // The detector's own threat type (routing, silences and filters tell it apart from the
    // built-in oracle rule), registered by name beside the built-in detectors.
    let threat = ThreatType::custom("acme_divergence")?;
    let mut registry = DetectorRegistry::builtin();
    registry.register("acme_divergence", move |_| {
        Ok(Some(Box::new(AcmeDivergence {
            high_pct: Decimal::ONE,
            threat,
        }) as Box<dyn Detector>))
    })?;
    let mut engine = Engine::for_protocol(
        ProtocolId::HYPERLIQUID,
        &registry,
        None,
        &MonitorsConfig::default(),
    )?;
    // Hyperliquid's side of the picture (in a real program: kamiyo_aggregators::live).
    let eth = Coin::new("ETH")?;
    let ctx: AssetCtx = serde_json::from_value(serde_json::json!({
        "coin": "ETH", "time": t0.0, "oracle_px": "2000.4", "mark_px": "2000.5",
        "open_interest": "850000", "funding": "0.0000125", "day_ntl_vlm": "2500000000"
    }))?;
    engine.process(&MarketEvent::AssetCtx(ctx));

    let mut out = std::io::stdout().lock();
    for poll in 0..5 {
        for q in acme.quotes(&[eth.clone(), Coin::new("BTC")?]).await? {
            writeln!(out, "poll {poll}: acme {} = {}", q.coin, q.price)?;
            for u in engine.process(&MarketEvent::Reference(q)).updates {
                writeln!(
                    out,
                    "  incident {} {} [{}] ({}) {}",
                    u.incident.id,
                    u.event.change.as_str(),
                    u.event.severity.as_str(),
                    u.event.threat_type,
                    u.event.title
                )?;
            }
        }
    }
    Ok(())
}
