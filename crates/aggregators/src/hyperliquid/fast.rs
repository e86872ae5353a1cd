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

    /// A string without escapes or control characters, scanned eight bytes at a time.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let mut j = 0;
        for word in rest.chunks_exact(8) {
            let Ok(word) = <[u8; 8]>::try_from(word) else {
                break;
            };
            let m = special(u64::from_le_bytes(word));
            if m != 0 {
                j += (m.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        while let Some(&c) = rest.get(j) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            j += 1;
        }
        if *rest.get(j)? != b'"' {
            return None;
        }
        self.i = start + j + 1;
        // Quote positions are ASCII, so these are char boundaries.
        self.s.get(start..start + j)
    }

    /// A key: the server's keys are matched in place (no scan); anything else is scanned.
    fn key(&mut self) -> Option<Key> {
        self.eat(b'"')?;
        let (key, n) = match self.b[self.i..] {
            [b'c', b'o', b'i', b'n', b'"', ..] => (Key::Coin, 4),
            [b's', b'i', b'd', b'e', b'"', ..] => (Key::Side, 4),
            [b'p', b'x', b'"', ..] => (Key::Px, 2),
            [b's', b'z', b'"', ..] => (Key::Sz, 2),
            [b't', b'i', b'm', b'e', b'"', ..] => (Key::Time, 4),
            [b't', b'i', b'd', b'"', ..] => (Key::Tid, 3),
            [b'u', b's', b'e', b'r', b's', b'"', ..] => (Key::Users, 5),
            _ => {
                self.i -= 1;
                return Some(match self.string()? {
                    "coin" => Key::Coin,
                    "side" => Key::Side,
                    "px" => Key::Px,
                    "sz" => Key::Sz,
                    "time" => Key::Time,
                    "tid" => Key::Tid,
                    "users" => Key::Users,
                    _ => Key::Other,
                });
            }
        };
        self.i += n + 1;
        Some(key)
    }

    /// Reads a run of ASCII digits (eight per step while it can) into `v`, wrapping on
    /// overflow; returns how many there were (callers refuse more than 18).
    fn digits(&mut self, v: &mut u64) -> usize {
        let start = self.i;
        while let Some(eight) = self.b.get(self.i..self.i + 8).and_then(digits8) {
            *v = v.wrapping_mul(100_000_000).wrapping_add(eight);
            self.i += 8;
        }
        while let Some(&c) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            *v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            self.i += 1;
        }
        self.i - start
    }

    /// A decimal string (`-?digits(.digits)?`) parsed in the same pass that finds its closing
    /// quote; more than 18 digits go through `fast_decimal`; anything else gives up.
    fn decimal(&mut self) -> Option<Decimal> {
        self.eat(b'"')?;
        let start = self.i;
        let neg = self.lit(b"-").is_some();
        let mut mantissa = 0u64;
        let whole = self.digits(&mut mantissa);
        let dot = self.lit(b".").is_some();
        let scale = if dot { self.digits(&mut mantissa) } else { 0 };
        let end = self.i;
        self.lit(b"\"")?;
        if whole == 0 || (dot && scale == 0) {
            return None;
        }
        if whole + scale > 18 {
            return fast_decimal(&self.b[start..end]);
        }
        // At most 18 digits: below 10^18, so nothing wrapped and it fits an i64.
        let m = i64::try_from(mantissa).ok()?;
        Decimal::try_new(if neg { -m } else { m }, u32::try_from(scale).ok()?).ok()
    }

    /// `0x` and 40 hex digits in quotes, parsed in place (the parse rejects every byte a
    /// string scan would stop at, so no scan is needed).
    fn address(&mut self) -> Option<Address> {
        self.eat(b'"')?;
        if self.b.get(self.i + 42) != Some(&b'"') {
            return None;
        }
        let a = Address::parse(self.s.get(self.i..self.i + 42)?).ok()?;
        self.i += 43;
        Some(a)
    }

    /// A JSON integer of at most 18 digits (times and trade ids), eight digits per step.
    fn integer(&mut self) -> Option<i64> {
        self.ws();
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: u64 = 0;
        self.digits(&mut v);
        let digits = self.i - start;
        if digits == 0
            || digits > 18
            || (digits > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            // Longer numbers may not fit (the general decoder decides); the rest is not an
            // integer.
            return None;
        }
        // At most 18 digits: below 10^18, so it fits and nothing above wrapped.
        let v = i64::try_from(v).ok()?;
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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// For eight bytes read little-endian: the high bit of every byte that is `"`, `\\` or a control
/// character (< 0x20). Bytes after the first such byte may be flagged spuriously (borrows carry
/// upwards), so only the lowest flag is meaningful — which is the one the scanner uses.
#[inline]
fn special(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (zero(quote) | zero(backslash) | (w.wrapping_sub(ONES * 0x20) & !w)) & HIGH
}

/// The value of eight ASCII digits (the first most significant), or `None` if any byte is not
/// a digit: three multiplications instead of eight steps.
fn digits8(bytes: &[u8]) -> Option<u64> {
    let w = u64::from_le_bytes(bytes.try_into().ok()?);
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not leave it.
    if w & 0xf0f0_f0f0_f0f0_f0f0 != ONES * 0x30
        || (w + ONES * 6) & 0xf0f0_f0f0_f0f0_f0f0 != ONES * 0x30
    {
        return None;
    }
    let d = w - ONES * 0x30;
    // Pairs: byte 2k becomes 10·d[2k] + d[2k+1] (< 100, no carry).
    let d = d.wrapping_mul(10).wrapping_add(d >> 8);
    // Then the four pairs into one number.
    let lo = d & 0x0000_00ff_0000_00ff;
    let hi = (d >> 16) & 0x0000_00ff_0000_00ff;
    Some(
        (lo.wrapping_mul(100 + (1_000_000 << 32))
            .wrapping_add(hi.wrapping_mul(1 + (10_000 << 32))))
            >> 32,
    )
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

/// The keys of a trade object.
enum Key {
    Coin,
    Side,
    Px,
    Sz,
    Time,
    Tid,
    Users,
    Other,
}

impl Cur<'_> {
    /// Consumes `lit` if the input continues with exactly it (no whitespace allowed). A
    /// fixed-size array, so the comparison is a few word loads rather than a `memcmp` call.
    fn lit<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let next: &[u8; N] = self.b.get(self.i..self.i + N)?.try_into().ok()?;
        (next == lit).then(|| self.i += N)
    }
}

