// The tenant console: sign-in and sign-up, then the organisation's incidents (live over /ws,
// across its protocols), each incident's evidence, chart and timeline with acknowledge / mute /
// resolve, and its settings — every one a call to /api/v1 or to the open core's tenant-scoped
// routes, with the session cookie (writes carry the CSRF token the sign-in set).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const plans = JSON.parse(main.dataset.plans || "[]");
  const SVGNS = "http://www.w3.org/2000/svg";
  let me = null; // GET /api/v1/tenant
  let socket = null;

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function cookie(name) {
    const m = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return m ? decodeURIComponent(m.slice(name.length + 1)) : "";
  }
  class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }
  async function api(path, method, body) {
    const init = { method: method || "GET", credentials: "same-origin", headers: {} };
    if (init.method !== "GET") init.headers["x-csrf-token"] = cookie("kamiyo_csrf");
    if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch(path, init);
    if (r.status === 204) return null;
    const text = await r.text();
    let j = null;
    try { j = text ? JSON.parse(text) : null; } catch (_) { j = null; }
    if (!r.ok) throw new ApiError(r.status, (j && (j.detail || j.title)) || ("HTTP " + r.status));
    return j;
  }
  const fmtTime = (t) => {
    const d = typeof t === "number" ? new Date(t) : new Date(Date.parse(t));
    return isNaN(d) ? "" : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
  };
  function say(id, text, ok) { const m = $(id); if (!m) return; m.textContent = text; m.className = "msg " + (ok ? "ok" : "error"); }
  function banner(text, kind) { $("banner").innerHTML = text ? '<div class="banner ' + kind + '">' + esc(text) + "</div>" : ""; }
  function show(view) {
    for (const v of ["signin", "signup", "forgot", "token", "console"]) $("view-" + v).hidden = v !== view;
  }
  function form(id, fn) {
    $(id).addEventListener("submit", async (e) => {
      e.preventDefault();
      const b = $(id).querySelector("button[type=submit]");
      if (b) b.disabled = true;
      try { await fn(); } finally { if (b) b.disabled = false; }
    });
  }

  // ---- signing in, signing up, mailed links ----

  form("signin", async () => {
    try {
      await api("/api/v1/login", "POST", { tenant: $("si-tenant").value.trim(), email: $("si-email").value.trim(), password: $("si-password").value });
      $("si-password").value = "";
      await boot();
    } catch (e) {
      say("si-msg", e.status === 401 ? "The organisation, address or password is not right." : e.message);
    }
  });
  $("si-sso").addEventListener("click", () => {
    const t = $("si-tenant").value.trim() || main.dataset.brandTenant;
    if (!t) { say("si-msg", "Enter the organisation id first."); $("si-tenant").focus(); return; }
    location.href = "/sso/" + encodeURIComponent(t) + "/start";
  });
  form("signup", async () => {
    const plan = $("su-plan").value;
    try {
      const r = await api("/api/v1/signup", "POST", { tenant: $("su-tenant").value.trim(), name: $("su-name").value.trim(), email: $("su-email").value.trim(), password: $("su-password").value });
      // The owner's first key starts the checkout; the trial is Stripe's.
      const res = await fetch("/api/v1/billing/checkout", { method: "POST", headers: { authorization: "Bearer " + r.key.secret, "content-type": "application/json" }, body: JSON.stringify({ plan: plan }) });
      const j = await res.json().catch(() => ({}));
      if (res.ok && j.url) {
        say("su-msg", "Created. Opening the checkout…", true);
        location.href = j.url;
        return;
      }
      say("su-msg", "Created " + r.tenant + ". Check your mail to verify the address, then sign in." + (j.detail ? " (Checkout: " + j.detail + ")" : ""), true);
    } catch (e) { say("su-msg", e.message); }
  });
  form("forgot", async () => {
    try {
      await api("/api/v1/password-reset", "POST", { tenant: $("fg-tenant").value.trim(), email: $("fg-email").value.trim() });
      say("fg-msg", "If the address belongs to the organisation, a link is on its way.", true);
    } catch (e) { say("fg-msg", e.message); }
  });
  async function mailedLink() {
    const q = new URLSearchParams(location.search);
    const tenant = q.get("tenant") || "", token = q.get("token") || "";
    show("token");
    if (location.pathname === "/verify-email") {
      $("token-h").textContent = "Verifying your address";
      try { await api("/api/v1/verify-email", "POST", { tenant: tenant, token: token }); say("tk-msg", "Your address is verified. You can sign in.", true); }
      catch (e) { say("tk-msg", e.message); }
      return;
    }
    $("token-h").textContent = "Choose a new password";
    $("reset").hidden = false;
    form("reset", async () => {
      try { await api("/api/v1/password-reset/confirm", "POST", { tenant: tenant, token: token, password: $("rs-password").value }); say("tk-msg", "The password is set. Sign in with it.", true); $("reset").hidden = true; }
      catch (e) { say("tk-msg", e.message); }
    });
  }

  // ---- the console ----

  const views = {};
  async function route() {
    const h = location.hash.replace(/^#/, "");
    if (!me) return;
    const [name, arg] = [h.split("/")[0] || "incidents", decodeURIComponent(h.split("/").slice(1).join("/"))];
    document.querySelectorAll(".side a").forEach((a) => a.setAttribute("aria-current", a.getAttribute("href") === "#" + (name === "incident" ? "incidents" : name) ? "page" : "false"));
    const pane = $("pane");
    const v = views[name] || views.incidents;
    try { await v(pane, arg); } catch (e) { pane.innerHTML = '<p class="error" role="alert">' + esc(e.message) + "</p>"; }
  }
  window.addEventListener("hashchange", () => { if (me) route().then(() => $("pane").focus()); else boot(); });

  function table(headers, rows, empty) {
    if (!rows.length) return '<p class="empty">' + esc(empty) + "</p>";
    return '<div class="scroll"><table><thead><tr>' + headers.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody></table></div>";
  }
  function bind(sel, ev, fn) { document.querySelectorAll(sel).forEach((el) => el.addEventListener(ev, (e) => fn(el, e))); }

  // Incidents across the tenant's protocols, with the tenant's own state of each.
  views.incidents = async (pane) => {
    pane.innerHTML = '<h1>Incidents <span id="live" class="live" data-state="connecting">connecting…</span></h1><div id="inc-list" aria-live="polite"><p class="empty">Loading…</p></div>';
    await loadIncidents();
    liveUpdates();
  };
  async function loadIncidents() {
    const subs = (await api("/api/v1/subscriptions")).items.map((s) => s.protocol);
    const lists = await Promise.all(subs.map((p) => api("/security/incidents?protocol=" + encodeURIComponent(p) + "&limit=50").then((r) => r.incidents || r.items || []).catch(() => [])));
    const all = [].concat(...lists).sort((a, b) => Date.parse(b.last_seen) - Date.parse(a.last_seen));
    const states = all.length ? (await api("/api/v1/incident-states?ids=" + encodeURIComponent(all.slice(0, 200).map((i) => i.id).join(",")))).items : [];
    const st = Object.fromEntries(states.map((s) => [s.incident_id, s]));
    const el = $("inc-list");
    if (!el) return;
    el.innerHTML = all.length ? table(["Severity", "Incident", "Protocol", "Last seen", "Yours"], all.map((i) => {
      const s = st[i.id];
      return '<tr class="incident-row" tabindex="0" data-id="' + esc(i.id) + '"><td><span class="sev ' + esc(i.severity) + '">' + esc(i.severity) + '</span></td><td><a href="#incident/' + encodeURIComponent(i.id) + '">' + esc(i.title) + "</a> <span class=\"state\">" + esc(i.status) + "</span></td><td>" + esc(i.protocol) + "</td><td>" + esc(fmtTime(i.last_seen)) + '</td><td class="state">' + esc(s ? past(s.action) + " by " + who(s.actor) : "—") + "</td></tr>";
    }), "") : '<p class="empty">No incidents on your protocols' + (subs.length ? " (" + esc(subs.join(", ")) + ")" : "") + ". New ones appear here live.</p>";
    bind(".incident-row", "keydown", (row, e) => { if (e.key === "Enter") location.hash = "#incident/" + row.dataset.id; });
  }
  let refreshTimer = null;
  function liveUpdates() {
    if (socket && socket.readyState <= 1) { markLive(socket.readyState === 1); return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    socket = new WebSocket(url);
    socket.onopen = () => markLive(true);
    socket.onclose = () => { markLive(false); socket = null; setTimeout(() => { if (me && (location.hash === "" || location.hash.startsWith("#incidents"))) liveUpdates(); }, 3000); };
    socket.onmessage = (m) => {
      let f; try { f = JSON.parse(m.data); } catch (_) { return; }
      if (f.type !== "event") return;
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => { if ($("inc-list")) loadIncidents().catch(() => {}); else if (location.hash.startsWith("#incident/")) route(); }, 300);
    };
  }
  function markLive(on) { const l = $("live"); if (l) { l.dataset.state = on ? "live" : "down"; l.textContent = on ? "live" : "reconnecting…"; } }

  views.incident = async (pane, id) => {
    const [d, acts] = await Promise.all([api("/security/incidents/" + encodeURIComponent(id)), api("/api/v1/incidents/" + encodeURIComponent(id) + "/actions")]);
    const i = d.incident;
    const last = acts.items.length ? acts.items[acts.items.length - 1] : null;
    const ev = Object.entries(i.evidence || {}).map(([k, v]) => "<tr><th>" + esc(k.replace(/_/g, " ")) + "</th><td>" + esc(human(k, v)) + "</td></tr>").join("");
    const rows = (d.events || []).map((e) => ({ t: Date.parse(e.time), step: e.change, who: e.severity, what: e.title }))
      .concat(acts.items.map((a) => ({ t: a.at, step: past(a.action), who: who(a.actor), what: a.note })))
      .sort((a, b) => a.t - b.t)
      .map((r) => "<tr><td>" + esc(fmtTime(r.t)) + "</td><td>" + esc(r.step) + "</td><td>" + esc(r.who) + "</td><td>" + esc(r.what) + "</td></tr>");
    pane.innerHTML = '<p><a href="#incidents">← Incidents</a></p><h1 id="ip-title">' + esc(i.title) + '</h1><p><span class="sev ' + esc(i.severity) + '">' + esc(i.severity) + "</span> " + esc(i.protocol) + " · " + esc(i.threat_type) + " · " + esc(i.status) +
      ' · first ' + esc(fmtTime(i.first_seen)) + ' · <span id="ip-state">' + esc(last ? past(last.action) + " by " + who(last.actor) : "not acknowledged yet") + "</span></p>" +
      '<h2>Evidence</h2><div class="scroll"><table id="ip-evidence">' + ev + "</table></div>" +
      '<h2>Chart</h2><svg id="ip-chart" class="chart" viewBox="0 0 600 220" role="img" aria-label="Series around the incident, detection marked"></svg><div id="ip-legend" class="fine"></div>' +
      '<h2>Timeline</h2>' + table(["Time", "Step", "By", "What"], rows, "No steps yet.") +
      '<h2>Act</h2><form id="ip-act" class="stack"><label>Note <textarea id="ip-note" rows="2" maxlength="500"></textarea></label><div class="row">' +
      '<button type="button" data-act="acknowledge">Acknowledge</button><button type="button" class="ghost" data-act="mute">Mute alerts</button><button type="button" data-act="resolve">Resolve</button><button type="button" class="ghost" data-act="reopen">Reopen</button></div><p id="ip-msg" class="msg" role="alert"></p></form>';
    chart($("ip-chart"), d);
    bind("#ip-act button", "click", async (b) => {
      try { await api("/api/v1/incidents/" + encodeURIComponent(id) + "/actions", "POST", { action: b.dataset.act, note: $("ip-note").value }); await views.incident(pane, id); say("ip-msg", b.dataset.act + " recorded", true); }
      catch (e) { say("ip-msg", e.status === 403 ? "Your role cannot act on incidents (analysts and above can)." : e.message); }
    });
  };
  // Evidence in human units: amounts grouped, dollars marked, long decimals cut.
  function human(k, v) {
    if (v !== null && typeof v === "object") return JSON.stringify(v);
    const n = typeof v === "number" ? v : (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : NaN);
    if (!isFinite(n)) return String(v);
    const s = n.toLocaleString("en-US", { maximumFractionDigits: Math.abs(n) >= 100 ? 0 : 4 });
    if (/usd$/.test(k)) return "$" + s;
    if (/secs$/.test(k)) return s + " s";
    if (/pct$/.test(k)) return s + " %";
    return s;
  }
  // The numeric evidence across the incident's steps (when no market series is stored).
  function evidenceSeries(d) {
    const keys = {};
    (d.events || []).forEach((e) => Object.entries(e.evidence || {}).forEach(([k, v]) => {
      const n = typeof v === "number" ? v : (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : NaN);
      if (isFinite(n)) (keys[k] = keys[k] || []).push([Date.parse(e.time), n]);
    }));
    return Object.entries(keys).filter(([, p]) => p.length >= 2 && new Set(p.map((x) => x[1])).size > 1).slice(0, 2)
      .map(([k, p]) => ({ name: k.replace(/_/g, " ") + " at each step", points: p.sort((a, b) => a[0] - b[0]) }));
  }
  const past = (a) => ({ acknowledge: "acknowledged", mute: "muted", resolve: "resolved", reopen: "reopened" }[a] || a);
  const who = (actor) => String(actor).replace(/^key:user:/, "user ").replace(/^key:/, "key ").replace(/^sso:/, "");
  function el(name, attrs) { const e = document.createElementNS(SVGNS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
  function chart(svg, d) {
    let series = (d.series || []).filter((s) => s.points && s.points.length).map((s) => ({ name: s.name, points: s.points.map((p) => [typeof p[0] === "number" ? p[0] : Date.parse(p[0]), p[1]]) }));
    let from = Date.parse((d.window || [])[0]), to = Date.parse((d.window || [])[1]);
    if (!series.length) {
      series = evidenceSeries(d);
      const ts = [].concat(...series.map((s) => s.points.map((p) => p[0])));
      if (ts.length) { const pad = Math.max(5000, (Math.max(...ts) - Math.min(...ts)) * 0.05); from = Math.min(...ts) - pad; to = Math.max(...ts) + pad; }
    }
    const W = 600, H = 220, L = 50, R = 8, T = 8, B = 22;
    if (!series.length || isNaN(from)) { const t = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }); t.textContent = "No stored series for this incident's window."; svg.appendChild(t); return; }
    const X = (x) => L + (x - from) / Math.max(1, to - from) * (W - L - R);
    series.slice(0, 2).forEach((s, k) => {
      const ys = s.points.map((p) => p[1]);
      let lo = Math.min(...ys), hi = Math.max(...ys);
      if (lo === hi) { lo -= 1; hi += 1; }
      const Y = (y) => T + (hi - y) / (hi - lo) * (H - T - B);
      if (k === 0) for (let g = 0; g <= 4; g++) { const v = lo + (hi - lo) * g / 4; const t = el("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4); svg.appendChild(t); }
      let p = ""; s.points.forEach((pt) => { p += (p ? "L" : "M") + X(pt[0]).toFixed(1) + "," + Y(pt[1]).toFixed(1); });
      svg.appendChild(el("path", { d: p, class: "s" + k }));
    });
    const mark = (iso, label) => { if (!iso) return; const x = X(Date.parse(iso)); svg.appendChild(el("line", { x1: x, x2: x, y1: T, y2: H - B, class: "marker" })); const right = x > W - 70; const t = el("text", { x: right ? x - 3 : x + 3, y: T + 10, "text-anchor": right ? "end" : "start" }); t.textContent = label; svg.appendChild(t); };
    mark(d.incident.first_seen, "detected");
    mark(d.incident.resolved_at, "resolved");
    $("ip-legend").textContent = series.slice(0, 2).map((s) => s.name).join(" · ") + " · " + fmtTime(from) + " – " + fmtTime(to);
  }

  views.protocols = async (pane) => {
    const [all, subs] = await Promise.all([api("/api/v1/protocols"), api("/api/v1/subscriptions")]);
    const mine = new Set(subs.items.map((s) => s.protocol));
    const items = all.items || all.protocols || [];
    pane.innerHTML = "<h1>Protocols</h1><p>" + mine.size + " of " + me.limits.protocols + " your plan allows.</p>" +
      table(["Protocol", "Category", "Followed"], items.map((p) => "<tr><td>" + esc(p.name) + " <span class=\"state\">" + esc(p.id) + "</span></td><td>" + esc(p.category) + "</td><td>" +
        (mine.has(p.id) ? '<button class="ghost" data-unsub="' + esc(p.id) + '">Unfollow</button>' : '<button data-sub="' + esc(p.id) + '">Follow</button>') + "</td></tr>"), "No protocol is available on your plan.") + '<p id="pr-msg" class="msg" role="alert"></p>';
    bind("[data-sub]", "click", async (b) => { try { await api("/api/v1/subscriptions/" + encodeURIComponent(b.dataset.sub), "PUT"); await views.protocols(pane); } catch (e) { say("pr-msg", e.message); } });
    bind("[data-unsub]", "click", async (b) => { try { await api("/api/v1/subscriptions/" + encodeURIComponent(b.dataset.unsub), "DELETE"); await views.protocols(pane); } catch (e) { say("pr-msg", e.message); } });
  };

  views.thresholds = async (pane) => {
    const t = await api("/api/v1/thresholds");
    pane.innerHTML = "<h1>Thresholds</h1><p>Per detector: an alert is sent only when its figure reaches your value.</p>" +
      table(["Detector", "Setting", "Value", ""], t.items.map((r) => "<tr><td>" + esc(r.detector) + "</td><td>" + esc(r.name) + "</td><td>" + esc(r.value) + '</td><td><button class="ghost" data-del="' + esc(r.detector + "/" + r.name) + '">Back to default</button></td></tr>'), "No overrides: every detector uses its defaults.") +
      '<h2>Set one</h2><form id="th-form" class="row"><label>Detector <input id="th-det" required placeholder="oracle"></label><label>Setting <input id="th-name" required placeholder="deviation_pct"></label><label>Value <input id="th-val" type="number" step="any" required></label><button type="submit">Save</button></form><p id="th-msg" class="msg" role="alert"></p>';
    form("th-form", async () => { try { await api("/api/v1/thresholds/" + encodeURIComponent($("th-det").value.trim()) + "/" + encodeURIComponent($("th-name").value.trim()), "PUT", { value: Number($("th-val").value) }); await views.thresholds(pane); } catch (e) { say("th-msg", e.message); } });
    bind("[data-del]", "click", async (b) => { try { await api("/api/v1/thresholds/" + b.dataset.del.split("/").map(encodeURIComponent).join("/"), "DELETE"); await views.thresholds(pane); } catch (e) { say("th-msg", e.message); } });
  };

  views.watched = async (pane) => {
    const w = await api("/api/v1/watched-addresses");
    pane.innerHTML = "<h1>Watched addresses</h1>" + table(["Address", "Label", ""], w.items.map((r) => "<tr><td><code>" + esc(r.address) + "</code></td><td>" + esc(r.label) + '</td><td><button class="ghost" data-del="' + esc(r.address) + '">Stop watching</button></td></tr>'), "No address is watched.") +
      '<h2>Watch an address</h2><form id="wa-form" class="row"><label>Address <input id="wa-addr" required pattern="0x[0-9a-fA-F]{40}" placeholder="0x…"></label><label>Label <input id="wa-label" required maxlength="80"></label><button type="submit">Watch</button></form><p id="wa-msg" class="msg" role="alert"></p>';
    form("wa-form", async () => { try { await api("/api/v1/watched-addresses/" + encodeURIComponent($("wa-addr").value.trim()), "PUT", { label: $("wa-label").value.trim() }); await views.watched(pane); } catch (e) { say("wa-msg", e.message); } });
    bind("[data-del]", "click", async (b) => { try { await api("/api/v1/watched-addresses/" + encodeURIComponent(b.dataset.del), "DELETE"); await views.watched(pane); } catch (e) { say("wa-msg", e.message); } });
  };

  views.channels = async (pane) => {
    const c = await api("/api/v1/channels");
    pane.innerHTML = "<h1>Alert channels</h1>" + table(["Name", "Kind", "Destination", "From", ""], c.items.map((r) => "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.kind) + '</td><td class="wide">' + esc(r.url) + "</td><td>" + esc(r.min_severity) + '</td><td><button data-test="' + esc(r.channel_id) + '">Send a test</button> <button class="ghost" data-del="' + esc(r.channel_id) + '">Remove</button></td></tr>'), "No channel yet: add one to be alerted.") +
      '<p id="ch-msg" class="msg" role="alert"></p><h2>Add a channel</h2><form id="ch-form" class="stack"><label>Name <input id="ch-name" required maxlength="80"></label>' +
      '<label>Kind <select id="ch-kind"><option>webhook</option><option>slack</option><option>discord</option><option>telegram</option><option>pagerduty</option><option>opsgenie</option><option>email</option></select></label>' +
      '<label>Destination <input id="ch-url" required placeholder="https://… (mailto:you@example.com for email)"></label><label>Signing secret or token <input id="ch-secret" type="password" autocomplete="off"></label>' +
      '<label>Least severity <select id="ch-sev"><option>low</option><option>medium</option><option selected>high</option><option>critical</option></select></label><button type="submit">Add</button></form>';
    form("ch-form", async () => { try { await api("/api/v1/channels", "POST", { name: $("ch-name").value.trim(), kind: $("ch-kind").value, url: $("ch-url").value.trim(), secret: $("ch-secret").value || null, min_severity: $("ch-sev").value }); await views.channels(pane); say("ch-msg", "Channel added.", true); } catch (e) { say("ch-msg", e.message); } });
    bind("[data-test]", "click", async (b) => { try { const r = await api("/api/v1/channels/" + encodeURIComponent(b.dataset.test) + "/test", "POST"); say("ch-msg", r.delivered ? "Test message delivered." : "The test failed: " + r.error, r.delivered); } catch (e) { say("ch-msg", e.message); } });
    bind("[data-del]", "click", async (b) => { try { await api("/api/v1/channels/" + encodeURIComponent(b.dataset.del), "DELETE"); await views.channels(pane); } catch (e) { say("ch-msg", e.message); } });
  };

  views.keys = async (pane) => {
    const k = await api("/api/v1/keys");
    pane.innerHTML = "<h1>API keys</h1>" + table(["Name", "Role", "Created", "State", ""], k.items.map((r) => "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.role) + "</td><td>" + esc(fmtTime(r.created_at)) + "</td><td>" + (r.revoked_at ? "revoked" : "active") + "</td><td>" + (r.revoked_at ? "" : '<button class="ghost" data-del="' + esc(r.key_id) + '">Revoke</button>') + "</td></tr>"), "No keys.") +
      '<h2>Create a key</h2><form id="key-form" class="row"><label>Name <input id="key-name" required maxlength="80"></label><label>Role <select id="key-role"><option>viewer</option><option>analyst</option><option>admin</option></select></label><button type="submit">Create</button></form><div id="key-new"></div><p id="key-msg" class="msg" role="alert"></p>';
    form("key-form", async () => { try { const r = await api("/api/v1/keys", "POST", { name: $("key-name").value.trim(), role: $("key-role").value }); await views.keys(pane); $("key-new").innerHTML = "<p>Copy it now; it is shown once:</p><p class=\"key\">" + esc(r.secret) + "</p>"; } catch (e) { say("key-msg", e.message); } });
    bind("[data-del]", "click", async (b) => { try { await api("/api/v1/keys/" + encodeURIComponent(b.dataset.del), "DELETE"); await views.keys(pane); } catch (e) { say("key-msg", e.message); } });
  };

  views.usage = async (pane) => {
    const u = await api("/api/v1/usage?days=7");
    const today = u.usage[0] || { api_calls: 0, alerts: 0 };
    const meter = (used, max, label) => { const pct = Math.min(100, max ? used / max * 100 : 0); return "<p>" + esc(label) + ": " + used.toLocaleString() + " of " + max.toLocaleString() + '</p><div class="meter" role="meter" aria-valuemin="0" aria-valuemax="' + max + '" aria-valuenow="' + used + '" aria-label="' + esc(label) + '"><i style-width="' + pct.toFixed(1) + '"></i></div>'; };
    pane.innerHTML = "<h1>Usage</h1><p>Today (UTC), against your plan's limits.</p>" + meter(today.api_calls, me.limits.api_calls_per_day, "API calls today") + meter(today.alerts, me.limits.alerts_per_day, "Alerts today") +
      "<h2>Last 7 days</h2>" + table(["Day", "API calls", "Alerts", "Held back"], u.usage.map((d) => "<tr><td>" + esc(d.day) + "</td><td>" + d.api_calls + "</td><td>" + d.alerts + "</td><td>" + d.alerts_held + "</td></tr>"), "No usage yet.");
    // Widths through the CSSOM (the page's policy allows no inline style attributes).
    pane.querySelectorAll(".meter i").forEach((i) => { i.style.width = i.getAttribute("style-width") + "%"; });
  };

  views.billing = async (pane) => {
    let b = null, err = "";
    try { b = await api("/api/v1/billing"); } catch (e) { err = e.message; }
    const opts = plans.map((p) => '<option value="' + esc(p.id) + '"' + (p.id === me.plan ? " selected" : "") + ">" + esc(p.name) + " — $" + (p.price_cents / 100).toLocaleString() + "/month</option>").join("");
    const sub = b && b.subscription;
    pane.innerHTML = "<h1>Billing</h1>" + (b && b.banner ? '<div class="banner bad">' + esc(b.banner) + "</div>" : "") +
      (err ? '<p class="error">' + esc(err) + "</p>" : "<dl><dt>Plan</dt><dd id=\"bill-plan\">" + esc(b.plan) + "</dd><dt>Subscription</dt><dd id=\"bill-status\">" + esc(sub ? sub.status : "none") +
        (sub && sub.trial_end ? " · trial until " + esc(fmtTime(sub.trial_end)) : "") + (sub && sub.current_period_end ? " · period ends " + esc(fmtTime(sub.current_period_end)) : "") + "</dd>" +
        (b.billing_state && b.billing_state !== "ok" ? "<dt>Payment</dt><dd class=\"error\">" + esc(b.billing_state) + "</dd>" : "") + "</dl>") +
      '<h2>Change the plan</h2><form id="bill-form" class="row"><label>Plan <select id="bill-choice">' + opts + '</select></label><button type="submit">Change</button><button type="button" class="ghost" id="bill-portal">Payment details and invoices</button></form><p id="bill-msg" class="msg" role="alert"></p>';
    form("bill-form", async () => {
      const plan = $("bill-choice").value;
      try {
        if (sub && ["trialing", "active", "past_due"].includes(sub.status)) { await api("/api/v1/billing/plan", "POST", { plan: plan }); await refreshMe(); await views.billing(pane); say("bill-msg", "Plan changed to " + plan + ".", true); }
        else { const r = await api("/api/v1/billing/checkout", "POST", { plan: plan }); location.href = r.url; }
      } catch (e) { say("bill-msg", e.message); }
    });
    $("bill-portal").addEventListener("click", async () => { try { const r = await api("/api/v1/billing/portal", "POST"); location.href = r.url; } catch (e) { say("bill-msg", e.message); } });
  };

  views.team = async (pane) => {
    const u = await api("/api/v1/users");
    pane.innerHTML = "<h1>Team</h1>" + table(["Email", "Role", "Since", ""], u.items.map((r) => "<tr><td>" + esc(r.email) + "</td><td>" + esc(r.role) + "</td><td>" + esc(fmtTime(r.created_at)) + '</td><td><button class="ghost" data-del="' + esc(r.user_id) + '">Remove</button></td></tr>'), "Only you so far.") +
      '<h2>Add a member</h2><form id="tm-form" class="row"><label>Email <input id="tm-email" type="email" required></label><label>Role <select id="tm-role"><option>viewer</option><option>analyst</option><option>admin</option></select></label><label>First password <input id="tm-pw" type="password" minlength="12" autocomplete="new-password" required></label><button type="submit">Add</button></form><p id="tm-msg" class="msg" role="alert"></p>';
    form("tm-form", async () => { try { await api("/api/v1/users", "POST", { email: $("tm-email").value.trim(), role: $("tm-role").value, password: $("tm-pw").value }); await views.team(pane); } catch (e) { say("tm-msg", e.message); } });
    bind("[data-del]", "click", async (b) => { try { await api("/api/v1/users/" + encodeURIComponent(b.dataset.del), "DELETE"); await views.team(pane); } catch (e) { say("tm-msg", e.message); } });
  };

  views.brand = async (pane) => {
    const r = await api("/api/v1/branding");
    const b = r.brand || { name: me.name, primary_colour: "#1d4ed8", accent_colour: "#0f766e", domain: "" };
    if (!r.may_brand) { pane.innerHTML = '<h1>Brand</h1><p class="empty">Your own name, logo and colours come with Cloud Pro and Enterprise.</p>'; return; }
    pane.innerHTML = "<h1>Brand</h1><p>" + (r.alerts_branded ? "Your console and your alerts carry this brand." : "Your console carries this brand (alerts in your name come with Enterprise's white label).") + "</p>" +
      '<form id="br-form" class="stack"><label>Name <input id="br-name" required maxlength="60" value="' + esc(b.name) + '"></label><label>Main colour <input id="br-primary" value="' + esc(b.primary_colour) + '" pattern="#[0-9a-fA-F]{6}"></label><label>Accent colour <input id="br-accent" value="' + esc(b.accent_colour) + '" pattern="#[0-9a-fA-F]{6}"></label>' +
      '<label>Logo (PNG, JPEG or SVG, at most 48 KB) <input id="br-logo" type="file" accept="image/png,image/jpeg,image/svg+xml"></label>' + (r.may_use_domain ? '<label>Custom domain <input id="br-domain" value="' + esc(b.domain || "") + '" placeholder="status.example.com"></label>' : "") +
      '<div class="row"><button type="submit">Save</button><button type="button" class="ghost" id="br-reset">Back to kamiyo\'s look</button></div><p id="br-msg" class="msg" role="alert"></p></form>';
    form("br-form", async () => {
      let logo = b.logo || null;
      const f = $("br-logo").files[0];
      if (f) logo = await new Promise((ok, no) => { const rd = new FileReader(); rd.onload = () => ok(rd.result); rd.onerror = no; rd.readAsDataURL(f); });
      try { await api("/api/v1/branding", "PUT", { name: $("br-name").value.trim(), primary_colour: $("br-primary").value.trim(), accent_colour: $("br-accent").value.trim(), logo: logo, domain: $("br-domain") ? $("br-domain").value.trim() || null : null }); applyBrand(); say("br-msg", "Saved.", true); } catch (e) { say("br-msg", e.message); }
    });
    $("br-reset").addEventListener("click", async () => { try { await api("/api/v1/branding", "DELETE"); location.reload(); } catch (e) { say("br-msg", e.message); } });
  };

  views.sso = async (pane) => {
    const r = await api("/api/v1/sso");
    if (!r.available) { pane.innerHTML = '<h1>Single sign-on</h1><p class="empty">Single sign-on through your identity provider (OpenID Connect) comes with Enterprise.</p>'; return; }
    const s = r.sso || { issuer: "", client_id: "", role_claim: "groups", role_map: {}, default_role: null, enforced: false };
    pane.innerHTML = "<h1>Single sign-on</h1>" + (r.sso ? "<p>Register <code>" + esc(r.sso.redirect_uri) + "</code> as the redirect URI. Sign-in starts at <a href=\"" + esc(r.sso.start_url) + "\">" + esc(r.sso.start_url) + "</a>.</p>" : "<p>Not set up.</p>") +
      '<form id="sso-form" class="stack"><label>Issuer <input id="sso-issuer" required value="' + esc(s.issuer) + '" placeholder="https://login.example.com"></label><label>Client id <input id="sso-client" required value="' + esc(s.client_id) + '"></label><label>Client secret <input id="sso-secret" type="password" autocomplete="off" required></label>' +
      '<label>Role claim <input id="sso-claim" value="' + esc(s.role_claim) + '"></label><label>Role map (group=role per line) <textarea id="sso-map" rows="3">' + esc(Object.entries(s.role_map || {}).map(([k, v]) => k + "=" + v).join("\n")) + "</textarea></label>" +
      '<label>Role of others <select id="sso-default"><option value="">refuse them</option><option>viewer</option><option>analyst</option><option>admin</option></select></label><label class="row"><input id="sso-enforced" type="checkbox"' + (s.enforced ? " checked" : "") + "> Refuse password sign-in</label>" +
      '<div class="row"><button type="submit">Save</button>' + (r.sso ? '<button type="button" class="ghost" id="sso-remove">Remove</button>' : "") + '</div><p id="sso-msg" class="msg" role="alert"></p></form>';
    $("sso-default").value = s.default_role || "";
    form("sso-form", async () => {
      const map = {};
      $("sso-map").value.split("\n").map((l) => l.trim()).filter(Boolean).forEach((l) => { const [k, v] = l.split("="); map[(k || "").trim()] = (v || "").trim(); });
      try { await api("/api/v1/sso", "PUT", { issuer: $("sso-issuer").value.trim(), client_id: $("sso-client").value.trim(), client_secret: $("sso-secret").value, role_claim: $("sso-claim").value.trim() || "groups", role_map: map, default_role: $("sso-default").value || null, enforced: $("sso-enforced").checked }); await views.sso(pane); say("sso-msg", "Saved.", true); } catch (e) { say("sso-msg", e.message); }
    });
    if ($("sso-remove")) $("sso-remove").addEventListener("click", async () => { try { await api("/api/v1/sso", "DELETE"); await views.sso(pane); } catch (e) { say("sso-msg", e.message); } });
  };

  views.audit = async (pane) => {
    try {
      const a = await api("/api/v1/audit?limit=100");
      pane.innerHTML = "<h1>Audit log</h1>" + table(["Time", "Who", "What", "On", "Details"], a.items.map((r) => "<tr><td>" + esc(fmtTime(r.at)) + "</td><td>" + esc(r.actor) + "</td><td>" + esc(r.action) + '</td><td class="wide">' + esc(r.target) + "</td><td>" + esc(r.summary) + "</td></tr>"), "Nothing recorded yet.");
    } catch (e) {
      pane.innerHTML = '<h1>Audit log</h1><p class="empty">' + esc(e.status === 402 ? "The audit log comes with Enterprise." : e.message) + "</p>";
    }
  };

  $("signout").addEventListener("click", async (e) => {
    e.preventDefault();
    try { await api("/api/v1/logout", "POST"); } catch (_) { /* the session may be gone already */ }
    me = null; if (socket) socket.close(); location.hash = ""; show("signin");
  });

  async function applyBrand() {
    try {
      const r = await api("/api/v1/branding");
      if (!r.brand || !r.may_brand) return;
      document.documentElement.style.setProperty("--primary", r.brand.primary_colour);
      document.documentElement.style.setProperty("--accent", r.brand.accent_colour);
      $("brand-name").textContent = r.brand.name;
    } catch (_) { /* kamiyo's look stays */ }
  }
  async function refreshMe() { me = await api("/api/v1/tenant"); }

  async function boot() {
    if (location.pathname === "/verify-email" || location.pathname === "/reset-password") return mailedLink();
    const sel = $("su-plan");
    if (!sel.options.length) sel.innerHTML = plans.map((p) => '<option value="' + esc(p.id) + '">' + esc(p.name) + " — $" + (p.price_cents / 100).toLocaleString() + "/month</option>").join("");
    try {
      await refreshMe();
    } catch (e) {
      me = null;
      if (e.status === 403 && /suspended/.test(e.message)) {
        show("signin");
        banner("This organisation is suspended: alerts are paused and the console is closed. Contact support or settle the billing to reopen it.", "bad");
        return;
      }
      const h = location.hash;
      if (h.startsWith("#signup")) {
        show("signup");
        const p = h.split("/")[1] || (function () { try { return sessionStorage.getItem("kamiyo.plan"); } catch (_) { return null; } })();
        if (p) sel.value = p;
        $("su-name").focus();
      } else if (h === "#forgot") { show("forgot"); } else { show("signin"); if (main.dataset.brandTenant) $("si-tenant").value = main.dataset.brandTenant; }
      if (e.status && e.status !== 401) banner(e.message, "bad");
      return;
    }
    banner(me.status !== "active" ? "This organisation is " + me.status + "." : "", "warn");
    if (new URLSearchParams(location.search).get("checkout") === "done") banner("Checkout complete: your trial has started.", "warn");
    show("console");
    document.querySelectorAll('.bar nav a[href="/app"]').forEach((a) => { a.textContent = me.name; });
    applyBrand();
    if (location.hash.startsWith("#signup") || location.hash === "#forgot") location.hash = "#incidents";
    await route();
  }
  boot();
})();
