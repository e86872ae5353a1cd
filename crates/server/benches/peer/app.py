"""The reference Python server of the load bench (`cargo bench -p kamiyo-server --bench load`).

What a team would build instead of kamiyo's API with the usual Python stack: FastAPI under
uvicorn (uvloop, httptools), the standard library's sqlite3 reading the very database file the
Rust server reads, orjson for the responses. It answers the same read paths with the same JSON
fields, computed the same way per request (no response cache), and is given its best shot: one
connection per worker process, `async def` handlers querying SQLite directly (no thread-pool hop;
the queries take microseconds), indexes as kamiyo's migrations created them.

Written for this bench from the packages' public documentation; installed from PyPI by the bench
into a virtual environment (`requirements.txt`). Environment: KAMIYO_PEER_DB (the SQLite file),
KAMIYO_PEER_NOW_MS (the bench's fixed clock), KAMIYO_PEER_HLP (the HLP vault address).
"""

import json
import os
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import ORJSONResponse

DB = os.environ["KAMIYO_PEER_DB"]
NOW_MS = int(os.environ["KAMIYO_PEER_NOW_MS"])
HLP = os.environ.get("KAMIYO_PEER_HLP", "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303")
DAY_MS = 86_400_000
SEVERITIES = ["info", "low", "medium", "high", "critical"]

app = FastAPI(default_response_class=ORJSONResponse)
# Handlers return ORJSONResponse themselves: FastAPI then skips `jsonable_encoder`, its slowest
# step for a response without a model (the documented fast path for large responses).
_conn = None


def db():
    global _conn
    if _conn is None:
        _conn = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, check_same_thread=False)
        _conn.row_factory = sqlite3.Row
    return _conn


def rfc3339(ms):
    return (
        datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{ms % 1000:03d}Z"
    )


def event(r):
    e = {
        "seq": r["seq"],
        "id": r["id"],
        "incident_id": r["incident_id"],
        "incident_key": r["incident_key"],
        "protocol": r["protocol"],
        "change": r["change"],
        "detector": r["detector"],
        "threat_type": r["threat_type"],
        "severity": r["severity"],
        "title": r["title"],
        "indicators": json.loads(r["indicators"]),
        "evidence": json.loads(r["evidence"]),
        "time": rfc3339(r["time_ms"]),
    }
    if r["asset"] is not None:
        e["asset"] = r["asset"]
    return e


def incident(r):
    i = {
        "id": r["id"],
        "key": r["incident_key"],
        "protocol": r["protocol"],
        "detector": r["detector"],
        "threat_type": r["threat_type"],
        "severity": r["severity"],
        "peak_severity": r["peak_severity"],
        "status": r["status"],
        "title": r["title"],
        "indicators": json.loads(r["indicators"]),
        "evidence": json.loads(r["evidence"]),
        "first_seen": rfc3339(r["first_seen_ms"]),
        "last_seen": rfc3339(r["last_seen_ms"]),
        "resolved_at": rfc3339(r["resolved_at_ms"]) if r["resolved_at_ms"] is not None else None,
        "detections": r["detections"],
    }
    if r["asset"] is not None:
        i["asset"] = r["asset"]
    return i


def bad(name, what):
    raise HTTPException(status_code=400, detail=f"{name}: expected {what}")


@app.get("/health")
async def health():
    return ORJSONResponse({"status": "ok", "version": "peer"})


@app.get("/feeds")
async def feeds():
    return ORJSONResponse({"feeds": [], "down": 0})


@app.get("/security/events")
async def events(
    limit: int = Query(50, ge=1, le=1000),
    severity: str | None = None,
    asset: str | None = None,
    threat_type: str | None = None,
    cursor: str | None = None,
):
    where, args = [], []
    if severity is not None:
        if severity not in SEVERITIES:
            bad("severity", "a severity")
        where.append("severity_rank >= ?")
        args.append(SEVERITIES.index(severity))
    if asset is not None:
        where.append("asset = ?")
        args.append(asset)
    if threat_type is not None:
        where.append("threat_type = ?")
        args.append(threat_type)
    if cursor is not None:
        if not cursor.startswith("e") or not cursor[1:].isdigit():
            bad("cursor", "a cursor")
        where.append("seq < ?")
        args.append(int(cursor[1:]))
    sql = "SELECT * FROM security_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    rows = db().execute(sql, (*args, limit)).fetchall()
    page = {"events": [event(r) for r in rows]}
    if len(rows) == limit:
        page["next_cursor"] = f"e{rows[-1]['seq']}"
    return ORJSONResponse(page)


