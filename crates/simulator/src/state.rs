//! The exchange state at the current scenario time, built by applying the scenario's events in
//! order, and the answers to `/info` requests computed from it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kamiyo_aggregators::hyperliquid::num::wire_decimal;
use kamiyo_aggregators::hyperliquid::wire::{
    WireAssetCtx, WireBook, WireClearinghouseState, WireFill, WireTrade,
};
use kamiyo_core_models::{
    Address, AssetCtx, BookLevel, BookSnapshot, Coin, Decimal, Fill, LedgerEvent, LedgerKind,
    MarketEvent, PositionSnapshot, ReferenceQuote, Timestamp, VaultSnapshot, Venue,
};
use serde_json::{Value, json};

/// The HLP family as the live API reports it in 2026 (parent, then seven children with names).
pub const HLP_PARENT: &str = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303";
/// HLP children and their names.
pub const HLP_CHILDREN: &[(&str, &str)] = &[
    (
        "0x010461c14e146ac35fe42271bdc1134ee31c703a",
        "HLP Strategy A",
    ),
    (
        "0x2e3d94f0562703b25c83308a05046ddaf9a8dd14",
        "HLP Liquidator",
    ),
    (
        "0x31ca8395cf837de08b24da3f660e77761dfb974b",
        "HLP Strategy B",
    ),
    (
        "0x469f690213c467c39a23efacfd2816896009d7d8",
        "HLP Strategy X",
    ),
    (
        "0xb0a55f13d22f66e6d495ac98113841b2326e9540",
        "HLP Liquidator 2",
    ),
    (
        "0x5e177e5e39c0f4e421f5865a6d8beed8d921cb70",
        "HLP Liquidator 3",
    ),
    (
        "0x2ed5c4484ea3ff8b57d5f2fb152a40d9f2b68308",
        "HLP Liquidator 4",
    ),
];

/// Exchange state.
#[derive(Debug, Default)]
pub struct ExchangeState {
    /// Perp universe in listing order.
    pub universe: Vec<Coin>,
    ctx: BTreeMap<Coin, AssetCtx>,
    mids: BTreeMap<Coin, Decimal>,
    refs: BTreeMap<(Venue, Coin), ReferenceQuote>,
    positions: HashMap<Address, PositionSnapshot>,
    vaults: BTreeMap<Address, Vec<VaultSnapshot>>,
    fills: HashMap<Address, Vec<Fill>>,
    trades: HashMap<Coin, VecDeque<kamiyo_core_models::Trade>>,
    ledger: HashMap<Address, Vec<LedgerEvent>>,
    oi_cap: Vec<Coin>,
    books: BTreeMap<Coin, BookSnapshot>,
    /// Scenario time of the last applied event.
    pub now: Timestamp,
}

fn addr(s: &str) -> Option<Address> {
    Address::parse(s).ok()
}

