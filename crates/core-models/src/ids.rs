//! Validated identifiers: coins, on-chain addresses, incident keys and event ids.
//!
//! Every identifier is parsed once at the edge (`FromStr`/`TryFrom`) and trusted afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use crate::error::ModelError;

/// A Hyperliquid asset name as it appears on the wire: `"BTC"`, `"kPEPE"`, spot `"@107"`,
/// `"PURR/USDC"`, or a HIP-3 builder-deployed perp such as `"xyz:XYZ100"`.
///
/// Cloning is cheap (names up to 23 bytes are stored inline).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Coin(SmolStr);

/// Byte-wise order (the same as `str`'s), compared inline: coin names are a few bytes and
/// are compared on every lookup of the per-market maps, where a `memcmp` call costs more than
/// the comparison.
impl Ord for Coin {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return x.cmp(y);
            }
        }
        a.len().cmp(&b.len())
    }
}

impl PartialOrd for Coin {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Coin {
    /// Longest coin name accepted; real names are far shorter.
    pub const MAX_LEN: usize = 64;

    /// Parses a coin name, rejecting empty, over-long or control-character names.
    pub fn new(name: &str) -> Result<Self, ModelError> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(ModelError::InvalidCoin(name.chars().take(80).collect()));
        }
        // Real names are printable ASCII: checked a byte at a time; anything else gets the
        // full Unicode check.
        if !name.bytes().all(|b| b.is_ascii_graphic())
            && name.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ModelError::InvalidCoin(name.escape_debug().collect()));
        }
        Ok(Self(SmolStr::new(name)))
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// True for spot names (`@N` or `BASE/QUOTE`), false for perps.
    pub fn is_spot(&self) -> bool {
        self.0.starts_with('@') || self.0.contains('/')
    }

    /// The HIP-3 dex prefix (`"xyz"` for `"xyz:XYZ100"`), if any.
    pub fn dex(&self) -> Option<&str> {
        self.0.split_once(':').map(|(dex, _)| dex)
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Coin({})", self.0)
    }
}

impl FromStr for Coin {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for Coin {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Coin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

struct StrVisitor<T>(fn(&str) -> Result<T, ModelError>, &'static str);

impl<T> serde::de::Visitor<'_> for StrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Coin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Coin::new, "a coin name"))
    }
}

/// A 20-byte EVM-style address (Hyperliquid users, vaults). Displayed as lowercase `0x…` hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address([u8; 20]);

impl Address {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses `0x` followed by 40 hex digits (any case).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let invalid = || ModelError::InvalidAddress(truncate(s));
        let hex_part = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(invalid)?;
        let digits: &[u8; 40] = hex_part.as_bytes().try_into().map_err(|_| invalid())?;
        Self::from_hex_digits(digits).ok_or_else(invalid)
    }

    /// The address whose 40 hex digits (any case, no `0x`) these are, or `None` if any byte
    /// is not a hex digit. Addresses are parsed twice for every trade on the hot path: each
    /// digit is classified and valued by the same few byte operations, with no branch and no
    /// table, so the compiler does all forty at once in vector registers. Always inlined: the
    /// 21-byte answer would otherwise come back through memory, written in pieces and read
    /// back whole, which the processor cannot forward.
    #[inline(always)]
    pub fn from_hex_digits(digits: &[u8; 40]) -> Option<Self> {
        let mut nibbles = [0u8; 40];
        let mut bad = 0u8;
        for (n, &c) in nibbles.iter_mut().zip(digits) {
            let digit = c.wrapping_sub(b'0');
            // 'a'..='f' and 'A'..='F' alike; every other byte lands at 6 or above.
            let letter = (c | 0x20).wrapping_sub(b'a');
            let (is_digit, is_letter) = (digit < 10, letter < 6);
            bad |= u8::from(!(is_digit | is_letter));
            *n = if is_digit {
                digit
            } else {
                letter.wrapping_add(10)
            };
        }
        if bad != 0 {
            return None;
        }
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
            *o = (pair[0] << 4) | pair[1];
        }
        Some(Self(out))
    }

    /// Short form for messages: `0xf3f4…2a1b`.
    pub fn short(&self) -> String {
        let full = self.to_string();
        format!("{}…{}", &full[..6], &full[38..])
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(
            Address::parse,
            "a 0x-prefixed 20-byte hex address",
        ))
    }
}

