//! Venue disagreement: the oracle's inputs checked against each other, before (and whatever)
//! the oracle rule says.
//!
//! Hyperliquid's oracle is a weighted median of outside venues. When the venues split — sorted
//! by price, the widest gap between neighbours is at least `split_pct` — one group is presumed
//! dislocated: the group with fewer venues; on a tie the group without an independent reference
//! (Coinbase: not an oracle input), then the group holding less oracle weight. The incident
//! names the dislocated venues, their deviation from the other group's median and their
//! combined oracle weight; it is high, critical when that weight reaches half the total (the
//! weighted median — the oracle — then follows the dislocated group), and medium when only
//! independent venues are dislocated (the oracle's inputs agree). The split must hold for
//! `sustain_secs`, and venues are compared only when their quotes are at most `max_skew_secs`
//! apart (a venue quoting once per candle is compared at its own candle closes only). Evaluated
//! with each asset context of the market, at most once per second of event time.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    Coin, Decimal, Detection, Direction, Evidence, IncidentKey, MarketEvent, ReferenceQuote,
    Severity, ThreatType, Timestamp, Venue,
};

use super::{Detector, Sink, pct};
use crate::config::VenueConfig;
use crate::state::MarketState;

#[derive(Debug, Default)]
struct Track {
    last_eval: Option<Timestamp>,
    /// A quote arrived since the last evaluation.
    dirty: bool,
    /// When the current split (same dislocated venues) was first seen.
    since: Option<(Timestamp, Vec<Venue>)>,
}

/// The venue-disagreement detector.
#[derive(Debug)]
pub struct VenueDetector {
    cfg: VenueConfig,
    tracks: BTreeMap<Coin, Track>,
}

/// A split of the venues: the dislocated group and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Dislocated venues with their price.
    pub dislocated: Vec<(Venue, Decimal)>,
    /// Weighted median of the other group.
    pub others_median: Decimal,
    /// Combined weight of the dislocated group.
    pub weight: Decimal,
    /// Total weight of the venues compared.
    pub total: Decimal,
    /// The gap between the groups, percent.
    pub gap_pct: Decimal,
}

/// Finds the split of `quotes` (price, weight, venue), if the widest gap between neighbouring
/// prices is at least `split_pct`.
pub fn split(quotes: &[(Decimal, Decimal, &Venue)], split_pct: Decimal) -> Option<Split> {
    if quotes.len() < 2 {
        return None;
    }
    let mut q: Vec<&(Decimal, Decimal, &Venue)> = quotes.iter().collect();
    q.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(b.2)));
    let (i, gap) = q
        .windows(2)
        .enumerate()
        .filter_map(|(i, w)| pct(w[1].0, w[0].0).map(|g| (i, g)))
        .max_by(|a, b| a.1.cmp(&b.1))?;
    if gap < split_pct {
        return None;
    }
    let (low, high) = q.split_at(i + 1);
    let weight = |g: &[&(Decimal, Decimal, &Venue)]| g.iter().map(|x| x.1).sum::<Decimal>();
    // Which side moved: each venue is one independent view of the market, so the side with
    // fewer venues is presumed dislocated (a weight majority can be the one that moves); on a
    // tie, the side without an independent reference (weight 0: not an oracle input, so never
    // part of whatever moved the oracle's venues); then the side with less weight.
    let independent = |g: &[&(Decimal, Decimal, &Venue)]| g.iter().any(|x| x.1.is_zero());
    let low_is_dislocated = match low.len().cmp(&high.len()) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => match (independent(low), independent(high)) {
            (true, false) => false,
            (false, true) => true,
            _ => weight(low) <= weight(high),
        },
    };
    let (bad, good) = if low_is_dislocated {
        (low, high)
    } else {
        (high, low)
    };
    // The other side's median: by oracle weight, or equal weights if it holds none.
    let mut pts: Vec<(Decimal, Decimal)> = good.iter().map(|x| (x.0, x.1)).collect();
    if weight(good).is_zero() {
        pts.iter_mut().for_each(|p| p.1 = Decimal::ONE);
    }
    let others_median = kamiyo_aggregators::aggregate::weighted_median(&pts)?;
    Some(Split {
        dislocated: bad.iter().map(|x| (x.2.clone(), x.0)).collect(),
        others_median,
        weight: weight(bad),
        total: weight(low) + weight(high),
        gap_pct: gap,
    })
}