@app.get("/security/incidents")
async def incidents(
    limit: int = Query(50, ge=1, le=500),
    status: str | None = None,
    asset: str | None = None,
):
    where, args = [], []
    if status is not None:
        if status not in ("open", "resolved"):
            bad("status", "open or resolved")
        where.append("status = ?")
        args.append(status)
    if asset is not None:
        where.append("asset = ?")
        args.append(asset)
    sql = "SELECT * FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_seen_ms DESC, id LIMIT ?"
    rows = db().execute(sql, (*args, limit)).fetchall()
    return ORJSONResponse({"incidents": [incident(r) for r in rows]})


@app.get("/ml/anomalies")
async def anomalies(limit: int = Query(50, ge=1, le=500)):
    rows = db().execute(
        "SELECT * FROM security_events WHERE threat_type = 'ml_anomaly' ORDER BY seq DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return ORJSONResponse({"model": None, "anomalies": [event(r) for r in rows]})


@app.get("/security/dashboard")
async def dashboard():
    c = db()
    day = NOW_MS - DAY_MS
    open_rows = c.execute(
        "SELECT * FROM incidents WHERE status = 'open' ORDER BY last_seen_ms DESC, id LIMIT 50"
    ).fetchall()
    recent = c.execute("SELECT * FROM security_events ORDER BY seq DESC LIMIT 20").fetchall()
    points = c.execute(
        "SELECT time_ms, account_value, pnl FROM vault_points WHERE vault = ? AND time_ms >= ? "
        "ORDER BY time_ms LIMIT 20000",
        (HLP, day),
    ).fetchall()
    pnl = [Decimal(p["pnl"]) for p in points]
    change = (pnl[-1] - pnl[0]) if pnl else None
    drawdown = None
    if points:
        peak = Decimal(points[0]["account_value"])
        worst = Decimal(0)
        for p in points:
            v = Decimal(p["account_value"])
            peak = max(peak, v)
            if peak > 0:
                worst = max(worst, (peak - v) / peak * 100)
        drawdown = worst
    devs = c.execute(
        "SELECT * FROM deviation_samples WHERE time_ms >= ? ORDER BY time_ms LIMIT 5000",
        (NOW_MS - 15 * 60_000,),
    ).fetchall()
    latest = {}
    for d in devs:
        latest[(d["coin"], d["kind"], d["venue"])] = d
    oracle = [
        {
            "asset": d["coin"],
            "protocol": d["protocol"],
            "time": rfc3339(d["time_ms"]),
            "kind": d["kind"],
            "value": d["value"],
            "reference": d["reference"],
            "deviation_pct": d["deviation_pct"],
        }
        for d in latest.values()
        if d["kind"] == "oracle_vs_reference" and d["venue"] is None
    ][:10]
    liq = c.execute(
        "SELECT notional, is_adl FROM liquidations WHERE time_ms >= ? ORDER BY time_ms DESC LIMIT 1000",
        (day,),
    ).fetchall()
    resolved = c.execute(
        "SELECT * FROM incidents WHERE status = 'resolved' ORDER BY last_seen_ms DESC, id LIMIT 50"
    ).fetchall()
    critical = sum(1 for r in open_rows if r["severity"] == "critical")
    return ORJSONResponse({
        "generated_at": rfc3339(NOW_MS),
        "risk": {
            "level": "critical" if critical else ("elevated" if open_rows else "normal"),
            "open": len(open_rows),
            "resolved_24h": sum(1 for r in resolved if (r["resolved_at_ms"] or 0) >= day),
        },
        "open_incidents": [incident(r) for r in open_rows],
        "recent_events": [event(r) for r in recent],
        "hlp": {
            "account_value": points[-1]["account_value"] if points else None,
            "pnl_24h": str(change) if change is not None else None,
            "drawdown_pct": str(drawdown) if drawdown is not None else None,
        },
        "oracle": oracle,
        "liquidations_24h": {
            "count": len(liq),
            "total_notional": str(sum((Decimal(r["notional"]) for r in liq), Decimal(0))),
            "adl_count": sum(1 for r in liq if r["is_adl"]),
        },
        "feeds": [],
        "last_event_id": recent[0]["seq"] if recent else 0,
    })
