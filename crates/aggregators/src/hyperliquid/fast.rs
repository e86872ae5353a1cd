//! A specialised reader for the hottest frame, `{"channel":"trades","data":[…]}`, on the
//! shared scanner (`crate::scan`).
//!
//! Each trade object is first read straight through in the server's own layout (`coin, side,
//! px, sz`, `hash` and `time` in either order, `tid`, `users`, no whitespace); on any
//! deviation it is reread key by key, which handles the shapes the server may send (flat
//! objects whose values are strings, integers or an array of two strings; keys in any order;
//! unknown keys skipped; whitespace anywhere). Anything else — escapes in strings, nesting in
//! unknown values, malformed input — gives up (`None`) and the general serde decoder takes
//! over. Property tests check that whenever it answers, it answers exactly what the general
//! decoder answers.

use kamiyo_core_models::{
    Address, Coin, Decimal, Fill, FillDir, MarketEvent, Side, Timestamp, Trade,
};

use crate::scan::Cur;
pub use crate::scan::fast_decimal;

const PREFIX: &str = r#"{"channel":"trades","data":"#;

fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    // A repeated key makes the general decoder fail ("duplicate field"): do not answer.
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

thread_local! {
    /// Coins met lately on this thread, by a hash of the name: a name seen before is cloned
    /// rather than checked and built again (equal names make equal coins: the answer is the
    /// same). A collision only costs a rebuild.
    static COINS: std::cell::RefCell<[Option<Coin>; 64]> =
        const { std::cell::RefCell::new([const { None }; 64]) };
}

/// The coin named `name` (as `Coin::new`, `None` where it refuses), from [`COINS`] when met
/// before.
#[inline(always)]
fn coin_named(name: &str) -> Option<Coin> {
    let b = name.as_bytes();
    let (&first, &last) = (b.first()?, b.last()?);
    let slot = (usize::from(first) * 7 + usize::from(last) * 31 + b.len() * 13) % 64;
    COINS.with_borrow_mut(|coins| {
        if let Some(c) = &coins[slot]
            && same_bytes(c.as_str().as_bytes(), b)
        {
            return Some(c.clone());
        }
        let c = Coin::new(name).ok()?;
        coins[slot] = Some(c.clone());
        Some(c)
    })
}

/// `a == b` compared a byte at a time in line: names are a few bytes, where a `memcmp` call
/// costs more than the comparison.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
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
}

