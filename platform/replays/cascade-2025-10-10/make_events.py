"""Writes the events of the reconstructed 2025-10-10 cascade replay (both parts). RECONSTRUCTED:
no fill-level data of that night is copied here; the totals, times and prices are the public
figures cited in replay.toml, spread over the cascade by the assumptions written below. Run from
this directory (the outputs are committed):

    python3 make_events.py

Hyperliquid (hyperliquid/events.jsonl):
- 20:50-21:15: the cascade's start, 2 % of the night's liquidated notional (assumed);
- 21:15:03-21:27:00: the S3 node_fills totals: 63,637 liquidations, $5.51B notional. Here each
  line stands for the liquidations of one market in one 5 s slice (a Hyperliquid fill carries
  one account: each line names a stand-in account), with the notional front-loaded (the 60 s
  from 21:15 carry $3.21B market-wide per Amberdata, about 40 % of the 12 minutes here) and
  split over BTC 35 %, ETH 25 %, SOL 12 %, HYPE 8 % (assumed shares; the other 20 % is on
  markets this replay leaves out);
- ADL against the HLP Liquidator from 21:16:04 in the published bursts (T+64, 116, 126, 134,
  167, 203, 211, 218, 225, 308 s), $2.10B in total at the published average prices of BTC,
  ETH, SOL and HYPE, split by their published ADL notional ($620.9M, $458.0M, $276.2M, $189.9M)
  scaled to those four.
Binance USD-M futures (binance-futures/events.jsonl): `forceOrder` liquidations (Binance pushes
at most one per symbol per second, the largest), $1.5B from 20:50 to 21:30 (ASSUMED: the
night's $19.1B across venues less Hyperliquid's $10.2B leaves $8.9B for every other venue over
24 h; no per-venue figure for Binance is in the stored sources), one line per symbol per 3 s (within Binance's one per second), split BTC 40 %, ETH 35 %,
SOL 25 %, front-loaded like Hyperliquid's.
"""
import json
import math
from datetime import datetime, timezone

LIQUIDATOR = "0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"


def ms(s):
    return int(datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)


# Piecewise-linear prices (the replay's [[path]] points, repeated here to price the fills).
PATHS = {
    "BTC": [("19:00:00", 121800), ("20:50:00", 117500), ("21:15:00", 112000), ("21:20:00", 104800),
            ("21:27:00", 107000), ("23:00:00", 112500)],
    "ETH": [("19:00:00", 4150), ("20:50:00", 3950), ("21:15:00", 3700), ("21:20:00", 3436),
            ("21:27:00", 3550), ("23:00:00", 3800)],
    "SOL": [("19:00:00", 205), ("20:50:00", 196), ("21:15:00", 182), ("21:20:00", 150),
            ("21:27:00", 162), ("23:00:00", 180)],
    "HYPE": [("19:00:00", 41.0), ("20:50:00", 39.5), ("21:15:00", 37.5), ("21:20:00", 31.0),
             ("21:27:00", 34.5), ("23:00:00", 37.0)],
}


def px(coin, t):
    pts = [(ms("2025-10-10T" + a), b) for a, b in PATHS[coin]]
    if t <= pts[0][0]:
        return pts[0][1]
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if t <= t1:
            return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return pts[-1][1]


def fmt(v, dp):
    return f"{v:.{dp}f}"


DP = {"BTC": (1, 5), "ETH": (2, 4), "SOL": (3, 2), "HYPE": (3, 2)}


def stand_in(n):
    return "0x" + f"{0xca5ca0e0 + n:08x}".rjust(40, "0")


def profile(t0, t1, step, total, peak_until):
    """Slices of `step` ms from t0 to t1 whose notional sums to `total`: 40 % in the peak
    (t0 .. peak_until), the rest decaying."""
    slices = list(range(t0, t1, step))
    peak = [s for s in slices if s < peak_until]
    rest = [s for s in slices if s >= peak_until]
    w_rest = [math.exp(-(s - peak_until) / 240_000) for s in rest]
    out = [(s, 0.4 * total / len(peak)) for s in peak]
    out += [(s, 0.6 * total * w / sum(w_rest)) for s, w in zip(rest, w_rest)]
    return out


