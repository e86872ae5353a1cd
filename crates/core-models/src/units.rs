//! One formatter for people: money, percentages, prices, durations, times and addresses, as
//! every alert channel shows them (the dashboard applies the same rules in its script).
//! Evidence keeps exact machine values; these functions only render them.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::security::{EvidenceValue, ThreatType};
use crate::time::Timestamp;

/// Where an address is looked up.
pub const EXPLORER_ADDRESS_URL: &str = "https://app.hyperliquid.xyz/explorer/address/";

/// `-1234567.891` → `-1,234,567.891`.
pub fn group_thousands(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + int.len() / 3);
    for (n, c) in int.chars().enumerate() {
        if n > 0 && (int.len() - n) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// US dollars: whole dollars from $1,000 up (`$3,781,000`), cents below (`$12.50`), and
/// significant digits for sub-cent amounts (`$0.0339`).
pub fn usd(d: Decimal) -> String {
    let a = d.abs();
    let body = if a >= Decimal::ONE_THOUSAND {
        group_thousands(&a.round_dp(0).to_string())
    } else if a >= Decimal::ONE || a.is_zero() {
        format!("{:.2}", a.round_dp(2))
    } else {
        a.round_sf(4).unwrap_or(a).normalize().to_string()
    };
    format!(
        "{}${body}",
        if d.is_sign_negative() && !a.is_zero() {
            "-"
        } else {
            ""
        }
    )
}

/// A price: exact digits, grouped, with a dollar sign (`$2,036.5`, `$0.0339`).
pub fn price(d: Decimal) -> String {
    let n = d.normalize();
    let s = group_thousands(&n.abs().to_string());
    format!("{}${s}", if n.is_sign_negative() { "-" } else { "" })
}

/// A percentage, signed when negative, at most 4 decimals (`5.6075 %`, `-75 %`).
pub fn pct(d: Decimal) -> String {
    format!("{} %", d.round_dp(4).normalize())
}

/// A duration in words (`45 s`, `46 min 10 s`, `3 h 5 min`, `2 d 4 h`).
pub fn duration_ms(ms: i64) -> String {
    let s = ms.unsigned_abs() / 1000;
    let sign = if ms < 0 { "-" } else { "" };
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) if sec == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    };
    format!("{sign}{text}")
}

/// True for `0x` followed by 40 hex digits.
pub fn is_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// One evidence field as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanField {
    /// Words, without the unit suffix (`open interest`, `sustained`).
    pub label: String,
    /// The value with its unit (`$17,484,000`, `46 min 10 s`, `5.6075 %`).
    pub value: String,
    /// An explorer link for addresses.
    pub link: Option<String>,
}

/// Words for field names whose meaning the name alone does not carry.
fn known_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "szi" => "position size (coins, signed)",
        "ntl" | "notional" => "notional",
        "px" => "price",
        "oi" => "open interest",
        "adl" => "auto-deleveraged",
        _ => return None,
    })
}