/// A trade object in the server's own layout — `coin, side, px, sz`, then `hash` and `time`
/// in either order, `tid`, `users`, no whitespace — read straight through. `None` on any
/// deviation; the caller then rereads the object key by key.
fn trade_in_server_order(cur: &mut Cur<'_>) -> Option<Trade> {
    cur.lit(br#"{"coin":"#)?;
    let coin = coin_named(cur.string()?)?;
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
        hash(cur)?;
        cur.lit(br#","time":"#)?;
        cur.integer()?
    } else {
        cur.lit(br#","time":"#)?;
        let time = cur.integer()?;
        cur.lit(br#","hash":"#)?;
        hash(cur)?;
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

/// A trade's hash (`0x` and 64 hex digits, not kept): checked as one block when it has that
/// length, scanned as any string otherwise.
#[inline]
fn hash(cur: &mut Cur<'_>) -> Option<()> {
    if cur.skip_string_of_len::<66>().is_some() {
        return Some(());
    }
    cur.string().map(|_| ())
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
            Key::Coin => set(&mut coin, coin_named(cur.string()?)?)?,
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
        if !cur.member_end()? {
            break;
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
    let mut cur = Cur::new(s);
    cur.eat(b'[')?;
    let mut out = Vec::with_capacity(2);
    cur.items(b']', |cur| {
        out.push(MarketEvent::Trade(trade(cur)?));
        Some(())
    })?;
    cur.eat(b'}')?;
    cur.at_end().then_some(out)
}

const MIDS_PREFIX: &str = r#"{"channel":"allMids","data":{"mids":{"#;

/// Most positions whose coin is remembered between `allMids` frames.
const MID_CACHE_MAX: usize = 4096;

thread_local! {
    /// The keys of the last `allMids` frame decoded on this thread, by position. Frames
    /// repeat the same keys in the same order, so a key equal to the name remembered at its
    /// position reuses that coin (equal names make equal coins: the answer is the same).
    static MID_COINS: std::cell::RefCell<Vec<MidKey>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A remembered key: the coin, and for short names the bytes that start the pair as one word
/// (compared with one load instead of a byte comparison): `"name":"` up to the value's opening
/// quote for names of up to four bytes, `"name"` for up to six.
struct MidKey {
    coin: Coin,
    /// The pair's first bytes, little-endian (0 for longer names).
    word: u64,
    /// The bytes of `word` that count.
    mask: u64,
    /// `word` runs through `:"`.
    colon: bool,
    /// The bytes `word` covers.
    len: u8,
}

impl MidKey {
    fn new(coin: Coin) -> Self {
        let name = coin.as_str().as_bytes();
        let n = name.len();
        let (mut word, mut mask, colon) = (0, 0, n <= 4);
        let mut covered = 0;
        if n <= 6 {
            let mut bytes = [0u8; 8];
            bytes[0] = b'"';
            bytes[1..=n].copy_from_slice(name);
            bytes[n + 1] = b'"';
            let len = if colon {
                bytes[n + 2] = b':';
                bytes[n + 3] = b'"';
                n + 4
            } else {
                n + 2
            };
            word = u64::from_le_bytes(bytes);
            mask = u64::MAX >> (8 * (8 - len));
            covered = len;
        }
        Self {
            coin,
            word,
            mask,
            colon,
            len: u8::try_from(covered).unwrap_or(0),
        }
    }
}

impl Cur<'_> {
    /// Consumes the start of `k`'s pair if the input continues with exactly it (whitespace
    /// allowed before): the quoted name, and with [`MidKey::colon`] the `:"` after it. A coin's
    /// name has no quote, backslash or control byte: equal bytes followed by the closing quote
    /// are the same JSON string.
    #[inline]
    fn key_exactly(&mut self, k: &MidKey) -> Option<()> {
        self.ws();
        if k.mask != 0
            && let Some(w) = self.b.get(self.i..self.i + 8)
        {
            let w = u64::from_le_bytes(w.try_into().ok()?);
            return (w & k.mask == k.word).then(|| self.i += usize::from(k.len));
        }
        let n = k.coin.as_str().len();
        let b = self.b.get(self.i..self.i + n + 2)?;
        (b[0] == b'"' && b[n + 1] == b'"' && &b[1..=n] == k.coin.as_str().as_bytes())
            .then(|| self.i += n + 2)
    }
}

/// `{"channel":"allMids","data":{"mids":{"BTC":"97000.5",…}}}` in the server's layout, read
/// straight through: each key a coin, each value a quoted decimal, wire order and repeats kept
/// as the general decoder keeps them. `None` on anything else (another layout, other keys in
/// `data`, escapes, numbers it cannot represent exactly, an invalid coin name); the general
/// decoder then decides. `now` is the receipt time the frame is stamped with.
pub fn fast_mids(text: &str, now: Timestamp) -> Option<Vec<MarketEvent>> {
    let s = text.strip_prefix(MIDS_PREFIX)?;
    let mut cur = Cur::new(s);
    let mids = MID_COINS.with_borrow_mut(|cache| {
        // As many pairs as the last frame had.
        let mut mids = Vec::with_capacity(cache.len().max(32));
        if mids_run(&mut cur, cache, &mut mids) {
            return Some(mids);
        }
        if mids.is_empty() {
            cur.items(b'}', |cur| mid_pair(cur, cache, &mut mids))?;
        } else {
            // The rest of the object, after the comma the quick run stopped behind.
            loop {
                mid_pair(&mut cur, cache, &mut mids)?;
                match cur.peek()? {
                    b',' => cur.i += 1,
                    b'}' => {
                        cur.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        Some(mids)
    })?;
    cur.eat(b'}')?;
    cur.eat(b'}')?;
    cur.at_end().then(|| {
        vec![MarketEvent::Mids(kamiyo_core_models::Mids {
            time: now,
            mids,
        })]
    })
}

/// The quick run through an `allMids` object: while the key at each position is the short
/// name remembered there (`"name":"` compared in one load), its value a decimal and the pair
/// followed at once by `,` or the closing `}` (the server's layout), the pair is taken. True
/// when the closing `}` was consumed; otherwise the cursor is left at the start of the first
/// pair not read this way (after a comma), for [`mid_pair`].
#[inline]
fn mids_run(cur: &mut Cur<'_>, cache: &[MidKey], mids: &mut Vec<(Coin, Decimal)>) -> bool {
    loop {
        let Some(k) = cache.get(mids.len()).filter(|k| k.colon) else {
            return false;
        };
        let start = cur.i;
        let Some(w) = cur
            .b
            .get(start..start + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        else {
            return false;
        };
        if u64::from_le_bytes(w) & k.mask != k.word {
            return false;
        }
        cur.i = start + usize::from(k.len);
        let Some(v) = cur.decimal_body() else {
            cur.i = start;
            return false;
        };
        let last = match cur.b.get(cur.i) {
            Some(b',') => false,
            Some(b'}') => true,
            _ => {
                cur.i = start;
                return false;
            }
        };
        cur.i += 1;
        mids.push((k.coin.clone(), v));
        if last {
            return true;
        }
    }
}

/// One `allMids` pair, any layout the fast path takes: the key at this position is usually
/// the name cached there (compared in place, the cached coin reused: validating and building
/// a name costs more than the rest of the pair); otherwise the coin is built and remembered.
fn mid_pair(
    cur: &mut Cur<'_>,
    cache: &mut Vec<MidKey>,
    mids: &mut Vec<(Coin, Decimal)>,
) -> Option<()> {
    let at = mids.len();
    let coin = match cache.get(at) {
        Some(k) if k.colon && cur.key_exactly(k).is_some() => {
            // `"name":"` matched at once: the value's digits follow.
            mids.push((k.coin.clone(), cur.decimal_body()?));
            return Some(());
        }
        Some(k) if cur.key_exactly(k).is_some() => k.coin.clone(),
        _ => {
            let c = Coin::new(cur.string()?).ok()?;
            if at < cache.len() {
                cache[at] = MidKey::new(c.clone());
            } else if at < MID_CACHE_MAX {
                cache.push(MidKey::new(c.clone()));
            }
            c
        }
    };
    cur.eat(b':')?;
    mids.push((coin, cur.decimal()?));
    Some(())
}

const BOOK_PREFIX: &str = r#"{"channel":"l2Book","data":{"coin":"#;

/// One side of an `l2Book` frame: `[{"px":"…","sz":"…","n":…},…]` in the server's layout.
fn book_side(cur: &mut Cur<'_>) -> Option<Vec<kamiyo_core_models::BookLevel>> {
    cur.lit(b"[")?;
    let mut side = Vec::with_capacity(20);
    cur.items(b']', |cur| {
        let px = cur.decimal_field(br#"{"px":"#)?;
        let sz = cur.decimal_field(br#","sz":"#)?;
        cur.lit(br#","n":"#)?;
        let n = u32::try_from(cur.integer()?).ok()?;
        cur.lit(b"}")?;
        side.push(kamiyo_core_models::BookLevel { px, sz, n });
        Some(())
    })?;
    Some(side)
}

/// `{"channel":"l2Book","data":{"coin":…,"time":…,"levels":[[bids],[asks]]}}` in the server's
/// layout, read straight through (no whitespace, keys in the server's order). `None` on
/// anything else; the general decoder then decides.
pub fn fast_book(text: &str) -> Option<Vec<MarketEvent>> {
    let s = text.strip_prefix(BOOK_PREFIX)?;
    let mut cur = Cur::new(s);
    let coin = coin_named(cur.string()?)?;
    cur.lit(br#","time":"#)?;
    let time = Timestamp(cur.integer()?);
    cur.lit(br#","levels":["#)?;
    let bids = book_side(&mut cur)?;
    cur.lit(b",")?;
    let asks = book_side(&mut cur)?;
    cur.lit(b"]}}")?;
    cur.at_end().then(|| {
        vec![MarketEvent::Book(kamiyo_core_models::BookSnapshot {
            coin,
            time,
            bids,
            asks,
        })]
    })
}

const CTX_PREFIX: &str = r#"{"channel":"activeAssetCtx","data":{"coin":"#;

/// `{"channel":"activeAssetCtx","data":{"coin":…,"ctx":{…}}}` with the context's keys in the
/// server's order (`funding, openInterest, prevDayPx, dayNtlVlm, premium, oraclePx, markPx,
/// midPx, impactPxs, dayBaseVlm`), read straight through; optional values may be `null`.
/// `None` on anything else; the general decoder then decides. `now` stamps the context.
pub fn fast_ctx(text: &str, now: Timestamp) -> Option<Vec<MarketEvent>> {
    let s = text.strip_prefix(CTX_PREFIX)?;
    let mut cur = Cur::new(s);
    let coin = coin_named(cur.string()?)?;
    let funding = cur.decimal_field(br#","ctx":{"funding":"#)?;
    let open_interest = cur.decimal_field(br#","openInterest":"#)?;
    cur.lit(br#","prevDayPx":"#)?;
    let prev_day_px = cur.opt_decimal()?;
    let day_ntl_vlm = cur.decimal_field(br#","dayNtlVlm":"#)?;
    cur.lit(br#","premium":"#)?;
    let premium = cur.opt_decimal()?;
    let oracle_px = cur.decimal_field(br#","oraclePx":"#)?;
    let mark_px = cur.decimal_field(br#","markPx":"#)?;
    cur.lit(br#","midPx":"#)?;
    let mid_px = cur.opt_decimal()?;
    cur.lit(br#","impactPxs":"#)?;
    let impact_pxs = match cur.lit(b"null") {
        Some(()) => None,
        None => Some(cur.decimal_pair()?),
    };
    cur.lit(br#","dayBaseVlm":"#)?;
    cur.opt_decimal()?;
    cur.lit(b"}}}")?;
    cur.at_end().then(|| {
        vec![MarketEvent::AssetCtx(kamiyo_core_models::AssetCtx {
            coin,
            time: now,
            oracle_px,
            mark_px,
            mid_px,
            open_interest,
            funding,
            day_ntl_vlm,
            prev_day_px,
            premium,
            impact_pxs,
        })]
    })
}

const FILLS_PREFIX: &str = r#"{"channel":"userFills","data":{"#;

impl Cur<'_> {
    /// `null` (consumed) or not.
    fn null(&mut self) -> bool {
        self.ws();
        self.lit(b"null").is_some()
    }

    /// A quoted decimal or `null`, whitespace allowed before it (always inlined, as
    /// [`Cur::decimal`] is).
    #[inline(always)]
    fn opt_decimal_ws(&mut self) -> Option<Option<Decimal>> {
        if self.null() {
            return Some(None);
        }
        self.decimal().map(Some)
    }

    /// `true` or `false`.
    fn boolean(&mut self) -> Option<bool> {
        self.ws();
        if self.lit(b"true").is_some() {
            Some(true)
        } else {
            self.lit(b"false").map(|()| false)
        }
    }

    /// The separator after a member: `,` (more follow, `true`) or `}` (the end, `false`).
    fn member_end(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            b'}' => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }
}

/// The keys of a fill object the reader takes, in the server's order.
#[derive(Clone, Copy)]
enum FillKey {
    Coin,
    Px,
    Sz,
    Side,
    Time,
    StartPosition,
    Dir,
    ClosedPnl,
    Hash,
    Oid,
    Crossed,
    Fee,
    Tid,
    FeeToken,
    Liquidation,
}

const FILL_KEYS: [(FillKey, &str); 15] = [
    (FillKey::Coin, "coin"),
    (FillKey::Px, "px"),
    (FillKey::Sz, "sz"),
    (FillKey::Side, "side"),
    (FillKey::Time, "time"),
    (FillKey::StartPosition, "startPosition"),
    (FillKey::Dir, "dir"),
    (FillKey::ClosedPnl, "closedPnl"),
    (FillKey::Hash, "hash"),
    (FillKey::Oid, "oid"),
    (FillKey::Crossed, "crossed"),
    (FillKey::Fee, "fee"),
    (FillKey::Tid, "tid"),
    (FillKey::FeeToken, "feeToken"),
    (FillKey::Liquidation, "liquidation"),
];

/// A member's opening `"key":` (at most 16 bytes) as two little-endian words and the masks of
/// the bytes that count: compared with two loads instead of scanning and matching the name.
#[derive(Clone, Copy)]
struct KeyLit {
    words: [u64; 2],
    masks: [u64; 2],
    len: usize,
}

const fn key_lit(name: &str) -> KeyLit {
    let name = name.as_bytes();
    let len = name.len() + 3;
    assert!(len <= 16, "a key literal fits two words");
    let mut bytes = [0u8; 16];
    bytes[0] = b'"';
    let mut i = 0;
    while i < name.len() {
        bytes[i + 1] = name[i];
        i += 1;
    }
    bytes[len - 2] = b'"';
    bytes[len - 1] = b':';
    let (mut words, mut masks) = ([0u64; 2], [0u64; 2]);
    let mut j = 0;
    while j < len {
        words[j / 8] |= (bytes[j] as u64) << (8 * (j % 8));
        masks[j / 8] |= 0xff << (8 * (j % 8));
        j += 1;
    }
    KeyLit { words, masks, len }
}

const FILL_LITS: [KeyLit; 15] = {
    let mut out = [KeyLit {
        words: [0; 2],
        masks: [0; 2],
        len: 0,
    }; 15];
    let mut i = 0;
    while i < 15 {
        out[i] = key_lit(FILL_KEYS[i].1);
        i += 1;
    }
    out
};

/// Key positions remembered from one fill to the next (`FILL_KEYS` indices; anything else is
/// not predicted).
type FillOrder = [u8; 24];

const UNKNOWN: u8 = u8::MAX;

thread_local! {
    /// The key order of the last fill read on this thread: fills repeat the server's order,
    /// so the key at each position is first compared, in place, with the one seen there last.
    static FILL_ORDER: std::cell::Cell<FillOrder> = const { std::cell::Cell::new([UNKNOWN; 24]) };
}

impl Cur<'_> {
    /// Consumes `lit` if the input continues with exactly it (no whitespace allowed).
    #[inline]
    fn key_lit(&mut self, lit: &KeyLit) -> bool {
        let Some(w) = self
            .b
            .get(self.i..self.i + 16)
            .and_then(|w| <[u8; 16]>::try_from(w).ok())
        else {
            return false;
        };
        let lo = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let hi = u64::from_le_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15]]);
        let hit = lo & lit.masks[0] == lit.words[0] && hi & lit.masks[1] == lit.words[1];
        if hit {
            self.i += lit.len;
        }
        hit
    }

    /// The key of the fill member at `position` and its colon: the key remembered there when
    /// the input has it exactly; otherwise read as a string, and remembered. `None` inside
    /// means a key the reader does not take.
    #[inline]
    fn fill_key(&mut self, order: &mut FillOrder, position: usize) -> Option<Option<FillKey>> {
        if let Some(&(key, _)) = order
            .get(position)
            .and_then(|&k| FILL_KEYS.get(usize::from(k)))
            && self.key_lit(&FILL_LITS[usize::from(order[position])])
        {
            return Some(Some(key));
        }
        let name = self.string()?;
        self.eat(b':')?;
        let found = FILL_KEYS.iter().position(|(_, n)| *n == name);
        if let Some(slot) = order.get_mut(position) {
            *slot = found.and_then(|i| u8::try_from(i).ok()).unwrap_or(UNKNOWN);
        }
        Some(found.map(|i| FILL_KEYS[i].0))
    }
}

/// One fill object, keys in any order (the server sends `coin, px, sz, side, time,
/// startPosition, dir, closedPnl, hash, oid, crossed, fee, tid, …`), normalised for `user` and
/// pushed to `out` as an event. Each value must have the type the general decoder accepts in
/// its plainest form (decimals as quoted strings, integers as JSON integers, `side` as
/// `"B"`/`"A"`); anything else — a liquidation object, a nested unknown value, a repeated key,
/// escapes — gives up.
fn fill(
    cur: &mut Cur<'_>,
    user: Address,
    order: &mut FillOrder,
    out: &mut Vec<MarketEvent>,
) -> Option<()> {
    cur.eat(b'{')?;
    let (mut coin, mut px, mut sz, mut side, mut time, mut dir) =
        (None, None, None, None, None, None);
    let (mut start, mut pnl, mut hash, mut oid, mut crossed, mut fee, mut tid, mut token, mut liq) =
        (None, None, None, None, None, None, None, None, None);
    if cur.peek()? == b'}' {
        return None;
    }
    let mut position = 0;
    loop {
        cur.ws();
        let key = cur.fill_key(order, position)?;
        position += 1;
        match key {
            Some(FillKey::Coin) => set(&mut coin, coin_named(cur.string()?)?)?,
            Some(FillKey::Px) => set(&mut px, cur.decimal()?)?,
            Some(FillKey::Sz) => set(&mut sz, cur.decimal()?)?,
            Some(FillKey::Side) => set(
                &mut side,
                match cur.string()? {
                    "B" => Side::Buy,
                    "A" => Side::Sell,
                    _ => return None,
                },
            )?,
            Some(FillKey::Time) => set(&mut time, cur.integer()?)?,
            Some(FillKey::StartPosition) => set(&mut start, cur.opt_decimal_ws()?)?,
            Some(FillKey::Dir) => set(&mut dir, FillDir::from_wire(cur.string()?))?,
            Some(FillKey::ClosedPnl) => set(&mut pnl, cur.opt_decimal_ws()?)?,
            Some(FillKey::Hash) => {
                let h = if cur.null() {
                    None
                } else {
                    Some(cur.string()?.to_owned())
                };
                set(&mut hash, h)?;
            }
            Some(FillKey::Oid) => set(&mut oid, u64::try_from(cur.integer()?).ok()?)?,
            Some(FillKey::Crossed) => set(&mut crossed, cur.boolean()?)?,
            Some(FillKey::Fee) => set(&mut fee, cur.opt_decimal_ws()?)?,
            Some(FillKey::Tid) => {
                let t = if cur.null() {
                    None
                } else {
                    Some(u64::try_from(cur.integer()?).ok()?)
                };
                set(&mut tid, t)?;
            }
            Some(FillKey::FeeToken) => {
                if !cur.null() {
                    cur.string()?;
                }
                set(&mut token, ())?;
            }
            // A liquidation's details go to the general decoder; `null` is none.
            Some(FillKey::Liquidation) => {
                if !cur.null() {
                    return None;
                }
                set(&mut liq, ())?;
            }
            // Unknown keys are ignored by the general decoder whatever their value; here only
            // scalars are skipped.
            None => cur.skip_scalar()?,
        }
        if !cur.member_end()? {
            break;
        }
    }
    out.push(MarketEvent::Fill(Fill {
        user,
        coin: coin?,
        px: px?,
        sz: sz?,
        side: side?,
        time: Timestamp(time?),
        dir: dir?,
        closed_pnl: pnl.flatten().unwrap_or_default(),
        start_position: start.flatten(),
        tid: tid.flatten(),
        oid: oid.unwrap_or(0),
        fee: fee.flatten().unwrap_or_default(),
        hash: hash.flatten(),
        liquidation: None,
    }));
    Some(())
}

/// `{"channel":"userFills","data":{"isSnapshot":…,"user":…,"fills":[…]}}` (members of `data` in
/// any order): the fills as events and whether the frame is the subscription's snapshot.
/// `None` on anything the reader does not take (see [`fill`]); the general decoder then
/// decides.
pub fn fast_fills(text: &str) -> Option<(Vec<MarketEvent>, bool)> {
    let s = text.strip_prefix(FILLS_PREFIX)?;
    let mut cur = Cur::new(s);
    let (mut user, mut snapshot, mut fills) = (None, None, None);
    // Fills are read before the user is known when `fills` comes first: patched after.
    let placeholder = Address::from_bytes([0; 20]);
    if cur.peek()? == b'}' {
        return None;
    }
    loop {
        let key = cur.string()?;
        cur.eat(b':')?;
        match key {
            "user" => set(&mut user, cur.address()?)?,
            "isSnapshot" => set(&mut snapshot, cur.boolean()?)?,
            "fills" => {
                cur.eat(b'[')?;
                let mut out = Vec::with_capacity(4);
                let mut order = FILL_ORDER.get();
                let who = user.unwrap_or(placeholder);
                cur.items(b']', |cur| fill(cur, who, &mut order, &mut out))?;
                FILL_ORDER.set(order);
                set(&mut fills, (out, user.is_some()))?;
            }
            _ => cur.skip_scalar()?,
        }
        if !cur.member_end()? {
            break;
        }
    }
    cur.eat(b'}')?;
    if !cur.at_end() {
        return None;
    }
    let user = user?;
    let (mut events, user_known) = fills?;
    if !user_known {
        for e in &mut events {
            if let MarketEvent::Fill(f) = e {
                f.user = user;
            }
        }
    }
    Some((events, snapshot.unwrap_or(false)))
}

const CANDLE_PREFIX: &str = r#"{"channel":"candle","data":{"t":"#;

/// `{"channel":"candle","data":{"t":…,"T":…,"s":…,"i":…,"o":…,"c":…,"h":…,"l":…,"v":…,"n":…}}`
/// in the server's layout, read straight through. `None` on anything else; the general decoder
/// then decides. `now` stamps the observation.
pub fn fast_candle(text: &str, now: Timestamp) -> Option<Vec<MarketEvent>> {
    let s = text.strip_prefix(CANDLE_PREFIX)?;
    let mut cur = Cur::new(s);
    let open_time = Timestamp(cur.integer()?);
    cur.lit(br#","T":"#)?;
    let close_time = Timestamp(cur.integer()?);
    cur.lit(br#","s":"#)?;
    let coin = coin_named(cur.string()?)?;
    cur.lit(br#","i":"#)?;
    let interval = cur.string()?.into();
    let open = cur.decimal_field(br#","o":"#)?;
    let close = cur.decimal_field(br#","c":"#)?;
    let high = cur.decimal_field(br#","h":"#)?;
    let low = cur.decimal_field(br#","l":"#)?;
    let volume = cur.decimal_field(br#","v":"#)?;
    cur.lit(br#","n":"#)?;
    let trades = u64::try_from(cur.integer()?).ok()?;
    cur.lit(b"}}")?;
    cur.at_end().then(|| {
        vec![MarketEvent::Candle(kamiyo_core_models::Candle {
            time: now,
            coin,
            interval,
            open_time,
            close_time,
            open,
            high,
            low,
            close,
            volume,
            trades,
        })]
    })
}