def hl_fill(coin, t, usd, tid, user):
    p = px(coin, t)
    pd, sd = DP[coin]
    return {"event": "fill", "user": user, "coin": coin, "px": fmt(p, pd), "sz": fmt(usd / p, sd),
            "side": "sell", "time": t, "dir": "Liquidated Cross Long", "closed_pnl": "0",
            "start_position": fmt(usd / p, sd), "tid": tid, "oid": tid, "fee": "0",
            "liquidation": {"liquidated_user": user, "mark_px": fmt(p, pd), "method": "market"}}


def adl_fill(coin, t, usd, tid):
    p = px(coin, t)
    pd, sd = DP[coin]
    return {"event": "fill", "user": LIQUIDATOR, "coin": coin, "px": fmt(p, pd), "sz": fmt(usd / p, sd),
            "side": "sell", "time": t, "dir": "Auto-Deleveraging", "closed_pnl": "0",
            "start_position": fmt(usd / p, sd), "tid": tid, "oid": tid, "fee": "0",
            "liquidation": {"liquidated_user": LIQUIDATOR, "mark_px": fmt(p, pd), "method": "backstop"}}


HL_SHARE = {"BTC": 0.35, "ETH": 0.25, "SOL": 0.12, "HYPE": 0.08}
events = []
tid = 960_000_000_000_000
n = 0
for coin, share in HL_SHARE.items():
    # The start: 2 % of the night's notional, one line per market per 30 s.
    pre = profile(ms("2025-10-10T20:50:00"), ms("2025-10-10T21:15:00"), 30_000, 0.02 * 5.51e9 * share,
                  ms("2025-10-10T21:00:00"))
    main = profile(ms("2025-10-10T21:15:03"), ms("2025-10-10T21:27:00"), 5_000, 5.51e9 * share,
                   ms("2025-10-10T21:16:03"))
    for t, usd in pre + main:
        n += 1
        tid += 1
        events.append(hl_fill(coin, t, usd, tid, stand_in(n)))
ADL = {"BTC": 620.9e6, "ETH": 458.0e6, "SOL": 276.2e6, "HYPE": 189.9e6}
scale = 2.10e9 / sum(ADL.values())
bursts = [64, 116, 126, 134, 167, 203, 211, 218, 225, 308]
t_first = ms("2025-10-10T21:15:00")
for coin, usd in ADL.items():
    for b in bursts:
        tid += 1
        events.append(adl_fill(coin, t_first + b * 1000 + 830, usd * scale / len(bursts), tid))
events.sort(key=lambda e: (e["time"], e["tid"]))
with open("hyperliquid/events.jsonl", "w") as f:
    f.write("# Reconstructed events of the 2025-10-10 cascade on Hyperliquid (make_events.py; see replay.toml).\n")
    for e in events:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")

BN_SHARE = {"BTC": 0.40, "ETH": 0.35, "SOL": 0.25}
bn = []
for coin, share in BN_SHARE.items():
    for t, usd in profile(ms("2025-10-10T20:50:00"), ms("2025-10-10T21:30:00"), 3_000, 1.5e9 * share,
                          ms("2025-10-10T21:16:00")):
        if usd < 20_000:
            continue
        n += 1
        tid += 1
        p = px(coin, t) * 0.999
        pd, sd = DP[coin]
        bn.append({"event": "fill", "user": "0x0000000000000000000000000000000000000000", "coin": coin,
                   "px": fmt(p, pd), "sz": fmt(usd / p, sd), "side": "sell", "time": t,
                   "dir": "Liquidated Cross Long", "closed_pnl": "0", "start_position": "0", "tid": tid,
                   "oid": tid, "fee": "0",
                   "liquidation": {"liquidated_user": "0x0000000000000000000000000000000000000000",
                                   "mark_px": fmt(p, pd), "method": "market"}})
bn.sort(key=lambda e: (e["time"], e["tid"]))
with open("binance-futures/events.jsonl", "w") as f:
    f.write("# Reconstructed forceOrder liquidations of 2025-10-10 on Binance USD-M futures (make_events.py; see replay.toml).\n")
    for e in bn:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(len(events), "hyperliquid events,", len(bn), "binance events")
