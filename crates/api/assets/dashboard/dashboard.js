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

  async function api(path) {
    const headers = key ? { Authorization: "Bearer " + key } : {};
    const r = await fetch(path, { headers });
    if (r.status === 401) { $("key-panel").hidden = false; throw new Error("unauthorized"); }
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  function renderRisk(risk, generatedAt) {
    const el = $("risk");
    el.dataset.level = risk.level;
    el.textContent = "risk " + risk.level + " · " + risk.score;
    el.title = risk.reasons.join("\n");
    $("clock").textContent = fmtTime(generatedAt);
  }

  function renderIncidents(list) {
    const box = $("incidents");
    $("incident-count").textContent = String(list.length);
    if (!list.length) { box.innerHTML = '<p class="empty">No open incidents.</p>'; return; }
    box.innerHTML = list.map((i) => {
      const ev = Object.entries(i.evidence || {}).slice(0, 8)
        .map(([k, v]) => "<span>" + esc(k) + "</span><b>" + esc(v) + "</b>").join("");
      return '<article class="incident" data-id="' + esc(i.id) + '" data-severity="' + esc(i.severity) + '">' +
        '<div><span class="badge ' + esc(i.severity) + '">' + esc(i.severity) + "</span>" +
        '<span class="badge">' + esc(i.threat_type) + "</span>" + (i.asset ? '<span class="badge">' + esc(i.asset) + "</span>" : "") + "</div>" +
        '<div class="title">' + esc(i.title) + "</div>" +
        '<div class="evidence">' + ev + "</div>" +
        '<div class="times">first ' + esc(fmtTime(i.first_seen)) + " · last " + esc(fmtTime(i.last_seen)) + " · " + i.detections + " detections</div></article>";
    }).join("");
    focusLinked();
  }

  // Alert messages link to "#incident/<id>": highlight that incident when it is open.
  function focusLinked() {
    const m = /^#incident\/([A-Za-z0-9_]+)$/.exec(location.hash);
    if (!m) return;
    const a = document.querySelector('article.incident[data-id="' + m[1] + '"]');
    if (a && !a.classList.contains("focus")) { a.classList.add("focus"); a.scrollIntoView({ block: "center" }); }
  }
  window.addEventListener("hashchange", focusLinked);

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
      const t = el("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = opts.fmt(v); svg.appendChild(t);
    }
    [x0, x1].forEach((x, i) => { const t = el("text", { x: X(x), y: H - 6, "text-anchor": i ? "end" : "start" }); t.textContent = new Date(x).toISOString().slice(5, 16).replace("T", " "); svg.appendChild(t); });
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
    chart($("hlp-chart"), xs, [{ ys: peaks, fillTo: pnl, cls: "dd" }, { ys: pnl, cls: "pnl" }], { fmt: fmtUsd });
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
    chart($("oracle-chart"), xs, [{ ys: mark, cls: "mark" }, { ys: ref, cls: "dev" }], { zero: true, fmt: (v) => v.toFixed(2) + "%" });
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
    chart($("liq-chart"), xs, [{ kind: "dots", ys, cls: (i) => (list[i].is_adl ? "adl" : "liq"), r: (i) => Math.min(9, 2 + Math.log10(1 + ys[i]) / 1.5) }], { zero: true, fmt: fmtUsd });
    $("liq-stats").innerHTML = "<div>count<b>" + l.count + "</b></div><div>notional<b>" + fmtUsd(l.total_notional) + "</b></div><div>ADL fills<b>" + l.adl_count + "</b></div>";
  }

  async function refresh() {
    const d = await api("/security/dashboard");
    renderRisk(d.risk, d.generated_at);
    renderIncidents(d.open_incidents);
    renderEvents(d.recent_events);
    renderFeeds(d.feeds);
    const sel = $("oracle-asset");
    // Assets of open incidents first (the one that matters now), then the largest deviations.
    const assets = Array.from(new Set(d.open_incidents.map((i) => i.asset).filter(Boolean).concat(d.oracle.map((o) => o.asset))));
    const shown = Array.from(sel.options).map((o) => o.value).join(",");
    if (assets.length && shown !== assets.join(",")) {
      if (!userPicked || !assets.includes(oracleAsset)) oracleAsset = assets[0];
      sel.innerHTML = assets.map((a) => '<option value="' + esc(a) + '">' + esc(a) + "</option>").join("");
      sel.value = oracleAsset;
    }
    if (!lastEventId) lastEventId = d.last_event_id;
    await Promise.allSettled([loadHlp(), loadOracle(), loadLiquidations()]);
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
  refresh().catch(() => {}).finally(connect);
  setInterval(() => refresh().catch(() => {}), 10000);
})();
