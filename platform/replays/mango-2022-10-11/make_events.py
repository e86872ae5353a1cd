"""Writes the events of the reconstructed 2022-10-11 Mango Markets replay (both parts).
RECONSTRUCTED from the public accounts cited in replay.toml; what they do not give is ASSUMED
and said so here. Run from this directory (the outputs are committed): python3 make_events.py

Accounts: Mango v3 accounts are Solana addresses (A: CQvKSNnY…, B: 4ND8FVPjU…, truncated in the
sources); this replay's address type is 20-byte hex, so stand-ins name them:
A = 0x…a1, B = 0x…b2, C (the spot buyer) = 0x…c3.

mango-markets/events.jsonl:
- 22:19 A deposits 5M USDC; 22:24 B deposits 5M USDC (Joshua Lim's times, 6:19 and 6:24 PM ET);
- 22:25 A sells 483M MNGO-PERP at $0.0382 and B buys them: one trade, two fills;
- 22:36-22:45 B borrows and withdraws $116M (USDC, mSOL, SOL, BTC, USDT, SRM, MNGO): ASSUMED
  split into four withdrawals and ASSUMED times (the sources give the total and that the exploit
  unfolded within about 40 minutes of the first funding).
serum/events.jsonl:
- 22:26-22:29 C buys $1.44M of MNGO on Mango's spot market (Serum): ASSUMED as 18 buys of
  $80k every 10 s at the spot path's prices.
"""
import json
from datetime import datetime, timezone

A = "0x" + "0" * 38 + "a1"
B = "0x" + "0" * 38 + "b2"
C = "0x" + "0" * 38 + "c3"


def ms(s):
    return int(datetime.strptime("2022-10-11T" + s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)


SPOT = [("22:25:00", 0.0382), ("22:26:00", 0.05), ("22:28:00", 0.15), ("22:30:00", 0.35),
        ("22:33:00", 0.60), ("22:35:00", 0.91)]


def spot(t):
    pts = [(ms(a), b) for a, b in SPOT]
    if t <= pts[0][0]:
        return pts[0][1]
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        if t <= t1:
            return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return pts[-1][1]


mango = [
    {"event": "ledger", "user": A, "time": ms("22:19:00"), "kind": {"type": "deposit"}, "usdc": "5000000"},
    {"event": "ledger", "user": B, "time": ms("22:24:00"), "kind": {"type": "deposit"}, "usdc": "5000000"},
]
tid = 970_000_000_000_001
for user, side, d in [(A, "sell", "Open Short"), (B, "buy", "Open Long")]:
    mango.append({"event": "fill", "user": user, "coin": "MNGO", "px": "0.0382", "sz": "483000000",
                  "side": side, "time": ms("22:25:00"), "dir": d, "closed_pnl": "0",
                  "start_position": "0", "tid": tid, "oid": tid + (1 if side == "buy" else 0), "fee": "0"})
mango.append({"event": "trade", "coin": "MNGO", "side": "buy", "px": "0.0382", "sz": "483000000",
              "time": ms("22:25:00"), "tid": tid, "users": [B, A]})
for t, usd in [("22:36:30", 40_000_000), ("22:39:00", 30_000_000), ("22:42:00", 25_000_000),
               ("22:45:00", 21_000_000)]:
    mango.append({"event": "ledger", "user": B, "time": ms(t), "kind": {"type": "withdraw"}, "usdc": str(usd)})
mango.sort(key=lambda e: e["time"])
with open("mango-markets/events.jsonl", "w") as f:
    f.write("# Reconstructed events of the 2022-10-11 Mango Markets exploit on Mango (make_events.py; see replay.toml).\n")
    for e in mango:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")

serum = []
for i in range(18):
    t = ms("22:26:00") + i * 10_000
    p = spot(t)
    serum.append({"event": "trade", "coin": "MNGO", "side": "buy", "px": f"{p:.4f}", "sz": f"{80_000 / p:.0f}",
                  "time": t, "tid": 971_000_000_000_000 + i, "users": [C, "0x" + "0" * 40]})
with open("serum/events.jsonl", "w") as f:
    f.write("# Reconstructed spot buys of the 2022-10-11 Mango Markets exploit on Serum (make_events.py; see replay.toml).\n")
    for e in serum:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(len(mango), "mango events,", len(serum), "serum events")
