//! `kamiyo-hyperliquid log head|verify`: the event log (`kamiyo_core_models::ledger`) read
//! straight from the configured database — its head to keep, and a check of the whole chain
//! and of every stored event against its entry.

use std::io::Write;

use kamiyo_core_models::ledger::{self, LogEntry};
use kamiyo_core_models::{EventQuery, IncidentStore, Order, Timestamp};

/// Entries and events read per round trip.
const PAGE: u32 = 1000;

/// A head kept earlier: `SEQ:CHAIN`.
pub fn parse_head(s: &str) -> anyhow::Result<(i64, String)> {
    let (seq, chain) = s
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--head {s:?}: expected SEQ:CHAIN"))?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| anyhow::anyhow!("--head {s:?}: SEQ is not a sequence number"))?;
    anyhow::ensure!(
        chain.len() == 64 && chain.bytes().all(|b| b.is_ascii_hexdigit()),
        "--head {s:?}: CHAIN must be 64 hex digits"
    );
    Ok((seq, chain.to_ascii_lowercase()))
}

fn describe(e: &LogEntry) -> String {
    format!(
        "{}:{} (logged {})",
        e.seq,
        e.chain,
        Timestamp(e.logged_ms).to_rfc3339()
    )
}

/// Prints the newest entry as `SEQ:CHAIN (logged …)`.
pub async fn head(store: &dyn IncidentStore, out: &mut impl Write) -> anyhow::Result<()> {
    match store.event_log_head().await? {
        Some(h) => writeln!(out, "{}", describe(&h))?,
        None => writeln!(out, "the event log is empty (no event stored yet)")?,
    }
    Ok(())
}

/// Checks every link of the chain, every stored event against its entry, and each kept head;
/// prints what it found and returns whether everything held.
pub async fn verify(
    store: &dyn IncidentStore,
    kept: &[(i64, String)],
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let mut prev: Option<LogEntry> = None;
    let mut entries = 0_usize;
    let mut events = 0_usize;
    let mut found: Vec<bool> = vec![false; kept.len()];
    let mut first: Option<i64> = None;
    loop {
        let after = prev.as_ref().map_or(0, |p| p.seq);
        let page = store.event_log(after, PAGE).await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        first.get_or_insert(page[0].seq);
        if let Err(e) = ledger::verify(prev.as_ref(), &page) {
            writeln!(out, "FAIL: {e}")?;
            return Ok(false);
        }
        for (i, (seq, chain)) in kept.iter().enumerate() {
            if let Some(e) = page.iter().find(|e| e.seq == *seq) {
                if e.chain != *chain {
                    writeln!(
                        out,
                        "FAIL: the kept head {seq}:{chain} is not in the chain (entry {seq} reads {}): the log was rewritten",
                        e.chain
                    )?;
                    return Ok(false);
                }
                found[i] = true;
            }
        }
        // The events this page covers, checked against their entries (one more than the
        // entries are read: an event in the range without an entry is then among them).
        let stored = store
            .events(&EventQuery {
                after_seq: Some(page[0].seq - 1),
                order: Order::Asc,
                limit: u32::try_from(page.len() + 1).unwrap_or(PAGE + 1),
                ..EventQuery::default()
            })
            .await?;
        let covered: Vec<_> = stored.into_iter().filter(|e| e.seq <= last.seq).collect();
        if let Err(e) = ledger::verify_events(&page, &covered) {
            writeln!(out, "FAIL: {e}")?;
            return Ok(false);
        }
        entries += page.len();
        events += covered.len();
        prev = Some(last);
    }
    if let Some(i) = found.iter().position(|f| !f) {
        writeln!(
            out,
            "FAIL: the kept head {}:{} is not in the log",
            kept[i].0, kept[i].1
        )?;
        return Ok(false);
    }
    // Events stored before the log began have no entry.
    let before_log = events_up_to(store, first.map_or(i64::MAX, |f| f - 1)).await?;
    match &prev {
        Some(h) => writeln!(
            out,
            "ok: {entries} entries link up to head {}; {events} stored events match their entries; {} entries outlived their events (retention); {before_log} stored before the log began; {} kept heads found",
            describe(h),
            entries - events,
            kept.len()
        )?,
        None => writeln!(
            out,
            "ok: the event log is empty; {before_log} stored events predate it"
        )?,
    }
    Ok(true)
}

/// How many stored events have `seq <= to`.
async fn events_up_to(store: &dyn IncidentStore, to: i64) -> anyhow::Result<usize> {
    let mut n = 0;
    let mut after = 0;
    loop {
        let page = store
            .events(&EventQuery {
                after_seq: Some(after),
                order: Order::Asc,
                limit: PAGE,
                ..EventQuery::default()
            })
            .await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            return Ok(n);
        };
        n += page.iter().filter(|e| e.seq <= to).count();
        if last >= to {
            return Ok(n);
        }
        after = last;
    }
}
