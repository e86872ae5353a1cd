//! Bars built from the event stream, shared by the anomaly detector (which scores them) and the
//! bar recorder (which stores them for `ml train --from-store`), so the bars a model is trained
//! on from a deployment's own history are the very bars it scores live.
//!
//! Per market and per interval: open/high/low/close from trades and marks, traded volume from
//! trades, the funding rate from asset contexts; at the close, the open interest and the
//! outside-exchange reference median as of the last asset context in the bar, the notional of
//! the liquidations seen since the previous close (each once, whichever side's fill shows it;
//! unknown until a fill feed shows up),
//! and HLP's cumulative PnL and account value from its latest vault snapshot. A bar closes when
//! the market's first price of a later interval arrives (a quiet market's bar closes late; an
//! interval without prices yields no bar, as in a candle file).

use std::collections::BTreeMap;

use kamiyo_core_models::{Coin, Decimal, MarketBar, MarketEvent, Timestamp, cmp_decimal};
use kamiyo_ml::features::Bar;

use crate::state::MarketState;

#[derive(Debug, Default)]
struct Building {
    bar: Option<MarketBar>,
    funding: Decimal,
    ref_px: Option<Decimal>,
    open_interest: Option<Decimal>,
    /// Liquidation notional since the last bar closed.
    liq: Decimal,
    /// The liquidations counted in it, by (time, trade id): the same liquidation seen from both
    /// sides (the liquidated user's fill and the liquidator's) counts once, as the liquidation
    /// detector counts it.
    liq_seen: std::collections::BTreeSet<(i64, u64)>,
}

/// Builds bars of one interval for every market.
#[derive(Debug)]
pub struct BarBuilder {
    interval_ms: i64,
    markets: BTreeMap<Coin, Building>,
    /// A fill feed is present (so a bar without liquidations had none, rather than unknown).
    fills_seen: bool,
    /// HLP's latest cumulative PnL and account value.
    hlp: (Option<Decimal>, Option<Decimal>),
}

impl BarBuilder {
    /// A builder of `interval_ms` bars (at least 1 ms).
    pub fn new(interval_ms: i64) -> Self {
        Self {
            interval_ms: interval_ms.max(1),
            markets: BTreeMap::new(),
            fills_seen: false,
            hlp: (None, None),
        }
    }

    /// The bar length.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Feeds one event (after `state` has applied it); `closed` receives every bar it closes,
    /// with the time of the event that closed it (when the bar became known).
    pub fn on_event(
        &mut self,
        event: &MarketEvent,
        state: &MarketState,
        mut closed: impl FnMut(MarketBar, Timestamp),
    ) {
        match event {
            MarketEvent::Trade(t) => self.observe(&t.coin, t.time, t.px, t.sz, &mut closed),
            MarketEvent::AssetCtx(c) => {
                self.market(&c.coin).funding = c.funding;
                // The mark may close the previous bar (with the open interest and reference
                // it had); this context's values belong to the bar it lands in.
                self.observe(&c.coin, c.time, c.mark_px, Decimal::ZERO, &mut closed);
                let m = self.market(&c.coin);
                m.open_interest = Some(c.open_interest);
                m.ref_px = state.reference_median(&c.coin).map(|(px, _)| px);
            }
            MarketEvent::Fill(f) => {
                self.fills_seen = true;
                if f.is_liquidation() {
                    let m = self.market(&f.coin);
                    if m.liq_seen.insert((f.time.0, f.tid.unwrap_or(f.oid))) {
                        m.liq += f.notional();
                    }
                }
            }
            MarketEvent::Vault(v) if v.vault == state.hlp_vault => {
                self.hlp = (v.pnl_history.last().map(|p| p.value), Some(v.account_value));
            }
            _ => {}
        }
    }

    /// The market's state, created on first sight.
    fn market(&mut self, coin: &Coin) -> &mut Building {
        self.markets.entry(coin.clone()).or_default()
    }

    fn observe(
        &mut self,
        coin: &Coin,
        time: Timestamp,
        px: Decimal,
        volume: Decimal,
        closed: &mut impl FnMut(MarketBar, Timestamp),
    ) {
        if !px.is_sign_positive() || px.is_zero() {
            return;
        }
        let start = time.0 - time.0.rem_euclid(self.interval_ms);
        let (fills_seen, hlp, interval_ms) = (self.fills_seen, self.hlp, self.interval_ms);
        let m = self.market(coin);
        if let Some(mut bar) = m.bar.take_if(|b| start > b.time.0) {
            bar.ref_px = m.ref_px;
            bar.open_interest = m.open_interest;
            bar.liq_notional = fills_seen.then_some(m.liq);
            m.liq = Decimal::ZERO;
            m.liq_seen.clear();
            (bar.hlp_pnl, bar.hlp_equity) = hlp;
            closed(bar, time);
        }
        let funding = m.funding;
        let b = m.bar.get_or_insert_with(|| MarketBar {
            protocol: kamiyo_core_models::ProtocolId::default(),
            coin: coin.clone(),
            interval_ms,
            time: Timestamp(start),
            open: px,
            high: px,
            low: px,
            close: px,
            volume: Decimal::ZERO,
            funding,
            ref_px: None,
            open_interest: None,
            liq_notional: None,
            hlp_pnl: None,
            hlp_equity: None,
        });
        if cmp_decimal(&px, &b.high).is_gt() {
            b.high = px;
        }
        if cmp_decimal(&px, &b.low).is_lt() {
            b.low = px;
        }
        b.close = px;
        if volume.is_sign_positive() && !volume.is_zero() {
            b.volume += volume;
        }
        b.funding = funding;
    }
}

fn f64_of(d: Decimal) -> f64 {
    f64::try_from(d).unwrap_or(f64::NAN)
}

/// A stored or live bar as the feature extractor's input (unknown inputs become `NaN`): the one
/// conversion both live scoring and training from the store use.
pub fn ml_bar(b: &MarketBar) -> Bar {
    let opt = |d: Option<Decimal>| d.map_or(f64::NAN, f64_of);
    Bar {
        funding: f64_of(b.funding),
        ref_px: opt(b.ref_px),
        open_interest: opt(b.open_interest),
        liq_notional: opt(b.liq_notional),
        hlp_pnl: opt(b.hlp_pnl),
        hlp_equity: opt(b.hlp_equity),
        ..Bar::ohlcv(
            b.time.0,
            f64_of(b.open),
            f64_of(b.high),
            f64_of(b.low),
            f64_of(b.close),
            f64_of(b.volume),
        )
    }
}

/// Records every closed bar of one interval as an observation for storage (the history
/// `ml train --from-store` learns from). Raises nothing.
#[derive(Debug)]
pub struct BarRecorder {
    bars: BarBuilder,
}

impl BarRecorder {
    /// A recorder of `interval_ms` bars.
    pub fn new(interval_ms: i64) -> Self {
        Self {
            bars: BarBuilder::new(interval_ms),
        }
    }
}

impl super::Detector for BarRecorder {
    fn name(&self) -> &'static str {
        "bar_recorder"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut super::Sink) {
        self.bars
            .on_event(event, state, |b, _| sink.observations.bars.push(b));
    }
}
