//! A scanner for JSON whose layout is known in advance — Hyperliquid's `trades` frames and
//! the replay's own event lines. It reads strings eight bytes at a time, decimals and integers
//! in the pass that finds their end and addresses eight hex digits per step, and gives up
//! (`None`) on anything unusual — escapes, nesting, numbers it cannot represent exactly — so
//! the caller falls back to the general serde decoder, which then decides. Callers' property
//! tests hold every answer to the general decoder's.

use kamiyo_core_models::{Address, Decimal};

pub(crate) struct Cur<'a> {
    pub(crate) s: &'a str,
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Cur<'a> {
    /// A scanner at the start of `s`.
    pub(crate) fn new(s: &'a str) -> Self {
        Self {
            s,
            b: s.as_bytes(),
            i: 0,
        }
    }

    /// Consumes `lit` if the input continues with exactly it (no whitespace allowed). A
    /// fixed-size array, so the comparison is a few word loads rather than a `memcmp` call.
    #[inline]
    pub(crate) fn lit<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let next: &[u8; N] = self.b.get(self.i..self.i + N)?.try_into().ok()?;
        (next == lit).then(|| self.i += N)
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// The items of a list whose opening byte is consumed, up to and including `close`: `item`
    /// reads each; items are separated by commas (whitespace allowed around them).
    pub(crate) fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters, scanned eight bytes at a time.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
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

    /// A string of exactly `N` bytes (a hash, whose length the server never varies) skipped
    /// by checking all `N` at once: no byte may end it early, escape or be a control
    /// character, and a quote must follow. `None`, with nothing consumed, for anything else
    /// (the caller then scans it as any string).
    #[inline]
    pub(crate) fn skip_string_of_len<const N: usize>(&mut self) -> Option<()> {
        let body: &[u8; N] = self.b.get(self.i + 1..self.i + 1 + N)?.try_into().ok()?;
        if self.b.get(self.i) != Some(&b'"') || self.b.get(self.i + 1 + N) != Some(&b'"') {
            return None;
        }
        let special = body.iter().fold(0u8, |acc, &c| {
            acc | u8::from((c == b'"') | (c == b'\\') | (c < 0x20))
        });
        (special == 0).then(|| self.i += N + 2)
    }

    /// Reads a run of ASCII digits (eight per step while it can) into `v`, wrapping on
    /// overflow; returns how many there were (callers refuse more than 18).
    pub(crate) fn digits(&mut self, v: &mut u64) -> usize {
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

    /// [`Cur::digits`] byte by byte.
    #[inline]
    fn short_digits(&mut self, v: &mut u64) -> usize {
        let start = self.i;
        while let Some(d) = self
            .b
            .get(self.i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d < 10)
        {
            *v = v.wrapping_mul(10).wrapping_add(u64::from(d));
            self.i += 1;
        }
        self.i - start
    }

    /// A decimal string (`-?digits(.digits)?`) parsed in the same pass that finds its closing
    /// quote; more than 18 digits go through `fast_decimal`; anything else gives up.
    ///
    /// Always inlined, as is the body: returned from a call, an `Option<Decimal>` comes back
    /// through memory written a field at a time and is read back as one 16-byte load, which
    /// the processor cannot forward from the smaller stores — a stall of a dozen cycles per
    /// value (measured: `userFills` +5 %, `activeAssetCtx` +13 %).
    #[inline(always)]
    pub(crate) fn decimal(&mut self) -> Option<Decimal> {
        self.eat(b'"')?;
        self.decimal_body()
    }

    /// [`Cur::decimal`] with its opening quote consumed already (always inlined: see there).
    #[inline(always)]
    pub(crate) fn decimal_body(&mut self) -> Option<Decimal> {
        let start = self.i;
        let neg = self.lit(b"-").is_some();
        let mut mantissa = 0u64;
        // Prices and sizes are short runs of digits: byte by byte (the eight-at-once step of
        // `digits` would fail on most of them first).
        let whole = self.short_digits(&mut mantissa);
        let dot = self.lit(b".").is_some();
        let scale = if dot {
            self.short_digits(&mut mantissa)
        } else {
            0
        };
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

    /// A quoted decimal or `null`.
    pub(crate) fn opt_decimal(&mut self) -> Option<Option<Decimal>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        self.decimal().map(Some)
    }

    /// `key` (with its separators, exactly) and the decimal after it.
    pub(crate) fn decimal_field<const N: usize>(&mut self, key: &[u8; N]) -> Option<Decimal> {
        self.lit(key)?;
        self.decimal()
    }

    /// `[a,b]`: two quoted decimals.
    pub(crate) fn decimal_pair(&mut self) -> Option<[Decimal; 2]> {
        self.lit(b"[")?;
        let a = self.decimal()?;
        self.lit(b",")?;
        let b = self.decimal()?;
        self.lit(b"]")?;
        Some([a, b])
    }

    /// True when only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// `0x` and 40 hex digits in quotes, parsed in place (the parse rejects every byte a
    /// string scan would stop at, so no scan is needed). Always inlined, as the decimal
    /// readers are, so the 21-byte answer does not come back through memory.
    #[inline(always)]
    pub(crate) fn address(&mut self) -> Option<Address> {
        self.eat(b'"')?;
        let quoted: &[u8; 43] = self.b.get(self.i..self.i + 43)?.try_into().ok()?;
        let (prefix, rest) = quoted.split_first_chunk::<2>()?;
        let (digits, close) = rest.split_first_chunk::<40>()?;
        if !matches!(prefix, b"0x" | b"0X") || close != b"\"" {
            return None;
        }
        let a = Address::from_hex_digits(digits)?;
        self.i += 43;
        Some(a)
    }

    /// A JSON integer of at most 18 digits (times and trade ids), eight digits per step.
    pub(crate) fn integer(&mut self) -> Option<i64> {
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
    pub(crate) fn skip_scalar(&mut self) -> Option<()> {
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
pub(crate) fn special(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (zero(quote) | zero(backslash) | (w.wrapping_sub(ONES * 0x20) & !w)) & HIGH
}

/// The value of eight ASCII digits (the first most significant), or `None` if any byte is not
/// a digit: three multiplications instead of eight steps.
pub(crate) fn digits8(bytes: &[u8]) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperliquid::num::parse_decimal;
    use proptest::prelude::*;

    /// Plain decimals both readers must answer exactly as the general parser does.
    const PLAIN: [&str; 10] = [
        "0",
        "1915.5",
        "-0.0000015186",
        "1516669192.1953897476",
        "123456789012345678",
        "12345678.9012345678",
        "007.10",
        "-0",
        "-0.00",
        "0.000",
    ];

    /// Anything else: both readers decline (the general decoder decides).
    const NOT_PLAIN: [&str; 15] = [
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
        "99999999999999999999999999999",
        // Far past i128's range: must be refused, not overflow.
        "123456789012345678901234567890123456789012345678901234567890",
        "-0.000000000000000000000000000000000000000000000000001",
        "1_000",
    ];

    /// The in-place decimal reader on a quoted value (what it returns must be what the
    /// general parser returns for the unquoted text, or nothing).
    fn quoted_decimal(s: &str) -> Option<Decimal> {
        let text = format!("\"{s}\",");
        let mut cur = Cur::new(&text);
        let d = cur.decimal()?;
        assert_eq!(cur.b[cur.i], b',', "{s}: must stop after the closing quote");
        Some(d)
    }

    #[test]
    fn decimals_match_the_general_parser() {
        for s in PLAIN {
            let general = parse_decimal(s).map(|d| d.to_string());
            assert!(general.is_some(), "{s}");
            // Equal as text: the sign of zero and the scale's trailing zeros too.
            assert_eq!(
                fast_decimal(s.as_bytes()).map(|d| d.to_string()),
                general,
                "{s}"
            );
            assert_eq!(quoted_decimal(s).map(|d| d.to_string()), general, "{s}");
        }
        for s in NOT_PLAIN {
            assert_eq!(fast_decimal(s.as_bytes()), None, "{s}");
            assert_eq!(quoted_decimal(s), None, "{s}");
        }
    }

    #[test]
    fn a_fixed_length_string_is_skipped_only_when_a_string_scan_would_read_it_whole() {
        let skip = |text: &str| {
            let mut cur = Cur::new(text);
            let skipped = cur.skip_string_of_len::<4>().is_some();
            // Declining consumes nothing; skipping stops where a scan would.
            let scanned = Cur::new(text)
                .string()
                .map(|_| text.find("\",").map(|i| i + 1));
            (skipped, cur.i, scanned)
        };
        assert_eq!(skip(r#""0xab","#), (true, 6, Some(Some(6))));
        for declined in [
            r#""0xa","#,
            r#""0xabc","#,
            r#""0x\b","#,
            r#""0"ab","#,
            "\"0x\tb\",",
            "0xab\",",
            r#""0xa"#,
        ] {
            assert!(!skip(declined).0, "{declined}");
            assert_eq!(skip(declined).1, 0, "{declined}");
        }
    }

    proptest! {
        #[test]
        fn quoted_plain_decimals_agree(int in 0u64..u64::MAX, frac in 0u64..u64::MAX, digits in 0usize..20, neg: bool) {
            let frac = frac.to_string();
            let s = format!("{}{int}.{}", if neg { "-" } else { "" }, &frac[..digits.clamp(1, frac.len())]);
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