impl ExchangeState {
    /// A state whose universe is `universe`.
    pub fn new(universe: Vec<Coin>) -> Self {
        Self {
            universe,
            ..Self::default()
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &MarketEvent) {
        self.now = self.now.max(e.time());
        match e {
            MarketEvent::AssetCtx(c) => {
                if !self.universe.contains(&c.coin) {
                    self.universe.push(c.coin.clone());
                }
                self.mids
                    .insert(c.coin.clone(), c.mid_px.unwrap_or(c.mark_px));
                self.ctx.insert(c.coin.clone(), c.clone());
            }
            MarketEvent::Mids(m) => {
                for (c, p) in &m.mids {
                    self.mids.insert(c.clone(), *p);
                }
            }
            MarketEvent::Reference(q) => {
                self.refs
                    .insert((q.venue.clone(), q.coin.clone()), q.clone());
            }
            MarketEvent::Positions(p) => {
                self.positions.insert(p.user, p.clone());
            }
            MarketEvent::Vault(v) => self.vaults.entry(v.vault).or_default().push(v.clone()),
            MarketEvent::Fill(f) => self.fills.entry(f.user).or_default().push(f.clone()),
            MarketEvent::Trade(t) => {
                let q = self.trades.entry(t.coin.clone()).or_default();
                q.push_back(t.clone());
                if q.len() > 1000 {
                    q.pop_front();
                }
            }
            MarketEvent::Ledger(l) => self.ledger.entry(l.user).or_default().push(l.clone()),
            MarketEvent::OiCap(o) => self.oi_cap = o.coins.clone(),
            MarketEvent::Book(b) => {
                self.books.insert(b.coin.clone(), b.clone());
            }
            _ => {}
        }
    }

    /// Latest reference quote of `venue` for `coin`.
    pub fn reference(&self, venue: &str, coin: &Coin) -> Option<&ReferenceQuote> {
        let v = Venue::new(venue).ok()?;
        self.refs.get(&(v, coin.clone()))
    }

    /// The last `n` fills of `user`, oldest first.
    pub fn recent_fills(&self, user: &Address, n: usize) -> Vec<Fill> {
        let f = self.fills.get(user).map(Vec::as_slice).unwrap_or_default();
        f[f.len().saturating_sub(n)..].to_vec()
    }

    fn meta_json(&self) -> Value {
        json!({"universe": self.universe.iter().map(|c| json!({"name": c, "szDecimals": 2, "maxLeverage": 25, "marginTableId": 25})).collect::<Vec<_>>(), "marginTables": [], "collateralToken": 0})
    }

    fn book(&self, coin: &Coin) -> Option<BookSnapshot> {
        if let Some(b) = self.books.get(coin) {
            return Some(b.clone());
        }
        let mid = *self.mids.get(coin)?;
        let tick = (mid / Decimal::from(20_000)).max(Decimal::new(1, 8));
        let lvl = |i: i64, side: i64| BookLevel {
            px: (mid + tick * Decimal::from(side * i)).round_dp(8),
            sz: Decimal::from(10 + i),
            n: 3,
        };
        Some(BookSnapshot {
            coin: coin.clone(),
            time: self.now,
            bids: (1..=20).map(|i| lvl(i, -1)).collect(),
            asks: (1..=20).map(|i| lvl(i, 1)).collect(),
        })
    }

    fn vault_json(&self, vault: Address) -> Value {
        let parent = addr(HLP_PARENT);
        if Some(vault) == parent {
            let hist = self
                .vaults
                .get(&vault)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let points =
                |f: &dyn Fn(&VaultSnapshot) -> Decimal, from: i64, rebase: bool| -> Vec<Value> {
                    let sel: Vec<&VaultSnapshot> =
                        hist.iter().filter(|s| s.time.0 >= from).collect();
                    let step = (sel.len() / 96).max(1);
                    let base = if rebase {
                        sel.first().map(|s| f(s)).unwrap_or_default()
                    } else {
                        Decimal::ZERO
                    };
                    let mut v: Vec<Value> = sel
                        .iter()
                        .step_by(step)
                        .map(|s| json!([s.time.0, wire_decimal(&(f(s) - base))]))
                        .collect();
                    if !sel.is_empty() && !(sel.len() - 1).is_multiple_of(step) {
                        let last = sel[sel.len() - 1];
                        v.push(json!([last.time.0, wire_decimal(&(f(last) - base))]));
                    }
                    v
                };
            let pnl = |s: &VaultSnapshot| s.pnl_history.last().map(|p| p.value).unwrap_or_default();
            let av = |s: &VaultSnapshot| s.account_value;
            let day_from = self.now.0 - Timestamp::DAY;
            let period = |from: i64, rebase: bool| json!({"accountValueHistory": points(&av, from, false), "pnlHistory": points(&pnl, from, rebase), "vlm": "0.0"});
            json!({
                "name": "Hyperliquidity Provider (HLP)",
                "vaultAddress": vault,
                "leader": "0x677d831aef5328190852e24f13c46cac05f984e7",
                "description": "Simulated HLP (kamiyo-simulator).",
                "portfolio": [["day", period(day_from, true)], ["allTime", period(i64::MIN, false)]],
                "apr": 0.1,
                "followerState": null,
                "leaderFraction": 0.0008,
                "leaderCommission": 0,
                "followers": [],
                "maxDistributable": 0.0,
                "maxWithdrawable": 0.0,
                "isClosed": false,
                "relationship": {"type": "parent", "data": {"childAddresses": HLP_CHILDREN.iter().map(|(a, _)| a).collect::<Vec<_>>()}},
                "allowDeposits": true,
                "alwaysCloseOnWithdraw": false
            })
        } else if let Some((a, name)) = HLP_CHILDREN.iter().find(|(a, _)| addr(a) == Some(vault)) {
            json!({"name": name, "vaultAddress": a, "leader": HLP_PARENT, "description": "", "portfolio": [], "apr": 0.0, "followerState": null, "leaderFraction": 0.0, "leaderCommission": 0, "followers": [], "maxDistributable": 0.0, "maxWithdrawable": 0.0, "isClosed": false, "relationship": {"type": "child"}, "allowDeposits": false, "alwaysCloseOnWithdraw": false})
        } else {
            Value::Null
        }
    }

    /// Answers one `/info` request body; `Err` is an HTTP 422 text, as the real API answers
    /// malformed requests.
    pub fn info(&self, req: &Value) -> Result<Value, String> {
        let user = || {
            req.get("user")
                .and_then(Value::as_str)
                .and_then(addr)
                .ok_or_else(|| {
                    "Failed to deserialize the JSON body into the target type".to_owned()
                })
        };
        let coin = || {
            req.get("coin")
                .and_then(Value::as_str)
                .and_then(|c| Coin::new(c).ok())
                .ok_or_else(|| {
                    "Failed to deserialize the JSON body into the target type".to_owned()
                })
        };
        let t = |k: &str| req.get(k).and_then(Value::as_i64);
        let rtype = req.get("type").and_then(Value::as_str).unwrap_or_default();
        Ok(match rtype {
            "meta" => self.meta_json(),
            "allMids" => Value::Object(
                self.mids
                    .iter()
                    .map(|(c, p)| (c.to_string(), json!(wire_decimal(p))))
                    .collect(),
            ),
            "metaAndAssetCtxs" => {
                let ctxs: Vec<Value> = self
                    .universe
                    .iter()
                    .map(|c| match self.ctx.get(c) {
                        Some(x) => serde_json::to_value(WireAssetCtx::from_ctx(x)).unwrap_or(Value::Null),
                        None => json!({"funding": "0.0", "openInterest": "0.0", "prevDayPx": "0.0", "dayNtlVlm": "0.0", "premium": null, "oraclePx": "0.0", "markPx": "0.0", "midPx": null, "impactPxs": null, "dayBaseVlm": "0.0"}),
                    })
                    .collect();
                json!([self.meta_json(), ctxs])
            }
            "clearinghouseState" => {
                let u = user()?;
                match self.positions.get(&u) {
                    Some(p) => serde_json::to_value(WireClearinghouseState::from_snapshot(p))
                        .unwrap_or(Value::Null),
                    None => serde_json::to_value(WireClearinghouseState::from_snapshot(
                        &PositionSnapshot {
                            user: u,
                            time: self.now,
                            account_value: Decimal::ZERO,
                            total_ntl_pos: Decimal::ZERO,
                            maintenance_margin: Decimal::ZERO,
                            withdrawable: Decimal::ZERO,
                            positions: Vec::new(),
                        },
                    ))
                    .unwrap_or(Value::Null),
                }
            }
            "userFills" => {
                let u = user()?;
                let mut f = self.recent_fills(&u, 2000);
                f.reverse();
                json!(f.iter().map(WireFill::from_fill).collect::<Vec<_>>())
            }
            "userFillsByTime" => {
                let u = user()?;
                let start = t("startTime").ok_or("startTime is required")?;
                let end = t("endTime").unwrap_or(i64::MAX);
                let f: Vec<WireFill> = self
                    .fills
                    .get(&u)
                    .into_iter()
                    .flatten()
                    .filter(|f| f.time.0 >= start && f.time.0 <= end)
                    .take(500)
                    .map(WireFill::from_fill)
                    .collect();
                json!(f)
            }
            "recentTrades" => {
                let c = coin()?;
                json!(
                    self.trades
                        .get(&c)
                        .into_iter()
                        .flatten()
                        .rev()
                        .take(100)
                        .map(WireTrade::from_trade)
                        .collect::<Vec<_>>()
                )
            }
            "l2Book" => {
                let c = coin()?;
                self.book(&c).map_or(Value::Null, |b| {
                    serde_json::to_value(WireBook::from_book(&b)).unwrap_or(Value::Null)
                })
            }
            "perpsAtOpenInterestCap" => json!(self.oi_cap),
            "vaultDetails" => {
                let v = req
                    .get("vaultAddress")
                    .and_then(Value::as_str)
                    .and_then(addr)
                    .ok_or("vaultAddress is required")?;
                self.vault_json(v)
            }
            "userNonFundingLedgerUpdates" => {
                let u = user()?;
                let start = t("startTime").unwrap_or(0);
                let v: Vec<Value> = self
                    .ledger
                    .get(&u)
                    .into_iter()
                    .flatten()
                    .filter(|l| l.time.0 >= start)
                    .map(|l| {
                        let delta = match &l.kind {
                            LedgerKind::Withdraw => json!({"type": "withdraw", "usdc": wire_decimal(&l.usdc), "nonce": 0, "fee": "1.0"}),
                            LedgerKind::Deposit => json!({"type": "deposit", "usdc": wire_decimal(&l.usdc)}),
                            LedgerKind::Liquidation { liquidated_ntl_pos, account_value } => json!({"type": "liquidation", "liquidatedNtlPos": wire_decimal(liquidated_ntl_pos), "accountValue": wire_decimal(account_value), "leverageType": "Cross", "liquidatedPositions": []}),
                            _ => json!({"type": "internalTransfer", "usdc": wire_decimal(&l.usdc)}),
                        };
                        json!({"time": l.time.0, "hash": l.hash.clone().unwrap_or_else(|| format!("0x{:064x}", l.time.0)), "delta": delta})
                    })
                    .collect();
                json!(v)
            }
            "candleSnapshot" | "fundingHistory" => json!([]),
            _ => return Err("Failed to deserialize the JSON body into the target type".into()),
        })
    }
}
