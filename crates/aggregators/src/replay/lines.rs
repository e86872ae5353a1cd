//! Straight-through readers for the commonest normalized event lines — reference quotes,
//! asset contexts and mids, which are nine in ten events of a replay — in exactly the layout
//! serde writes them. Any deviation (another key order, an extra key, whitespace, a number
//! the scanner does not represent exactly) returns `None` and the line goes through serde,
//! which then decides; a test holds every answer to serde's on every scenario event and on
//! mutated lines.

use kamiyo_core_models::{AssetCtx, Coin, MarketEvent, Mids, ReferenceQuote, Timestamp, Venue};

use crate::scan::Cur;

/// Decodes `line` if it is a reference quote, asset context or mids line in serde's layout.
pub(super) fn decode(line: &str) -> Option<MarketEvent> {
    let mut cur = Cur::new(line);
    let event = if cur.lit(br#"{"event":"reference","#).is_some() {
        MarketEvent::Reference(reference(&mut cur)?)
    } else if cur.lit(br#"{"event":"asset_ctx","#).is_some() {
        MarketEvent::AssetCtx(asset_ctx(&mut cur)?)
    } else if cur.lit(br#"{"event":"mids","#).is_some() {
        MarketEvent::Mids(mids(&mut cur)?)
    } else {
        return None;
    };
    (cur.i == cur.b.len()).then_some(event)
}

/// An optional decimal field: `Some(None)` when `key` is not next, `Some(Some(value))` when it
/// is and its value is a plain decimal, `None` (give up) when its value is not.
fn optional_decimal<const N: usize>(
    cur: &mut Cur<'_>,
    key: &[u8; N],
) -> Option<Option<kamiyo_core_models::Decimal>> {
    match cur.lit(key) {
        Some(()) => cur.decimal().map(Some),
        None => Some(None),
    }
}

fn time(cur: &mut Cur<'_>) -> Option<Timestamp> {
    cur.integer().map(Timestamp)
}

fn reference(cur: &mut Cur<'_>) -> Option<ReferenceQuote> {
    cur.lit(br#""venue":"#)?;
    let venue = Venue::new(cur.string()?).ok()?;
    cur.lit(br#","coin":"#)?;
    let coin = Coin::new(cur.string()?).ok()?;
    let price = cur.decimal_field(br#","price":"#)?;
    let bid = optional_decimal(cur, br#","bid":"#)?;
    let ask = optional_decimal(cur, br#","ask":"#)?;
    cur.lit(br#","time":"#)?;
    let time = time(cur)?;
    cur.lit(b"}")?;
    Some(ReferenceQuote {
        venue,
        coin,
        price,
        bid,
        ask,
        time,
    })
}

fn asset_ctx(cur: &mut Cur<'_>) -> Option<AssetCtx> {
    cur.lit(br#""coin":"#)?;
    let coin = Coin::new(cur.string()?).ok()?;
    cur.lit(br#","time":"#)?;
    let time = time(cur)?;
    let oracle_px = cur.decimal_field(br#","oracle_px":"#)?;
    let mark_px = cur.decimal_field(br#","mark_px":"#)?;
    let mid_px = optional_decimal(cur, br#","mid_px":"#)?;
    let open_interest = cur.decimal_field(br#","open_interest":"#)?;
    let funding = cur.decimal_field(br#","funding":"#)?;
    let day_ntl_vlm = cur.decimal_field(br#","day_ntl_vlm":"#)?;
    let prev_day_px = optional_decimal(cur, br#","prev_day_px":"#)?;
    let premium = optional_decimal(cur, br#","premium":"#)?;
    let impact_pxs = match cur.lit(br#","impact_pxs":"#) {
        Some(()) => Some(cur.decimal_pair()?),
        None => None,
    };
    cur.lit(b"}")?;
    Some(AssetCtx {
        coin,
        time,
        oracle_px,
        mark_px,
        mid_px,
        open_interest,
        funding,
        day_ntl_vlm,
        prev_day_px,
        premium,
        impact_pxs,
    })
}

fn mids(cur: &mut Cur<'_>) -> Option<Mids> {
    cur.lit(br#""time":"#)?;
    let time = time(cur)?;
    cur.lit(br#","mids":["#)?;
    let mut mids = Vec::new();
    cur.items(b']', |cur| {
        cur.lit(b"[")?;
        let coin = Coin::new(cur.string()?).ok()?;
        cur.lit(b",")?;
        mids.push((coin, cur.decimal()?));
        cur.lit(b"]")
    })?;
    cur.lit(b"}")?;
    Some(Mids { time, mids })
}
