//! A specialised scanner for the hottest frame, `{"channel":"trades","data":[…]}`.
//!
//! It handles exactly the shapes the server sends (flat trade objects whose values are
//! strings, integers or an array of two strings; keys in any order; unknown keys skipped;
//! whitespace anywhere) and gives up — returning `None` so the general serde decoder takes
//! over — on anything else: escapes in strings, nesting in unknown values, malformed input.
//! A property test checks that whenever it answers, it answers exactly what the general
//! decoder answers.

use kamiyo_core_models::{Address, Coin, Decimal, MarketEvent, Side, Timestamp, Trade};

const PREFIX: &str = r#"{"channel":"trades","data":"#;

struct Cur<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// A string without escapes or control characters (one pass; strings here are short).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let mut j = 0;
        loop {
            let c = *rest.get(j)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            j += 1;
        }
        self.i = start + j + 1;
        // Quote positions are ASCII, so these are char boundaries.
        self.s.get(start..start + j)
    }

    fn integer(&mut self) -> Option<i64> {
        self.ws();
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0
            || (digits > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(if neg { -v } else { v })
    }

    /// Skips a scalar value (string, number, literal); gives up on arrays and objects.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => {
                let n = self.b[self.i..]
                    .iter()
                    .take_while(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .count();
                let ok = is_json_number(&self.b[self.i..self.i + n]);
                self.i += n;
                ok.then_some(())
            }
            _ => {
                for lit in [&b"true"[..], b"false", b"null"] {
                    if self.b[self.i..].starts_with(lit) {
                        self.i += lit.len();
                        return Some(());
                    }
                }
                None
            }
        }
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && s[int_start] == b'0') {
        return false;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// Parses a plain decimal (`-?digits(.digits)?`, at most 28 digits) without going through a
/// general parser. `None` for anything else (the caller falls back).
pub fn fast_decimal(s: &[u8]) -> Option<Decimal> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let mut mantissa: i128 = 0;
    let mut scale: u32 = 0;
    let mut seen_dot = false;
    let mut n = 0;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                n += 1;
                if n > 28 {
                    // Beyond Decimal's precision (and, unchecked, i128's range).
                    return None;
                }
                mantissa = mantissa * 10 + i128::from(c - b'0');
                if seen_dot {
                    scale += 1;
                }
            }
            b'.' if !seen_dot && n > 0 => seen_dot = true,
            _ => return None,
        }
    }
    if n == 0 || n > 28 || (seen_dot && scale == 0) {
        return None;
    }
    Decimal::try_from_i128_with_scale(if neg { -mantissa } else { mantissa }, scale).ok()
}

fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    // A repeated key makes the general decoder fail ("duplicate field"): do not answer.
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

fn trade(cur: &mut Cur<'_>) -> Option<Trade> {
    cur.eat(b'{')?;
    let (mut coin, mut side, mut px, mut sz, mut time, mut tid, mut users) =
        (None, None, None, None, None, None, None);
    if cur.peek()? == b'}' {
        return None;
    }
    loop {
        let key = cur.string()?;
        cur.eat(b':')?;
        match key {
            "coin" => set(&mut coin, Coin::new(cur.string()?).ok()?)?,
            "side" => {
                let s = match cur.string()? {
                    "B" => Side::Buy,
                    "A" => Side::Sell,
                    _ => return None,
                };
                set(&mut side, s)?;
            }
            "px" => set(&mut px, fast_decimal(cur.string()?.as_bytes())?)?,
            "sz" => set(&mut sz, fast_decimal(cur.string()?.as_bytes())?)?,
            "time" => set(&mut time, cur.integer()?)?,
            "tid" => set(&mut tid, u64::try_from(cur.integer()?).ok()?)?,
            "users" => {
                if cur.peek()? == b'n' {
                    cur.skip_scalar()?;
                    set(&mut users, None)?;
                } else {
                    cur.eat(b'[')?;
                    let a = Address::parse(cur.string()?).ok()?;
                    cur.eat(b',')?;
                    let b = Address::parse(cur.string()?).ok()?;
                    cur.eat(b']')?;
                    set(&mut users, Some([a, b]))?;
                }
            }
            // The hash and any future scalar field are skipped; nested values fall back.
            _ => cur.skip_scalar()?,
        }
        match cur.peek()? {
            b',' => cur.i += 1,
            b'}' => {
                cur.i += 1;
                break;
            }
            _ => return None,
        }
    }
    Some(Trade {
        coin: coin?,
        side: side?,
        px: px?,
        sz: sz?,
        time: Timestamp(time?),
        tid: tid.unwrap_or(0),
        users: users.flatten(),
    })
}

/// Decodes a `trades` frame, or `None` to let the general decoder handle it.
pub fn fast_trades(text: &str) -> Option<Vec<MarketEvent>> {
    let s = text.strip_prefix(PREFIX)?;
    let mut cur = Cur {
        s,
        b: s.as_bytes(),
        i: 0,
    };
    cur.eat(b'[')?;
    let mut out = Vec::with_capacity(2);
    if cur.peek()? == b']' {
        cur.i += 1;
    } else {
        loop {
            out.push(MarketEvent::Trade(trade(&mut cur)?));
            match cur.peek()? {
                b',' => cur.i += 1,
                b']' => {
                    cur.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    cur.eat(b'}')?;
    cur.ws();
    (cur.i == cur.b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperliquid::num::parse_decimal;
    use proptest::prelude::*;

    #[test]
    fn decimals_match_the_general_parser() {
        for s in [
            "0",
            "1915.5",
            "-0.0000015186",
            "1516669192.1953897476",
            "007.10",
        ] {
            assert_eq!(fast_decimal(s.as_bytes()), parse_decimal(s), "{s}");
        }
        for s in [
            "",
            "-",
            "1.",
            ".5",
            "1e5",
            "1.2.3",
            "abc",
            "99999999999999999999999999999",
            // Far past i128's range: must be refused, not overflow.
            "123456789012345678901234567890123456789012345678901234567890",
            "-0.000000000000000000000000000000000000000000000000001",
        ] {
            assert_eq!(fast_decimal(s.as_bytes()), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn plain_decimals_agree(int in 0u64..10_000_000_000, frac in 0u32..100_000_000, neg: bool) {
            let s = format!("{}{int}.{frac}", if neg { "-" } else { "" });
            prop_assert_eq!(fast_decimal(s.as_bytes()), parse_decimal(&s));
        }
    }
}