/// The stable identity of an incident, e.g. `oracle_deviation:ETH` or `hlp_loss_24h:hlp`.
///
/// Detections with the same key update one incident instead of opening new ones, so a
/// condition that persists for an hour is one incident, not 3,600 alerts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentKey(String);

impl IncidentKey {
    /// Builds a key from a detector name and the parts that scope it (asset, user, venue …).
    pub fn new(detector: &str, scope: &[&str]) -> Self {
        let mut key = String::with_capacity(detector.len() + 16 * scope.len());
        key.push_str(detector);
        for part in scope {
            key.push(':');
            key.push_str(part);
        }
        Self(key)
    }

    /// Parses a key received from outside (API paths, stored rows).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
            return Err(ModelError::InvalidIncidentKey(truncate(s)));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key in `protocol`'s namespace: `<protocol>/<key>`, so the same detector and asset
    /// on two protocols never fold into one incident. The default protocol's keys carry no
    /// prefix, which keeps every key (and so every incident id) stored before protocols were
    /// first-class unchanged. Idempotent.
    pub fn in_protocol(self, protocol: &ProtocolId) -> Self {
        if protocol.is_default() {
            return self;
        }
        let prefix = protocol.as_str();
        if self
            .0
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return self;
        }
        Self(format!("{prefix}/{}", self.0))
    }
}

/// Which protocol (venue) a fact belongs to: `hyperliquid`, `dydx`, `gmx` … Lowercase
/// `[a-z0-9][a-z0-9_-]*`, at most 32 characters. The default is [`ProtocolId::HYPERLIQUID`]:
/// rows stored before protocols were first-class are Hyperliquid's.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProtocolId(std::borrow::Cow<'static, str>);

impl ProtocolId {
    /// Hyperliquid, the protocol the open core watches.
    pub const HYPERLIQUID: Self = Self(std::borrow::Cow::Borrowed("hyperliquid"));

    /// Parses an id received from outside (config, API query, stored row).
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(ModelError::InvalidName {
                kind: "protocol id",
                value: truncate(s),
                rule: "expected [a-z0-9][a-z0-9_-]*, at most 32 characters",
            });
        }
        if s == Self::HYPERLIQUID.as_str() {
            return Ok(Self::HYPERLIQUID);
        }
        Ok(Self(std::borrow::Cow::Owned(s.to_owned())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the default protocol (Hyperliquid).
    pub fn is_default(&self) -> bool {
        *self == Self::HYPERLIQUID
    }
}

impl Default for ProtocolId {
    fn default() -> Self {
        Self::HYPERLIQUID
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtocolId({})", self.0)
    }
}

impl FromStr for ProtocolId {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ProtocolId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IncidentKey({})", self.0)
    }
}

/// Deterministic id of a stored item: a prefix and 16 hex digits of a stable 64-bit hash.
///
/// The same inputs always give the same id, so a replay produces byte-identical output and a
/// re-delivered event is recognised as a duplicate.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StableId(String);

impl StableId {
    /// Derives an id from a prefix (`evt`, `inc`, `alr` …) and the identifying parts.
    pub fn derive(prefix: &str, parts: &[&str]) -> Self {
        let mut h = Fnv64::new();
        for p in parts {
            h.write(p.as_bytes());
            h.write(&[0x1f]);
        }
        Self(format!("{prefix}_{:016x}", h.finish()))
    }

    /// Parses an id received from outside.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let ok = s.len() <= 64
            && !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ModelError::InvalidId(truncate(s)))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StableId({})", self.0)
    }
}