impl VenueDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: VenueConfig) -> Self {
        Self {
            cfg,
            tracks: BTreeMap::new(),
        }
    }

    fn evaluate(&mut self, coin: &Coin, now: Timestamp, state: &MarketState, sink: &mut Sink) {
        let Some(track) = self.tracks.get_mut(coin) else {
            return; // No quote for this market yet.
        };
        // Nothing new to compare, and no split whose sustain clock is running.
        if !track.dirty && track.since.is_none() {
            return;
        }
        if track.last_eval.is_some_and(|t| now.millis_since(t) < 1_000) {
            return;
        }
        track.last_eval = Some(now);
        track.dirty = false;
        let fresh: Vec<(&ReferenceQuote, Decimal)> = state.reference_quotes(coin).collect();
        if fresh.len() < 2 {
            track.since = None;
            return;
        }
        // Compared only with quotes of about the same time as the newest one.
        let newest = fresh.iter().map(|(q, _)| q.time).max();
        let skew = i64::from(self.cfg.max_skew_secs) * 1000;
        let quotes: Vec<(Decimal, Decimal, &Venue)> = fresh
            .iter()
            .filter(|(q, _)| newest.is_some_and(|n| n.millis_since(q.time) <= skew))
            .map(|(q, w)| (q.price, *w, &q.venue))
            .collect();
        let Some(sp) = split(&quotes, self.cfg.split_pct) else {
            track.since = None;
            return;
        };
        let names: Vec<Venue> = sp.dislocated.iter().map(|(v, _)| v.clone()).collect();
        let since = match &track.since {
            Some((t, v)) if *v == names => *t,
            _ => {
                track.since = Some((now, names.clone()));
                now
            }
        };
        let held = now.millis_since(since);
        if held < i64::from(self.cfg.sustain_secs) * 1000 {
            return;
        }
        let critical = sp.weight > Decimal::ZERO && sp.weight + sp.weight >= sp.total;
        let severity = if critical {
            Severity::Critical
        } else if sp.weight > Decimal::ZERO {
            Severity::High
        } else {
            Severity::Medium
        };
        let mut ev = Evidence::new()
            .with("gap_pct", sp.gap_pct)
            .with("dislocated_weight", sp.weight)
            .with("total_weight", sp.total)
            .with("others_median", sp.others_median)
            .with("sustained_ms", held)
            .with("split_pct", self.cfg.split_pct);
        let mut parts = Vec::new();
        let mut direction = None;
        for (v, px) in &sp.dislocated {
            if let Some(d) = pct(*px, sp.others_median) {
                ev.insert(&format!("{v}_vs_others_pct"), d);
                parts.push(format!(
                    "{v} {}{}%",
                    if d.is_sign_negative() { "" } else { "+" },
                    d.normalize()
                ));
                direction = Some(Direction::of(d));
            }
        }
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction,
            group: None,
            key: IncidentKey::new("venue_disagreement", &[coin.as_str()]),
            detector: "venues".into(),
            threat_type: ThreatType::VenueDisagreement,
            severity,
            asset: Some(coin.clone()),
            title: format!(
                "{coin}: {} away from the other venues (weight {} of {}{}) for {} s",
                parts.join(", "),
                sp.weight.normalize(),
                sp.total.normalize(),
                if critical {
                    ": enough to move the oracle's median"
                } else {
                    ""
                },
                held / 1000
            ),
            indicators: names.iter().map(|v| format!("venue:{v}")).collect(),
            evidence: ev,
            time: now,
        });
    }
}

impl Detector for VenueDetector {
    fn name(&self) -> &'static str {
        "venues"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        // Evaluated with the market's context, when the quotes of that moment are in.
        match event {
            MarketEvent::Reference(q) => match self.tracks.get_mut(&q.coin) {
                Some(t) => t.dirty = true,
                None => {
                    self.tracks.insert(
                        q.coin.clone(),
                        Track {
                            dirty: true,
                            ..Track::default()
                        },
                    );
                }
            },
            MarketEvent::AssetCtx(c) => self.evaluate(&c.coin, state.now, state, sink),
            _ => {}
        }
    }
}
