//! The event log: an append-only hash chain over every stored security event, so that anyone
//! who has seen one head of the chain can later check that no event before it was changed,
//! removed, back-dated or slipped in — and so check an alert's lead time without trusting
//! the operator's database.
//!
//! Each stored event gets one entry, in `seq` order:
//!
//! - `digest` = SHA-256 of the event's canonical form ([`canonical`]): the JSON object that
//!   `GET /security/events` serves for it (`seq` included), with object keys sorted, no
//!   whitespace, UTF-8. A third party recomputes it from the API's answer with any JSON
//!   library (Python: `json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).
//! - `chain` = SHA-256 of the text `"{prev}:{seq}:{logged_ms}:{digest}"`, where `prev` is the
//!   previous entry's `chain` ([`GENESIS`] for the first) and `logged_ms` the wall-clock time the
//!   store committed the event, in Unix milliseconds. All hashes are lowercase hex.
//!
//! `logged_ms` is the time that matters for lead time: the event's own `time` is the engine's
//! clock (exchange time, or a replay's), while `logged_ms` is when the monitor wrote it down.
//! A head witnessed at some moment (a receipt, a poll of `/security/log`, a note kept by a
//! customer) fixes every entry before it: changing any one changes every later `chain`.
//! Entries outlive the events they cover (retention prunes events, never the log), so a
//! pruned event's entry still holds its place in the chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::security::SecurityEvent;
use crate::store::StoredEvent;
use crate::time::Timestamp;

/// The `prev` of the first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The event's sequence number.
    pub seq: i64,
    /// When the store committed the event (Unix ms, wall clock).
    pub logged_ms: i64,
    /// SHA-256 of the event's canonical form (hex).
    pub digest: String,
    /// SHA-256 linking this entry to the previous one (hex).
    pub chain: String,
}

/// Why a log (or an event against it) does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// An entry's `chain` is not the hash of its predecessor and its own fields.
    #[error("entry {seq}: chain {found} is not the link of its predecessor ({expected})")]
    BrokenLink {
        /// The entry.
        seq: i64,
        /// What it says.
        found: String,
        /// What it should say.
        expected: String,
    },
    /// Entries out of `seq` order, or one repeated.
    #[error("entry {seq} follows entry {prev}: sequence numbers must increase")]
    OutOfOrder {
        /// The entry.
        seq: i64,
        /// The one before it.
        prev: i64,
    },
    /// Entries logged earlier than the one before them.
    #[error("entry {seq} was logged at {logged_ms} ms, before its predecessor ({prev_ms} ms)")]
    BackInTime {
        /// The entry.
        seq: i64,
        /// Its time.
        logged_ms: i64,
        /// The predecessor's.
        prev_ms: i64,
    },
    /// An event whose canonical form does not hash to its entry's digest.
    #[error("event {seq}: digest {found} differs from the logged {logged}")]
    Altered {
        /// The event.
        seq: i64,
        /// The digest of the event as given.
        found: String,
        /// The digest in the log.
        logged: String,
    },
    /// An event with no entry, or a witnessed head that is not in the log.
    #[error("{0}")]
    Missing(String),
}

/// The canonical form of a stored event: the JSON object `GET /security/events` serves for it,
/// with keys sorted and no whitespace.
pub fn canonical(seq: i64, e: &SecurityEvent) -> Vec<u8> {
    let mut o = serde_json::Map::new();
    o.insert("seq".into(), seq.into());
    o.insert("id".into(), e.id.to_string().into());
    o.insert("incident_id".into(), e.incident_id.to_string().into());
    o.insert("incident_key".into(), e.incident_key.to_string().into());
    o.insert("protocol".into(), e.protocol.to_string().into());
    o.insert("change".into(), e.change.as_str().into());
    o.insert("detector".into(), e.detector.clone().into());
    o.insert("threat_type".into(), e.threat_type.as_str().into());
    o.insert("severity".into(), e.severity.as_str().into());
    if let Some(asset) = &e.asset {
        o.insert("asset".into(), asset.to_string().into());
    }
    o.insert("title".into(), e.title.clone().into());
    o.insert("indicators".into(), e.indicators.clone().into());
    o.insert(
        "evidence".into(),
        serde_json::to_value(&e.evidence).unwrap_or_default(),
    );
    o.insert("time".into(), e.time.to_rfc3339().into());
    canonical_json(&serde_json::Value::Object(o))
}