/// A trade object in the server's own layout — `coin, side, px, sz`, then `hash` and `time`
/// in either order, `tid`, `users`, no whitespace — read straight through. `None` on any
/// deviation; the caller then rereads the object key by key.
fn trade_in_server_order(cur: &mut Cur<'_>) -> Option<Trade> {
    cur.lit(br#"{"coin":"#)?;
    let coin = Coin::new(cur.string()?).ok()?;
    cur.lit(br#","side":""#)?;
    let side = match cur.b.get(cur.i..cur.i + 2)? {
        b"B\"" => Side::Buy,
        b"A\"" => Side::Sell,
        _ => return None,
    };
    cur.i += 2;
    cur.lit(br#","px":"#)?;
    let px = cur.decimal()?;
    cur.lit(br#","sz":"#)?;
    let sz = cur.decimal()?;
    let time = if cur.lit(br#","hash":"#).is_some() {
        cur.string()?;
        cur.lit(br#","time":"#)?;
        cur.integer()?
    } else {
        cur.lit(br#","time":"#)?;
        let time = cur.integer()?;
        cur.lit(br#","hash":"#)?;
        cur.string()?;
        time
    };
    cur.lit(br#","tid":"#)?;
    let tid = u64::try_from(cur.integer()?).ok()?;
    cur.lit(br#","users":["#)?;
    let a = cur.address()?;
    cur.lit(b",")?;
    let b = cur.address()?;
    cur.lit(b"]}")?;
    Some(Trade {
        coin,
        side,
        px,
        sz,
        time: Timestamp(time),
        tid,
        users: Some([a, b]),
    })
}

fn trade(cur: &mut Cur<'_>) -> Option<Trade> {
    let start = cur.i;
    if let Some(t) = trade_in_server_order(cur) {
        return Some(t);
    }
    cur.i = start;
    trade_by_key(cur)
}

fn trade_by_key(cur: &mut Cur<'_>) -> Option<Trade> {
    cur.eat(b'{')?;
    let (mut coin, mut side, mut px, mut sz, mut time, mut tid, mut users) =
        (None, None, None, None, None, None, None);
    if cur.peek()? == b'}' {
        return None;
    }
    loop {
        let key = cur.key()?;
        cur.eat(b':')?;
        match key {
            Key::Coin => set(&mut coin, Coin::new(cur.string()?).ok()?)?,
            Key::Side => {
                cur.ws();
                let s = match cur.b[cur.i..] {
                    [b'"', b'B', b'"', ..] => Side::Buy,
                    [b'"', b'A', b'"', ..] => Side::Sell,
                    _ => return None,
                };
                cur.i += 3;
                set(&mut side, s)?;
            }
            Key::Px => set(&mut px, cur.decimal()?)?,
            Key::Sz => set(&mut sz, cur.decimal()?)?,
            Key::Time => set(&mut time, cur.integer()?)?,
            Key::Tid => set(&mut tid, u64::try_from(cur.integer()?).ok()?)?,
            Key::Users => {
                if cur.peek()? == b'n' {
                    cur.skip_scalar()?;
                    set(&mut users, None)?;
                } else {
                    cur.eat(b'[')?;
                    let a = cur.address()?;
                    cur.eat(b',')?;
                    let b = cur.address()?;
                    cur.eat(b']')?;
                    set(&mut users, Some([a, b]))?;
                }
            }
            // The hash and any future scalar field are skipped; nested values fall back.
            Key::Other => cur.skip_scalar()?,
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

    /// The in-place decimal reader on a quoted value (what it returns must be what the
    /// general parser returns for the unquoted text, or nothing).
    fn quoted_decimal(s: &str) -> Option<Decimal> {
        let text = format!("\"{s}\",");
        let mut cur = Cur {
            s: &text,
            b: text.as_bytes(),
            i: 0,
        };
        let d = cur.decimal()?;
        assert_eq!(cur.b[cur.i], b',', "{s}: must stop after the closing quote");
        Some(d)
    }

    #[test]
    fn quoted_decimals_match_the_general_parser() {
        for s in [
            "0",
            "1915.5",
            "-0.0000015186",
            "1516669192.1953897476",
            "123456789012345678",
            "12345678.9012345678",
            "007.10",
        ] {
            assert_eq!(quoted_decimal(s), parse_decimal(s), "{s}");
            assert!(quoted_decimal(s).is_some(), "{s}");
        }
        for s in [
            "",
            "-",
            "1.",
            ".5",
            "1e5",
            "1.2.3",
            "abc",
            "--1",
            "1-",
            " 1",
            "1 ",
            "123456789012345678901234567890123456789012345678901234567890",
        ] {
            assert_eq!(quoted_decimal(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn quoted_plain_decimals_agree(int in 0u64..u64::MAX, frac in 0u64..u64::MAX, digits in 0usize..20, neg: bool) {
            let frac = frac.to_string();
            let s = format!("{}{int}.{}", if neg { "-" } else { "" }, &frac[..digits.min(frac.len())]);
            let general = parse_decimal(&s);
            // When it answers, it answers like the general parser (beyond 28 digits it may
            // decline and leave the frame to the general decoder); up to 18 it must answer.
            if let Some(d) = quoted_decimal(&s) {
                prop_assert_eq!(Some(d), general);
            }
            if s.bytes().filter(u8::is_ascii_digit).count() <= 18 {
                prop_assert_eq!(quoted_decimal(&s), general);
            }
        }

        #[test]
        fn the_word_scan_finds_the_first_quote_backslash_or_control_byte(bytes: [u8; 8]) {
            let first = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            let m = special(u64::from_le_bytes(bytes));
            let found = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
            prop_assert_eq!(found, first);
        }

        #[test]
        fn eight_digits_at_once_agree_with_digit_by_digit(bytes: [u8; 8], n in 0u64..100_000_000) {
            let reference = bytes
                .iter()
                .try_fold(0u64, |v, c| c.is_ascii_digit().then(|| v * 10 + u64::from(c - b'0')));
            prop_assert_eq!(digits8(&bytes), reference);
            let text = format!("{n:08}");
            prop_assert_eq!(digits8(text.as_bytes()), Some(n));
        }

        #[test]
        fn plain_decimals_agree(int in 0u64..10_000_000_000, frac in 0u32..100_000_000, neg: bool) {
            let s = format!("{}{int}.{frac}", if neg { "-" } else { "" });
            prop_assert_eq!(fast_decimal(s.as_bytes()), parse_decimal(&s));
        }
    }
}