/// FNV-1a, 64 bit: tiny, stable across platforms and releases (unlike `DefaultHasher`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A fresh hasher.
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coin_accepts_real_names_and_rejects_garbage() {
        for ok in ["BTC", "kPEPE", "@107", "PURR/USDC", "xyz:XYZ100"] {
            assert_eq!(Coin::new(ok).unwrap().as_str(), ok);
        }
        assert!(Coin::new("@107").unwrap().is_spot());
        assert!(!Coin::new("BTC").unwrap().is_spot());
        assert_eq!(Coin::new("flx:CRCL").unwrap().dex(), Some("flx"));
        for bad in ["", "BT C", "a\nb", &"X".repeat(65)] {
            assert!(Coin::new(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn coins_order_like_their_names(a in "[@A-Za-z0-9:/]{1,12}", b in "[@A-Za-z0-9:/]{1,12}") {
            let (ca, cb) = (Coin::new(&a).unwrap(), Coin::new(&b).unwrap());
            proptest::prop_assert_eq!(ca.cmp(&cb), a.cmp(&b));
            proptest::prop_assert_eq!(ca.cmp(&ca.clone()), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn address_roundtrips_lowercase() {
        let a = Address::parse("0xDFC24B077BC1425AD1DEA75BCB6F8158E10DF303").unwrap();
        assert_eq!(a.to_string(), "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303");
        assert_eq!(a.short(), "0xdfc2…f303");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        for bad in [
            "",
            "0x",
            "dfc24b077bc1425ad1dea75bcb6f8158e10df303",
            "0xzz24b077bc1425ad1dea75bcb6f8158e10df303",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    /// The obvious digit-by-digit decoding `Address::from_hex_digits` must agree with.
    fn hex_reference(digits: &[u8; 40]) -> Option<[u8; 20]> {
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            *o = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(out)
    }

    fn decoded(digits: &[u8; 40]) -> Option<[u8; 20]> {
        Address::from_hex_digits(digits).map(|a| *a.as_bytes())
    }

    #[test]
    fn hex_digits_agree_with_digit_by_digit_decoding_for_every_single_byte_change() {
        for base in [
            *b"0123456789abcdefABCDEF0123456789abcdefAB",
            *b"fFeE0a9AdFC24B077BC1425AD1DEA75BCB6F8158",
        ] {
            assert_eq!(decoded(&base), hex_reference(&base));
            for at in [0, 1, 7, 8, 20, 39] {
                for c in 0..=255u8 {
                    let mut w = base;
                    w[at] = c;
                    assert_eq!(decoded(&w), hex_reference(&w), "{w:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hex_digits_agree_with_digit_by_digit_decoding(bytes in proptest::collection::vec(proptest::num::u8::ANY, 40), hexy in proptest::collection::vec(proptest::sample::select(b"0123456789abcdefABCDEF/:@`Gg".to_vec()), 40)) {
            for v in [bytes, hexy] {
                let w: [u8; 40] = v.try_into().unwrap_or([0; 40]);
                proptest::prop_assert_eq!(decoded(&w), hex_reference(&w));
            }
        }
    }

    #[test]
    fn stable_ids_are_deterministic_and_distinct() {
        let a = StableId::derive("evt", &["oracle", "ETH", "1"]);
        let b = StableId::derive("evt", &["oracle", "ETH", "1"]);
        let c = StableId::derive("evt", &["oracle", "ETH1", ""]);
        assert_eq!(a, b);
        assert_ne!(a, c, "part separators must prevent ambiguous joins");
        assert!(a.as_str().starts_with("evt_"));
        assert!(StableId::parse(a.as_str()).is_ok());
        assert!(StableId::parse("../etc/passwd").is_err());
    }

    #[test]
    fn incident_keys_join_scope() {
        let k = IncidentKey::new("oracle_deviation", &["ETH", "binance"]);
        assert_eq!(k.as_str(), "oracle_deviation:ETH:binance");
        assert!(IncidentKey::parse("").is_err());
    }
}
