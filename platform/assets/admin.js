// The staff console: tenants (plan, suspend, reinstate), plans, the audit log of every tenant
// and system health, over /api/v1/admin with a staff token (kept for this tab only).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmtTime = (t) => { const d = new Date(t); return isNaN(d) ? "" : d.toISOString().replace("T", " ").slice(0, 19) + "Z"; };
  let token = "";
  try { token = sessionStorage.getItem("kamiyo.staff") || ""; } catch (_) { token = ""; }

  async function api(path, method, body) {
    const init = { method: method || "GET", headers: { authorization: "Bearer " + token } };
    if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch("/api/v1/admin" + path, init);
    const j = await r.json().catch(() => null);
    if (!r.ok) { const e = new Error((j && (j.detail || j.title)) || "HTTP " + r.status); e.status = r.status; throw e; }
    return j;
  }
  function say(text, ok) { const m = $("admin-msg"); m.textContent = text; m.className = "msg " + (ok ? "ok" : "error"); }
  function table(headers, rows, empty) {
    if (!rows.length) return '<p class="empty">' + esc(empty) + "</p>";
    return '<div class="scroll"><table><thead><tr>' + headers.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody></table></div>";
  }
  const PLANS = ["open_source", "cloud_basic", "cloud_pro", "cloud_enterprise"];

  const views = {
    async tenants(pane) {
      const t = await api("/tenants");
      pane.innerHTML = "<h2>Tenants</h2>" + table(["Tenant", "Name", "Plan", "Status", "Since", ""], t.items.map((r) =>
        '<tr data-tenant="' + esc(r.tenant_id) + '"><td>' + esc(r.tenant_id) + "</td><td>" + esc(r.name) + '</td><td><label class="row"><span class="skip">Plan of ' + esc(r.tenant_id) + '</span><select data-plan="' + esc(r.tenant_id) + '">' +
        PLANS.map((p) => "<option" + (p === r.plan ? " selected" : "") + ">" + p + "</option>").join("") + '</select></label></td><td class="status">' + esc(r.status) + "</td><td>" + esc(fmtTime(r.created_at)) + "</td><td>" +
        (r.status === "suspended" ? '<button data-act="reinstate" data-id="' + esc(r.tenant_id) + '">Reinstate</button>' : '<button class="danger" data-act="suspend" data-id="' + esc(r.tenant_id) + '">Suspend</button>') + "</td></tr>"), "No tenants yet.");
      pane.querySelectorAll("[data-plan]").forEach((s) => s.addEventListener("change", async () => {
        try { await api("/tenants/" + encodeURIComponent(s.dataset.plan) + "/plan", "PUT", { plan: s.value }); say(s.dataset.plan + " is now on " + s.value + ".", true); } catch (e) { say(e.message); }
      }));
      pane.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", async () => {
        try { await api("/tenants/" + encodeURIComponent(b.dataset.id) + "/" + b.dataset.act, "POST"); await views.tenants(pane); say(b.dataset.id + ": " + (b.dataset.act === "suspend" ? "suspended" : "reinstated") + ".", true); } catch (e) { say(e.message); }
      }));
    },
    async plans(pane) {
      const [p, t] = await Promise.all([fetch("/api/v1/plans").then((r) => r.json()), api("/tenants")]);
      const count = (id, status) => t.items.filter((x) => x.plan === id && (!status || x.status === status)).length;
      pane.innerHTML = "<h2>Plans</h2><p>The tier matrix the platform enforces (its public rendering is the <a href=\"/#plans\">landing page</a>); trials last " + esc(p.trial_days) + " days. Move a tenant between plans from the Tenants page.</p>" +
        table(["Plan", "Price / month", "Protocols", "API calls / day", "Alerts / day", "History", "Tenants", "Suspended"], p.items.map((x) =>
          "<tr><td>" + esc(x.name) + "</td><td>$" + (x.price_cents_per_month / 100).toLocaleString() + "</td><td>" + x.limits.protocols + "</td><td>" + x.limits.api_calls_per_day.toLocaleString() + "</td><td>" + x.limits.alerts_per_day.toLocaleString() +
          "</td><td>" + x.limits.history_days + " days</td><td>" + count(x.id) + "</td><td>" + count(x.id, "suspended") + "</td></tr>"), "No plans.");
    },
    async audit(pane) {
      const a = await api("/audit?limit=200");
      pane.innerHTML = "<h2>Audit log</h2>" + table(["Time", "Tenant", "Who", "What", "On", "Details"], a.items.map((r) => "<tr><td>" + esc(fmtTime(r.at)) + "</td><td>" + esc(r.tenant_id) + "</td><td>" + esc(r.actor) + "</td><td>" + esc(r.action) + "</td><td>" + esc(r.target) + "</td><td>" + esc(r.summary) + "</td></tr>"), "Nothing recorded.");
    },
    async health(pane) {
      const h = await api("/health");
      const c = h.counts, k = h.checks;
      const row = (name, value, bad) => "<tr><th>" + esc(name) + '</th><td class="' + (bad ? "error" : "") + '">' + esc(value) + "</td></tr>";
      pane.innerHTML = '<h2>System health</h2><table id="health">' +
        row("Database", k.database, false) + row("Active tenants", c.tenants_active, false) + row("Suspended tenants", c.tenants_suspended, false) +
        row("Alerts waiting", c.outbox_pending, c.outbox_pending > 1000) + row("Alerts given up", c.outbox_failed, c.outbox_failed > 0) +
        row("Oldest waiting alert", k.oldest_pending_alert_secs == null ? "none" : k.oldest_pending_alert_secs + " s", k.oldest_pending_alert_secs > 60) +
        row("Router behind the stream", k.router_lag_steps == null ? "n/a" : k.router_lag_steps + " steps", k.router_lag_steps > 1000) +
        row("Correlator behind the stream", k.correlator_lag_steps == null ? "n/a" : k.correlator_lag_steps + " steps", k.correlator_lag_steps > 1000) +
        row("Billing", k.billing, false) + row("Mail", k.mail, false) + "</table><p class=\"fine\">At " + esc(fmtTime(h.at)) + ".</p>";
    },
  };

  async function route() {
    const name = location.hash.replace(/^#/, "") || "tenants";
    const pane = $("admin-pane");
    document.querySelectorAll("#staff nav a").forEach((a) => a.setAttribute("aria-current", a.getAttribute("href") === "#" + name ? "page" : "false"));
    try { await (views[name] || views.tenants)(pane); } catch (e) {
      if (e.status === 401) { token = ""; return start(); }
      pane.innerHTML = '<p class="error" role="alert">' + esc(e.message) + "</p>";
    }
  }
  function start() {
    $("staff-login").hidden = !!token;
    $("staff").hidden = !token;
    if (token) route(); else $("staff-token").focus();
  }
  $("staff-login").addEventListener("submit", async (e) => {
    e.preventDefault();
    token = $("staff-token").value.trim();
    try { await api("/tenants"); try { sessionStorage.setItem("kamiyo.staff", token); } catch (_) { /* private mode */ } $("staff-token").value = ""; start(); }
    catch (err) { token = ""; $("staff-msg").textContent = err.status === 401 ? "That token is not a staff token." : err.message; $("staff-msg").className = "msg error"; }
  });
  $("staff-out").addEventListener("click", (e) => { e.preventDefault(); token = ""; try { sessionStorage.removeItem("kamiyo.staff"); } catch (_) { /* none */ } start(); });
  window.addEventListener("hashchange", () => { if (token) route(); });
  start();
})();
