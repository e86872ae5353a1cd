// kamiyo dashboard: first paint from /security/dashboard, then live over /ws (resumed from the
// last event id after a reconnect). No dependencies; charts are plain SVG.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  let key = localStorage.getItem("kamiyo.apiKey") || "";
  let lastEventId = 0;
  let oracleAsset = "";
  let userPicked = false;
  let refreshTimer = null;
  let backoff = 500;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function fmtTime(t) { return t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—"; }
  function fmtUsd(v) {
    if (v === undefined || v === null) return "—";
    const n = Number(v), a = Math.abs(n);
    const s = a >= 1e9 ? (a / 1e9).toFixed(2) + "B" : a >= 1e6 ? (a / 1e6).toFixed(2) + "M" : a >= 1e3 ? (a / 1e3).toFixed(1) + "k" : a.toFixed(2);
    return (n < 0 ? "-$" : "$") + s;
  }

  // Axis labels with as many decimals as the step between grid lines needs (no repeated
  // "$61.00M" on a narrow range).
  function axisFmt(lo, hi, unit) {
    const step = Math.abs(hi - lo) / 4 || 1;
    const mag = Math.max(Math.abs(lo), Math.abs(hi));
    const scale = unit === "usd" ? (mag >= 1e9 ? 1e9 : mag >= 1e6 ? 1e6 : mag >= 1e3 ? 1e3 : 1) : 1;
    const suffix = unit === "usd" ? ({ 1e9: "B", 1e6: "M", 1e3: "k", 1: "" })[scale] : unit === "pct" ? "%" : "";
    const dec = Math.min(8, Math.max(0, Math.ceil(-Math.log10(step / scale)) + 1));
    return (v) => (unit === "usd" ? (v < 0 ? "-$" : "$") : v < 0 ? "-" : "") + (Math.abs(v) / scale).toFixed(dec) + suffix;
  }

  async function api(path, method, body) {
    const headers = key ? { Authorization: "Bearer " + key } : {};
    const init = { headers, method: method || "GET" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch(path, init);
    if (r.status === 401) { $("key-panel").hidden = false; throw new Error("unauthorized"); }
    if (!r.ok) {
      let detail = path + ": " + r.status;
      try { const p = await r.json(); if (p.detail) detail = p.detail; } catch (_) { /* not a problem document */ }
      throw new Error(detail);
    }
    return r.json();
  }

  // Evidence in human units, from the field name's suffix: *_usd dollars, *_pct percent, *_ms
  // durations, *_px prices, time-like fields as UTC times; sizes keep their digits.
  function fmtDuration(ms) {
    const s = Math.round(Number(ms) / 1000);
    if (!Number.isFinite(s)) return String(ms);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function fmtNum(v) { const n = Number(v); return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: 6 }) : String(v); }
  function human(k, v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (/(^|_)(usd|notional|value|pnl|equity)$|_usd_/.test(k) && Number.isFinite(Number(v))) return fmtUsd(v) + " (" + fmtNum(v) + " USD)";
    if (/_pct$/.test(k) && Number.isFinite(Number(v))) return Number(v).toFixed(3) + " %";
    if (/_ms$/.test(k) && !/(time|start|end|_at)_ms$/.test(k)) return fmtDuration(v);
    if (/(^|_)(time|start|end|at)(_ms)?$/.test(k) && Number(v) > 1e12) return fmtTime(new Date(Number(v)).toISOString());
    if (/_px$|^px$|price/.test(k) && Number.isFinite(Number(v))) return "$" + fmtNum(v);
    if (typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v)) return v;
    return typeof v === "object" ? JSON.stringify(v) : (Number.isFinite(Number(v)) && v !== "" ? fmtNum(v) : String(v));
  }
  // Words for field names whose meaning the name alone does not carry (as the alert channels).
  const LABELS = { szi: "position size (coins, signed)", ntl: "notional", px: "price", oi: "open interest" };
  function evidenceHtml(ev, limit) {
    return Object.entries(ev || {}).slice(0, limit || 100).map(([k, v]) => {
      const link = typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v)
        ? '<a href="https://app.hyperliquid.xyz/explorer/address/' + esc(v) + '" rel="noopener noreferrer">' + esc(v) + "</a>" : esc(human(k, v));
      return "<span>" + esc(LABELS[k] || k.replace(/_(usd|pct|ms|px)$/, (m, u) => (u === "px" ? " price" : "")).replace(/_/g, " ")) + "</span><b>" + link + "</b>";
    }).join("");
  }

  function renderRisk(risk, generatedAt) {
    const el = $("risk");
    el.dataset.level = risk.level;
    el.textContent = risk.level === "unknown" ? "risk unknown · no market data" : "risk " + risk.level + " · " + risk.score;
    el.title = risk.reasons.join("\n");
    $("clock").textContent = fmtTime(generatedAt);
  }

  function renderIncidents(list) {
    const box = $("incidents");
    $("incident-count").textContent = String(list.length);
    if (!list.length) { box.innerHTML = '<p class="empty">No open incidents.</p>'; return; }
    box.innerHTML = list.map((i) => {
      const ev = evidenceHtml(i.evidence, 8);
      return '<article class="incident" data-id="' + esc(i.id) + '" data-severity="' + esc(i.severity) + '" tabindex="0">' +
        '<div><span class="badge ' + esc(i.severity) + '">' + esc(i.severity) + "</span>" +
        '<span class="badge">' + esc(i.threat_type) + "</span>" + (i.asset ? '<span class="badge">' + esc(i.asset) + "</span>" : "") +
        (i.acknowledged_by ? '<span class="acked">acknowledged by ' + esc(i.acknowledged_by) + "</span>" : "") + "</div>" +
        '<div class="title">' + esc(i.title) + "</div>" +
        '<div class="evidence">' + ev + "</div>" +
        '<div class="times">first ' + esc(fmtTime(i.first_seen)) + " · last " + esc(fmtTime(i.last_seen)) + " · " + i.detections + " detections</div></article>";
    }).join("");
    focusLinked();
  }

  // Alert messages link to "#incident/<id>": the incident page, open or resolved.
  let pageId = "";
  let pageIncident = null;
  function focusLinked() {
    const m = /^#incident\/([A-Za-z0-9_-]+)$/.exec(location.hash);
    pageId = m ? m[1] : "";
    $("incident-page").hidden = !pageId;
    $("overview").hidden = !!pageId;
    if (pageId) loadIncident().catch((e) => { $("ip-head").textContent = String(e.message || e); });
  }
  window.addEventListener("hashchange", focusLinked);
  $("incidents").addEventListener("click", (e) => {
    const a = e.target.closest("article.incident");
    if (a) location.hash = "#incident/" + a.dataset.id;
  });
  $("incidents").addEventListener("keydown", (e) => {
    const a = e.target.closest("article.incident");
    if (a && e.key === "Enter") location.hash = "#incident/" + a.dataset.id;
  });

  async function loadIncident() {
    const d = await api("/security/incidents/" + encodeURIComponent(pageId));
    const i = d.incident;
    pageIncident = i;
    $("ip-head").innerHTML = '<div><span class="badge ' + esc(i.severity) + '">' + esc(i.severity) + '</span><span class="badge">' + esc(i.status) + "</span>" +
      '<span class="badge">' + esc(i.threat_type) + "</span>" + (i.asset ? '<span class="badge">' + esc(i.asset) + "</span>" : "") +
      (d.acknowledged ? '<span class="acked">acknowledged by ' + esc(d.acknowledged.by) + " at " + esc(fmtTime(d.acknowledged.at)) + "</span>" : "") + "</div>" +
      '<h2 class="title" id="ip-title">' + esc(i.title) + "</h2>" +
      '<div class="times">peak ' + esc(i.peak_severity) + " · first " + esc(fmtTime(i.first_seen)) + " · last " + esc(fmtTime(i.last_seen)) +
      (i.resolved_at ? " · resolved " + esc(fmtTime(i.resolved_at)) : "") + " · " + i.detections + " detections · " + esc(i.id) + "</div>";
    const open = i.status === "open";
    $("ip-ack").hidden = !open;
    $("ip-ack").textContent = d.acknowledged ? "Unacknowledge" : "Acknowledge";
    $("ip-resolve").hidden = !open;
    $("ip-evidence").innerHTML = evidenceHtml(i.evidence);
    // History: lifecycle steps and people's actions, in time order.
    const rows = d.events.map((e) => ({ t: e.time, step: e.change, who: e.severity, what: e.title }))
      .concat(d.actions.map((a) => ({ t: a.time, step: a.kind, who: a.actor, what: a.note })))
      .sort((a, b) => Date.parse(a.t) - Date.parse(b.t));
    $("ip-history").innerHTML = rows.map((r) => "<tr><td>" + esc(fmtTime(r.t)) + "</td><td>" + esc(r.step) + "</td><td>" + esc(r.who) + "</td><td>" + esc(r.what) + "</td></tr>").join("");
    $("ip-deliveries").innerHTML = d.deliveries.length ? d.deliveries.map((x) => "<tr><td>" + esc(fmtTime(x.created_at)) + "</td><td>" + esc(x.channel) + "</td><td>" + esc(x.change) +
      "</td><td>" + esc(x.status) + "</td><td>" + x.attempts + "</td><td>" + esc(x.last_error || "") + "</td></tr>").join("") : '<tr><td colspan="6" class="empty">No alert was routed for this incident.</td></tr>';
    $("ip-silences").innerHTML = d.silences.length ? "<h3>Silenced by</h3><ul class=\"resolved\">" + d.silences.map(silenceItem).join("") + "</ul>" : "";
    incidentChart(d);
  }

  // The series around the incident, each scaled to its own range (shapes, not levels, compare),
  // with the first detection and the resolution marked.
  function incidentChart(d) {
    const svg = $("ip-chart");
    const series = d.series.filter((s) => s.points.length);
    const from = Date.parse(d.window[0]), to = Date.parse(d.window[1]);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 600, H = 220, L = 58, R = 8, T = 8, B = 22;
    const X = (x) => L + (x - from) / Math.max(1, to - from) * (W - L - R);
    if (!series.length) {
      const t = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }); t.textContent = "no stored series for this incident's window"; svg.appendChild(t);
    }
    series.slice(0, 3).forEach((s, k) => {
      const ys = s.points.map((p) => p[1]);
      let lo = Math.min(...ys), hi = Math.max(...ys);
      if (lo === hi) { lo -= 1; hi += 1; }
      const Y = (y) => T + (hi - y) / (hi - lo) * (H - T - B);
      if (k === 0) {
        const f = axisFmt(lo, hi, s.unit);
        for (let g = 0; g <= 4; g++) {
          const v = lo + (hi - lo) * g / 4;
          svg.appendChild(el("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: "grid" }));
          const t = el("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = f(v); svg.appendChild(t);
        }
      }
      let path = "";
      s.points.forEach((p) => { path += (path ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); });
      svg.appendChild(el("path", { d: path, class: "s" + k }));
    });
    timeAxis(svg, X, from, to, H);
    const mark = (iso, label) => {
      if (!iso) return;
      const x = X(Date.parse(iso));
      svg.appendChild(el("line", { x1: x, x2: x, y1: T, y2: H - B, class: "marker" }));
      const t = el("text", { x: x + 3, y: T + 10 }); t.textContent = label; svg.appendChild(t);
    };
    mark(d.incident.first_seen, "detected");
    mark(d.incident.resolved_at, "resolved");
    $("ip-legend").innerHTML = series.slice(0, 3).map((s, k) => '<div><i class="key s' + k + '"></i>' + esc(s.name) + "</div>").join("") +
      '<div>window ' + esc(fmtTime(d.window[0])) + " – " + esc(fmtTime(d.window[1])) + "</div>";
  }

  async function act(path, body) {
    const msg = $("ip-message");
    try {
      await api(path, "POST", body);
      msg.textContent = "";
      $("ip-note").value = "";
      await loadIncident();
      refreshSoon();
    } catch (e) { msg.textContent = String(e.message || e); }
  }
  const base = () => "/security/incidents/" + encodeURIComponent(pageId);
  $("ip-ack").addEventListener("click", () => act(base() + ($("ip-ack").textContent === "Acknowledge" ? "/acknowledge" : "/unacknowledge"), {}));
  $("ip-resolve").addEventListener("click", () => act(base() + "/resolve", { note: $("ip-note").value }));
  $("ip-addnote").addEventListener("click", () => act(base() + "/notes", { note: $("ip-note").value }));
  $("ip-silence").addEventListener("click", async () => {
    const i = pageIncident; if (!i) return;
    const minutes = Number($("ip-silence-for").value);
    // Minutes on the monitor's clock (a replay's clock is the scenario's, not the browser's).
    const body = { severity: $("ip-silence-sev").value, minutes,
      comment: $("ip-note").value.trim() || ("silenced from incident " + i.id) };
    if ($("ip-silence-scope").value === "asset" && i.asset) body.asset = i.asset; else body.detector = i.detector;
    const msg = $("ip-message");
    try { await api("/silences", "POST", body); msg.textContent = "silence created"; loadSilences().catch(() => {}); } catch (e) { msg.textContent = String(e.message || e); }
  });

  function silenceItem(s) {
    const m = ["detector", "asset", "severity", "protocol"].filter((k) => s[k]).map((k) => k + (k === "severity" ? " ≤ " : " = ") + s[k]).join(", ");
    return '<li data-silence="' + esc(s.id) + '">' + esc(m) + " · until " + esc(fmtTime(s.ends_at)) + " · " + esc(s.comment) + " · " + esc(s.created_by) +
      (s.active ? ' <button type="button" data-end="' + esc(s.id) + '">End</button>' : "") + "</li>";
  }
  async function loadSilences() {
    const l = await api("/silences");
    $("silences").innerHTML = l.silences.length ? l.silences.map(silenceItem).join("") : '<li class="empty">No active silence.</li>';
  }
  $("silences").addEventListener("click", async (e) => {
    const id = e.target.dataset && e.target.dataset.end;
    if (!id) return;
    try { await api("/silences/" + encodeURIComponent(id), "DELETE"); } catch (_) { /* shown by the reload */ }
    loadSilences().catch(() => {});
  });
  async function loadResolved() {
    const l = await api("/security/incidents?status=resolved&limit=10");
    $("resolved").innerHTML = l.incidents.length ? l.incidents.map((i) => '<li><a href="#incident/' + esc(i.id) + '"><span class="badge ' + esc(i.peak_severity) + '">' +
      esc(i.peak_severity) + "</span> " + esc(i.title) + "</a> · resolved " + esc(fmtTime(i.resolved_at)) + "</li>").join("") : '<li class="empty">Nothing resolved yet.</li>';
  }

  function eventRow(e) {
    return '<tr data-seq="' + e.seq + '"><td>' + esc(fmtTime(e.time)) + "</td><td>" + esc(e.change) + '</td><td><span class="badge ' + esc(e.severity) + '">' +
      esc(e.severity) + "</span></td><td>" + esc(e.threat_type) + "</td><td>" + esc(e.asset || "-") + "</td><td>" + esc(e.title) + "</td></tr>";
  }
  function renderEvents(list) { $("events").innerHTML = list.map(eventRow).join(""); }
  function addEvent(e) {
    const body = $("events");
    body.insertAdjacentHTML("afterbegin", eventRow(e));
    while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
  }

  function renderFeeds(feeds) {
    const ul = $("feeds");
    if (!feeds.length) { ul.innerHTML = '<li class="empty">No feed reported yet.</li>'; return; }
    ul.innerHTML = feeds.map((f) => '<li data-feed="' + esc(f.feed) + '"><span class="state ' + esc(f.state) + '">' + esc(f.state) + "</span><span>" + esc(f.feed) +
      '</span><span class="detail">' + esc(f.detail || (f.last_data_at ? "data " + fmtTime(f.last_data_at) : "")) + "</span></li>").join("");
  }
  function updateFeed(f) {
    const feeds = Array.from($("feeds").querySelectorAll("li[data-feed]")).map((li) => li.dataset.feed);
    refreshSoon();
    if (!feeds.includes(f.feed)) return;
  }

  // Five UTC time labels; the first carries the date.
  function timeAxis(svg, X, from, to, H) {
    for (let g = 0; g <= 4; g++) {
      const x = from + (to - from) * g / 4;
      const t = el("text", { x: X(x), y: H - 6, "text-anchor": g === 0 ? "start" : g === 4 ? "end" : "middle" });
      const iso = new Date(x).toISOString();
      t.textContent = g === 0 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 16);
      svg.appendChild(t);
    }
  }

  function el(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  // A line chart of (t, y) series; `area` shades between the series and a baseline series.
  function chart(svg, xs, series, opts) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 600, H = 220, L = 58, R = 8, T = 8, B = 22;
    if (!xs.length) { const t = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }); t.textContent = "no data in the window"; svg.appendChild(t); return; }
    const all = series.flatMap((s) => s.ys).filter((v) => Number.isFinite(v));
    let lo = Math.min(...all, opts.zero ? 0 : Infinity), hi = Math.max(...all, opts.zero ? 0 : -Infinity);
    if (lo === hi) { lo -= 1; hi += 1; }
    const x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => T + (hi - y) / (hi - lo) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4;
      svg.appendChild(el("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: "grid" }));
      const t = el("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = (opts.unit ? axisFmt(lo, hi, opts.unit) : opts.fmt)(v); svg.appendChild(t);
    }
    timeAxis(svg, X, x0, x1, H);
    // Incident markers: a dashed line at each detection inside the window.
    for (const m of opts.markers || []) {
      if (m.t < x0 || m.t > x1) continue;
      svg.appendChild(el("line", { x1: X(m.t), x2: X(m.t), y1: T, y2: H - B, class: "marker" }));
      const t = el("text", { x: X(m.t) + 3, y: T + 10 }); t.textContent = m.label; svg.appendChild(t);
    }
    for (const s of series) {
      if (s.kind === "dots") {
        s.ys.forEach((y, i) => svg.appendChild(el("circle", { cx: X(xs[i]), cy: Y(y), r: s.r ? s.r(i) : 3, class: s.cls(i) })));
        continue;
      }
      let d = "";
      s.ys.forEach((y, i) => { if (Number.isFinite(y)) d += (d ? "L" : "M") + X(xs[i]).toFixed(1) + "," + Y(y).toFixed(1); });
      if (s.fillTo) {
        let back = "";
        for (let i = s.fillTo.length - 1; i >= 0; i--) back += "L" + X(xs[i]).toFixed(1) + "," + Y(s.fillTo[i]).toFixed(1);
        svg.appendChild(el("path", { d: d + back + "Z", class: s.cls }));
      } else {
        svg.appendChild(el("path", { d, class: s.cls }));
      }
    }
  }

  async function loadHlp() {
    const h = await api("/security/hlp-vault?hours=24");
    const xs = h.points.map((p) => Date.parse(p.time));
    const pnl = h.points.map((p) => Number(p.pnl));
    let peak = -Infinity; const peaks = pnl.map((v) => (peak = Math.max(peak, v)));
    chart($("hlp-chart"), xs, [{ ys: peaks, fillTo: pnl, cls: "dd" }, { ys: pnl, cls: "pnl" }], { unit: "usd", markers: markersFor((e) => /^(hlp_|liquidator_)/.test(e.threat_type)) });
    $("hlp-stats").innerHTML = "<div>account value<b>" + fmtUsd(h.account_value) + "</b></div><div>PnL 24 h<b>" + fmtUsd(h.pnl_change) +
      "</b></div><div>drawdown<b>" + (h.drawdown_pct !== undefined ? Number(h.drawdown_pct).toFixed(2) + "%" : "—") + "</b></div>";
  }

  async function loadOracle() {
    if (!oracleAsset) { chart($("oracle-chart"), [], [], {}); return; }
    const o = await api("/security/oracle-deviations?hours=24&asset=" + encodeURIComponent(oracleAsset));
    // Two series on one time axis: oracle vs the outside exchanges, and mark vs oracle.
    const xs = Array.from(new Set(o.samples.map((d) => Date.parse(d.time)))).sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const ref = xs.map(() => NaN), mark = xs.map(() => NaN);
    for (const d of o.samples) {
      const i = at.get(Date.parse(d.time));
      if (d.kind === "oracle_vs_reference") ref[i] = Number(d.deviation_pct);
      else if (d.kind === "mark_vs_oracle") mark[i] = Number(d.deviation_pct);
    }
    chart($("oracle-chart"), xs, [{ ys: mark, cls: "mark" }, { ys: ref, cls: "dev" }], { zero: true, unit: "pct",
      markers: markersFor((e) => e.asset === oracleAsset && /oracle|venue|mark|thin/.test(e.threat_type)) });
    const last = (ys) => { for (let i = ys.length - 1; i >= 0; i--) if (Number.isFinite(ys[i])) return ys[i].toFixed(3) + "%"; return "—"; };
    const maxAbs = (ys) => { const f = ys.filter(Number.isFinite); return f.length ? Math.max(...f.map(Math.abs)).toFixed(3) + "%" : "—"; };
    $("oracle-stats").innerHTML = '<div><i class="key dev"></i>oracle vs exchanges<b>' + last(ref) + "</b></div><div>max |dev| 24 h<b>" + maxAbs(ref) +
      '</b></div><div><i class="key mark"></i>mark vs oracle<b>' + last(mark) + "</b></div><div>max |dev| 24 h<b>" + maxAbs(mark) + "</b></div>";
  }

  async function loadLiquidations() {
    const l = await api("/security/liquidations?hours=24&limit=1000");
    const list = l.liquidations.slice().reverse();
    const xs = list.map((x) => Date.parse(x.time));
    const ys = list.map((x) => Number(x.notional));
    chart($("liq-chart"), xs, [{ kind: "dots", ys, cls: (i) => (list[i].is_adl ? "adl" : "liq"), r: (i) => Math.min(9, 2 + Math.log10(1 + ys[i]) / 1.5) }], { zero: true, unit: "usd",
      markers: markersFor((e) => /liquidation|cascade|deleveraging/.test(e.threat_type)) });
    $("liq-stats").innerHTML = "<div>count<b>" + l.count + "</b></div><div>notional<b>" + fmtUsd(l.total_notional) + "</b></div><div>ADL fills<b>" + l.adl_count + "</b></div>";
  }

  // Detections shown on the overview charts, from the latest events (opened steps).
  let recentOpened = [];
  function markersFor(test) {
    return recentOpened.filter(test).slice(0, 6).map((e) => ({ t: Date.parse(e.time), label: e.severity }));
  }

  async function loadPositions() {
    const p = await api("/security/positions?limit=12");
    $("positions").innerHTML = p.positions.length ? p.positions.map((x) => "<tr><td>" +
      '<a href="https://app.hyperliquid.xyz/explorer/address/' + esc(x.user) + '" rel="noopener noreferrer">' + esc(x.is_hlp ? "HLP vault" : x.user.slice(0, 8) + "…" + x.user.slice(-4)) + "</a></td><td>" +
      esc(x.asset) + "</td><td>" + esc(x.side) + "</td><td>" + esc(fmtUsd(x.notional)) + "</td><td>" + esc(x.leverage ? x.leverage + "×" : "—") + "</td><td>" +
      esc(x.liquidation_px ? "$" + fmtNum(x.liquidation_px) : "—") + "</td></tr>").join("") : '<tr><td colspan="6" class="empty">No watched position in the last 24 h.</td></tr>';
  }

  // The model and the forecast change slowly: once a minute is enough.
  let mlLoadedAt = 0;
  async function loadMl() {
    if (Date.now() - mlLoadedAt < 60000) return;
    mlLoadedAt = Date.now();
    const [a, f] = await Promise.allSettled([api("/ml/anomalies?limit=5"), api("/ml/forecast")]);
    let stats = "";
    if (a.status === "fulfilled" && a.value.model) {
      const m = a.value.model;
      stats += "<div>anomaly model<b>" + esc(m.model.replace("_", " ")) + " · " + esc(m.trained_on) + "</b></div><div>features<b>" + m.features.length + " · " + m.bar_secs / 60 + " min bars</b></div>";
    } else {
      stats += "<div>anomaly model<b>none loaded</b></div>";
    }
    if (f.status === "fulfilled") {
      const c = f.value.change_24h;
      stats += "<div>HLP PnL next 24 h<b>" + esc(fmtUsd(c.mean)) + "</b></div><div>95 % interval<b>" + esc(fmtUsd(c.lower)) + " … " + esc(fmtUsd(c.upper)) + "</b></div>";
    } else {
      stats += "<div>HLP forecast<b>" + esc(String(f.reason && f.reason.message || "unavailable")) + "</b></div>";
    }
    $("ml-stats").innerHTML = stats;
    const list = a.status === "fulfilled" ? a.value.anomalies : [];
    $("ml-anomalies").innerHTML = list.length ? list.map((e) => '<li><a href="#incident/' + esc(e.incident_id) + '">' + esc(fmtTime(e.time)) + " · " + esc(e.title) + "</a></li>").join("") : '<li class="empty">No anomaly detected.</li>';
  }

  async function refresh() {
    const d = await api("/security/dashboard");
    recentOpened = d.recent_events.filter((e) => e.change === "opened" || e.change === "escalated");
    renderRisk(d.risk, d.generated_at);
    renderIncidents(d.open_incidents);
    renderEvents(d.recent_events);
    renderFeeds(d.feeds);
    const sel = $("oracle-asset");
    // Assets of open incidents first (the one that matters now), then the markets with
    // deviations, alphabetically (a stable list: refreshes do not reorder it). An asset the
    // viewer picked stays while it is listed; otherwise the first (an open incident's market).
    const first = Array.from(new Set(d.open_incidents.map((i) => i.asset).filter(Boolean))).sort();
    const rest = d.oracle.map((o) => o.asset).filter((a) => !first.includes(a)).sort();
    const assets = Array.from(new Set(first.concat(rest)));
    const shown = Array.from(sel.options).map((o) => o.value).join(",");
    if (assets.length && shown !== assets.join(",")) {
      if (!userPicked || !assets.includes(oracleAsset)) oracleAsset = assets[0];
      sel.innerHTML = assets.map((a) => '<option value="' + esc(a) + '">' + esc(a) + "</option>").join("");
      sel.value = oracleAsset;
    }
    if (!lastEventId) lastEventId = d.last_event_id;
    await Promise.allSettled([loadHlp(), loadOracle(), loadLiquidations(), loadResolved(), loadSilences(), loadPositions(), loadMl()]);
  }
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh().catch(() => {}); }, 300);
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = proto + "//" + location.host + "/ws?last_event_id=" + lastEventId;
    if (key) url += "&api_key=" + encodeURIComponent(key);
    const ws = new WebSocket(url);
    const st = $("ws-status");
    ws.onopen = () => { st.dataset.state = "live"; st.textContent = "live"; backoff = 500; };
    ws.onmessage = (m) => {
      let f; try { f = JSON.parse(m.data); } catch (_) { return; }
      if (f.type === "event") {
        lastEventId = Math.max(lastEventId, f.event.seq);
        addEvent(f.event);
        refreshSoon();
      } else if (f.type === "feed") {
        updateFeed(f.feed);
      } else if (f.type === "hello" && !lastEventId) {
        lastEventId = f.last_event_id;
      }
    };
    ws.onclose = (e) => {
      st.dataset.state = "down";
      st.textContent = "reconnecting" + (e.reason ? " (" + e.reason + ")" : "");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  $("oracle-asset").addEventListener("change", (e) => { oracleAsset = e.target.value; userPicked = true; loadOracle().catch(() => {}); });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    key = $("key-input").value.trim();
    localStorage.setItem("kamiyo.apiKey", key);
    $("key-panel").hidden = true;
    refresh().catch(() => {});
  });
  focusLinked();
  refresh().catch(() => {}).finally(connect);
  setInterval(() => refresh().catch(() => {}), 10000);
})();
