//! Tolerant number decoding for Hyperliquid's wire format: decimal quantities arrive as JSON
//! strings (`"1915.5"`), a few fields as JSON numbers, and old responses sometimes as integers
//! in strings. Everything becomes an exact `Decimal`; nothing goes through `f64` unless the
//! venue itself sent a JSON float.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};

/// Parses a decimal string, accepting plain (`0.00001`) and scientific (`1e-5`) notation.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number as a string or a JSON number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).ok_or_else(|| E::custom(format_args!("invalid decimal {:?}", truncate(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        Decimal::try_from(v)
            .map_err(|_| E::custom(format_args!("number {v} does not fit a decimal")))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `#[serde(deserialize_with = "dec")]`: a required decimal.
pub fn dec<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

/// `#[serde(deserialize_with = "opt_dec", default)]`: a decimal that may be `null` or absent.
pub fn opt_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            dec(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// An integer that may arrive as a JSON number or a string (ccxt-normalised responses).
pub fn int_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct IntVisitor;
    impl<'de> Visitor<'de> for IntVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("integer too large"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format_args!("invalid integer {:?}", truncate(v))))
        }
    }
    d.deserialize_any(IntVisitor)
}

/// An unsigned id that may arrive as a JSON number or a string.
pub fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = int_lenient(d)?;
    u64::try_from(v).map_err(|_| de::Error::custom("negative id"))
}

/// Optional variant of [`u64_lenient`].
pub fn opt_u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            u64_lenient(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// Formats a decimal the way Hyperliquid does on the wire: a string with at least one
/// fractional digit (`"1915.0"`, `"0.0095"`).
pub fn wire_decimal(d: &Decimal) -> String {
    let n = d.normalize();
    let s = n.to_string();
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// A borrowed-or-owned string; wire structs use it so decoding borrows and encoding owns.
pub type Str<'a> = Cow<'a, str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "dec")]
        a: Decimal,
        #[serde(deserialize_with = "opt_dec", default)]
        b: Option<Decimal>,
    }

    #[test]
    fn decimals_from_strings_numbers_and_null() {
        let t: T = serde_json::from_str(r#"{"a":"0.0000015186","b":null}"#).unwrap();
        assert_eq!(t.a.to_string(), "0.0000015186");
        assert_eq!(t.b, None);
        let t: T = serde_json::from_str(r#"{"a":20,"b":"1e-5"}"#).unwrap();
        assert_eq!(t.a, Decimal::from(20));
        assert_eq!(t.b.unwrap().to_string(), "0.00001");
        assert!(serde_json::from_str::<T>(r#"{"a":"abc"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":[1]}"#).is_err());
    }

    #[test]
    fn wire_format_keeps_a_fraction() {
        assert_eq!(wire_decimal(&Decimal::from(1915)), "1915.0");
        assert_eq!(wire_decimal(&"0.009500".parse().unwrap()), "0.0095");
    }
}