/// Renders evidence field `name` = `v` in human units, from the name's suffix: `_usd` (and
/// notional, value, pnl, equity) money, `_pct` percent, `_px`/price prices, `_ms` durations —
/// or UTC times for time-like names and epoch-sized values — addresses with an explorer link.
pub fn human_field(name: &str, v: &EvidenceValue) -> HumanField {
    let stem = ["_usd", "_pct", "_ms", "_px"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let mut label = known_label(name)
        .map(str::to_owned)
        .unwrap_or_else(|| stem.replace('_', " "));
    if name.ends_with("_px") && !label.contains("price") {
        label.push_str(" price");
    }
    let time_like = ["time", "start", "end", "_at", "since", "until"]
        .iter()
        .any(|w| name.contains(w));
    let money = name.ends_with("_usd")
        || ["notional", "value", "pnl", "equity", "account_value"]
            .iter()
            .any(|w| name == *w || name.ends_with(&format!("_{w}")));
    let value = match v {
        EvidenceValue::Bool(b) => (if *b { "yes" } else { "no" }).to_owned(),
        EvidenceValue::Int(i) if time_like && *i > 100_000_000_000 => Timestamp(*i).to_rfc3339(),
        EvidenceValue::Int(i) if name.ends_with("_ms") => duration_ms(*i),
        EvidenceValue::Int(i) if money => usd(Decimal::from(*i)),
        EvidenceValue::Int(i) => group_thousands(&i.to_string()),
        EvidenceValue::Decimal(d) if money => usd(*d),
        EvidenceValue::Decimal(d) if name.ends_with("_pct") => pct(*d),
        EvidenceValue::Decimal(d)
            if name.ends_with("_px") || name == "px" || name.contains("price") =>
        {
            price(*d)
        }
        EvidenceValue::Decimal(d) if name.ends_with("_ms") => {
            duration_ms(d.round().to_i64().unwrap_or(i64::MAX))
        }
        EvidenceValue::Decimal(d) => group_thousands(&d.normalize().to_string()),
        EvidenceValue::Text(t) => t.clone(),
    };
    let link = match v {
        // The zero address stands for an account a venue does not name: nothing to look up.
        EvidenceValue::Text(t) if is_address(t) && t.bytes().skip(2).any(|b| b != b'0') => {
            Some(format!("{EXPLORER_ADDRESS_URL}{t}"))
        }
        _ => None,
    };
    HumanField { label, value, link }
}

/// The first thing to check for an incident of this type: one line for the person paged.
pub fn what_to_check(t: ThreatType) -> &'static str {
    match t {
        ThreatType::HlpLoss | ThreatType::HlpDrawdown | ThreatType::HlpAnomaly => {
            "Open the HLP vault's positions: which market and which liquidation took the loss, and whether it is still open."
        }
        ThreatType::HlpExposure => {
            "Compare the child vault's position with the market's open interest and depth: can it be closed without moving the price?"
        }
        ThreatType::LiquidatorStress => {
            "Check the Liquidator vault's account value against the ADL trigger and the positions it absorbed."
        }
        ThreatType::OracleDeviation => {
            "Compare the oracle with Binance, OKX and Bybit directly: one venue moving, or all of them (a real move)?"
        }
        ThreatType::VenueDisagreement => {
            "Look at the departing venue's own book and status page: a venue outage, a delisting, or a real dislocation the oracle will follow?"
        }
        ThreatType::MarkManipulation => {
            "Check the order book depth and the largest recent trades: who is moving the mark, and is the oracle following?"
        }
        ThreatType::LargeLiquidation | ThreatType::CoordinatedLiquidation => {
            "Look up the liquidated account (explorer link) and whether HLP took the position over."
        }
        ThreatType::LiquidationCascade | ThreatType::MarketCascade => {
            "Watch the liquidation rate and the HLP vault's PnL: is the cascade still accelerating, and is auto-deleveraging near?"
        }
        ThreatType::AutoDeleveraging => {
            "Check which profitable positions were deleveraged and the backstop's remaining equity."
        }
        ThreatType::ThinMarketManipulation => {
            "Check the market's open interest cap, depth and the accounts driving the move (JELLY-style squeeze?)."
        }
        _ => "Open the incident page: evidence, the series around it and its history.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn money_percent_prices_durations_times() {
        assert_eq!(usd(d("3781000")), "$3,781,000");
        assert_eq!(usd(d("-485631034.48")), "-$485,631,034");
        assert_eq!(usd(d("12.5")), "$12.50");
        assert_eq!(usd(d("0.033912")), "$0.03391");
        assert_eq!(usd(Decimal::ZERO), "$0.00");
        assert_eq!(price(d("2036.50")), "$2,036.5");
        assert_eq!(pct(d("5.60751")), "5.6075 %");
        assert_eq!(pct(d("-75")), "-75 %");
        assert_eq!(duration_ms(45_000), "45 s");
        assert_eq!(duration_ms(2_770_000), "46 min 10 s");
        assert_eq!(duration_ms(600_000), "10 min");
        assert_eq!(duration_ms(11_100_000), "3 h 5 min");
        assert_eq!(duration_ms(187_200_000), "2 d 4 h");
        assert_eq!(group_thousands("-11879933.11"), "-11,879,933.11");
    }

    #[test]
    fn evidence_fields_read_as_words_with_units() {
        let f = |n: &str, v: EvidenceValue| {
            let h = human_field(n, &v);
            (h.label, h.value)
        };
        assert_eq!(
            f("open_interest_usd", EvidenceValue::Decimal(d("17484000"))),
            ("open interest".into(), "$17,484,000".into())
        );
        assert_eq!(
            f("sustained_ms", EvidenceValue::Int(2_770_000)),
            ("sustained".into(), "46 min 10 s".into())
        );
        assert_eq!(
            f("window_start", EvidenceValue::Int(1_741_759_200_000)),
            ("window start".into(), "2025-03-12T06:00:00.000Z".into())
        );
        assert_eq!(
            f("mark_px", EvidenceValue::Decimal(d("0.0339"))),
            ("mark price".into(), "$0.0339".into())
        );
        assert_eq!(
            f("deviation_pct", EvidenceValue::Decimal(d("5.6075"))),
            ("deviation".into(), "5.6075 %".into())
        );
        assert_eq!(f("at_oi_cap", EvidenceValue::Bool(true)).1, "yes");
        assert_eq!(
            f("szi", EvidenceValue::Decimal(d("-1500"))).0,
            "position size (coins, signed)"
        );
        let a = "0xf3f496c9486be5924a93d67e98298733bb47057c";
        let h = human_field("user", &EvidenceValue::Text(a.into()));
        assert_eq!(
            h.link.as_deref(),
            Some(&*format!("{EXPLORER_ADDRESS_URL}{a}"))
        );
        let zero = "0x0000000000000000000000000000000000000000";
        assert_eq!(
            human_field("user", &EvidenceValue::Text(zero.into())).link,
            None
        );
    }
}