/// Any JSON value in canonical form: object keys sorted (by their UTF-8 bytes), no whitespace.
/// This is how a third party hashes an event object it received from the API.
pub fn canonical_json(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            write_list(out, b'{', b'}', keys, |k, out| {
                write_string(k, out);
                out.push(b':');
                if let Some(value) = map.get(k) {
                    write_canonical(value, out);
                }
            });
        }
        serde_json::Value::Array(items) => {
            write_list(out, b'[', b']', items, write_canonical);
        }
        serde_json::Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// `open`, the items written by `each` separated by commas, `close`.
fn write_list<T>(
    out: &mut Vec<u8>,
    open: u8,
    close: u8,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(T, &mut Vec<u8>),
) {
    out.push(open);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(close);
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(serde_json::Value::from(s).to_string().as_bytes());
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The digest of a stored event.
pub fn digest(seq: i64, e: &SecurityEvent) -> String {
    sha256_hex(&canonical(seq, e))
}

/// The `chain` of an entry following `prev`.
pub fn link(prev: &str, seq: i64, logged_ms: i64, digest: &str) -> String {
    sha256_hex(format!("{prev}:{seq}:{logged_ms}:{digest}").as_bytes())
}

/// The entries that log `events` (in `seq` order) after `head`, committed at `now`. A clock
/// that stepped back is held at the head's time, so `logged_ms` never decreases.
pub fn append(head: Option<&LogEntry>, events: &[StoredEvent], now: Timestamp) -> Vec<LogEntry> {
    let mut prev = head.map_or_else(|| GENESIS.to_owned(), |h| h.chain.clone());
    let logged_ms = head.map_or(now.0, |h| now.0.max(h.logged_ms));
    let mut sorted: Vec<&StoredEvent> = events.iter().collect();
    sorted.sort_by_key(|s| s.seq);
    sorted
        .into_iter()
        .map(|s| {
            let digest = digest(s.seq, &s.event);
            let chain = link(&prev, s.seq, logged_ms, &digest);
            prev.clone_from(&chain);
            LogEntry {
                seq: s.seq,
                logged_ms,
                digest,
                chain,
            }
        })
        .collect()
}

/// Checks that `entries` (consecutive, oldest first) link to each other and to `prev` (the
/// entry before the first; `None` when the first is the log's first).
pub fn verify(prev: Option<&LogEntry>, entries: &[LogEntry]) -> Result<(), LogError> {
    let mut before = prev.cloned();
    for e in entries {
        let expected_prev = before.as_ref().map_or(GENESIS, |b| b.chain.as_str());
        if let Some(b) = &before {
            if e.seq <= b.seq {
                return Err(LogError::OutOfOrder {
                    seq: e.seq,
                    prev: b.seq,
                });
            }
            if e.logged_ms < b.logged_ms {
                return Err(LogError::BackInTime {
                    seq: e.seq,
                    logged_ms: e.logged_ms,
                    prev_ms: b.logged_ms,
                });
            }
        }
        let expected = link(expected_prev, e.seq, e.logged_ms, &e.digest);
        if expected != e.chain {
            return Err(LogError::BrokenLink {
                seq: e.seq,
                found: e.chain.clone(),
                expected,
            });
        }
        before = Some(e.clone());
    }
    Ok(())
}

/// Checks each event against its entry: every event must have one, with its digest.
pub fn verify_events(entries: &[LogEntry], events: &[StoredEvent]) -> Result<(), LogError> {
    let by_seq: std::collections::HashMap<i64, &LogEntry> =
        entries.iter().map(|e| (e.seq, e)).collect();
    for s in events {
        let Some(entry) = by_seq.get(&s.seq) else {
            return Err(LogError::Missing(format!(
                "event {} has no log entry",
                s.seq
            )));
        };
        let found = digest(s.seq, &s.event);
        if found != entry.digest {
            return Err(LogError::Altered {
                seq: s.seq,
                found,
                logged: entry.digest.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Coin, IncidentKey, ProtocolId, StableId};
    use crate::security::{Evidence, IncidentChange, Severity, ThreatType};

    fn event(n: i64) -> StoredEvent {
        StoredEvent {
            seq: n,
            event: SecurityEvent {
                id: StableId::derive("evt", &[&n.to_string()]),
                protocol: ProtocolId::HYPERLIQUID,
                incident_id: StableId::derive("inc", &["oracle:ETH"]),
                incident_key: IncidentKey::new("oracle", &["ETH"]),
                change: IncidentChange::Opened,
                detector: "oracle".into(),
                threat_type: ThreatType::OracleDeviation,
                severity: Severity::High,
                asset: Some(Coin::new("ETH").unwrap()),
                title: "ETH oracle 2.4% from the outside reference — \"stale\"".into(),
                indicators: vec!["mark_vs_oracle".into()],
                evidence: Evidence::new()
                    .with("deviation_pct", rust_decimal::Decimal::new(24, 1))
                    .with("venues", 3_i64)
                    .with("agree", true),
                time: Timestamp(1_741_786_800_000 + n),
            },
        }
    }

    fn log(n: i64) -> Vec<LogEntry> {
        let events: Vec<StoredEvent> = (1..=n).map(event).collect();
        append(None, &events, Timestamp(1_760_000_000_000))
    }

    #[test]
    fn the_canonical_form_is_the_api_object_with_sorted_keys() {
        let c = String::from_utf8(canonical(7, &event(7).event)).unwrap();
        assert!(c.starts_with("{\"asset\":\"ETH\",\"change\":\"opened\",\"detector\":\"oracle\",\"evidence\":{\"agree\":true,\"deviation_pct\":\"2.4\",\"venues\":3},"), "{c}");
        assert!(c.contains("\"seq\":7,"), "{c}");
        assert!(c.contains("\\\"stale\\\""), "{c}");
        assert!(
            c.ends_with(
                "\"title\":\"ETH oracle 2.4% from the outside reference — \\\"stale\\\"\"}"
            ),
            "{c}"
        );
        // The same bytes hash to the same digest in Python's hashlib over
        // json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).
        assert_eq!(digest(7, &event(7).event), sha256_hex(c.as_bytes()));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_log_verifies_and_extends() {
        let entries = log(5);
        assert_eq!(entries.len(), 5);
        verify(None, &entries).unwrap();
        // A later append continues from the head.
        let more = append(
            entries.last(),
            &[event(6), event(7)],
            Timestamp(1_760_000_001_000),
        );
        verify(entries.last(), &more).unwrap();
        let whole: Vec<LogEntry> = entries.iter().chain(&more).cloned().collect();
        verify(None, &whole).unwrap();
        // A page checked on its own against the entry before it.
        verify(Some(&whole[2]), &whole[3..]).unwrap();
        verify_events(&whole, &(1..=7).map(event).collect::<Vec<_>>()).unwrap();
    }

    #[test]
    fn a_clock_that_steps_back_does_not_back_date_the_log() {
        let entries = log(2);
        let later = append(entries.last(), &[event(3)], Timestamp(1_700_000_000_000));
        assert_eq!(later[0].logged_ms, entries[1].logged_ms);
        verify(entries.last(), &later).unwrap();
    }

    #[test]
    fn every_kind_of_rewrite_is_caught() {
        let good = log(6);
        // An event's content changed: its digest no longer matches.
        let mut altered = event(3);
        altered.event.severity = Severity::Critical;
        let err = verify_events(&good, &[altered]).unwrap_err();
        assert!(matches!(err, LogError::Altered { seq: 3, .. }), "{err}");
        // The entry's digest rewritten to match: its link breaks.
        let mut bad = good.clone();
        bad[2].digest = digest(3, &{
            let mut e = event(3).event;
            e.severity = Severity::Critical;
            e
        });
        assert!(matches!(
            verify(None, &bad),
            Err(LogError::BrokenLink { seq: 3, .. })
        ));
        // ... and relinked: every later link breaks against a head seen before.
        bad[2].chain = link(&bad[1].chain, 3, bad[2].logged_ms, &bad[2].digest);
        assert!(matches!(
            verify(None, &bad),
            Err(LogError::BrokenLink { seq: 4, .. })
        ));
        // Back-dated (relinked from there on): earlier than its predecessor.
        let mut back = good.clone();
        back[4].logged_ms -= 60_000;
        assert!(matches!(
            verify(None, &back),
            Err(LogError::BackInTime { seq: 5, .. })
        ));
        // An entry removed.
        let mut gap = good.clone();
        gap.remove(3);
        assert!(matches!(
            verify(None, &gap),
            Err(LogError::BrokenLink { seq: 5, .. })
        ));
        // An entry slipped in, or the order changed.
        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            verify(None, &swapped),
            Err(LogError::BrokenLink { seq: 3, .. })
        ));
        let repeated = [good[0].clone(), good[1].clone(), good[1].clone()];
        assert!(matches!(
            verify(None, &repeated),
            Err(LogError::OutOfOrder { seq: 2, prev: 2 })
        ));
        // An event with no entry.
        assert!(matches!(
            verify_events(&good[..2], &[event(3)]),
            Err(LogError::Missing(_))
        ));
        // A log that does not start at the genesis.
        assert!(matches!(
            verify(None, &good[1..]),
            Err(LogError::BrokenLink { seq: 2, .. })
        ));
    }
}
