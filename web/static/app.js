// crmpulse browser view: the report's bars and totals on top, the period's
// transactions below, both kept live over the /v1/live websocket. CRM text
// is only ever written with textContent, never as HTML.
"use strict";

const ENTITY_COLORS = { lead: "#f79009", opportunity: "#2e90fa", account: "#12b76a", contact: "#9e77ed" };
const PERIODS = ["today", "yesterday", "this_week", "last_7_days", "last_4_weeks",
  "month_to_date", "quarter_to_date", "year_to_date", "custom"];
const VIEW_KEYS = ["period", "from", "to", "tz", "team", "office", "user", "entity", "source", "tenant"];
const MAX_ROWS = 500;

const params = new URLSearchParams(location.search);
const token = params.get("token");
if (token) {
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.size ? "?" + params : ""));
}
const wall = params.get("wall") === "1";

const state = { report: null, rows: new Map(), seq: null, socket: null, retry: 0,
  txKeys: new Set(), cursor: null, lastEvent: null, chart: null };

function $(id) { return document.getElementById(id); }

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

// view returns the report query of the page, from its address.
function view() {
  const v = {};
  for (const k of VIEW_KEYS) {
    const val = params.get(k);
    if (val) v[k] = val;
  }
  if (!v.period) v.period = "last_4_weeks";
  if (v.period === "custom") {
    // Dates picked in the form are whole days in the view's zone; the
    // server takes instants, so send the dates as UTC midnights unless
    // the address already holds instants.
    for (const k of ["from", "to"]) {
      if (v[k] && v[k].length === 10) v[k] += "T00:00:00Z";
    }
  }
  return v;
}

function setupControls() {
  const period = $("period");
  for (const p of PERIODS) {
    const o = document.createElement("option");
    o.value = p;
    o.textContent = p.replaceAll("_", " ");
    period.append(o);
  }
  const v = view();
  period.value = v.period;
  $("tz").value = v.tz || "";
  $("from").value = (params.get("from") || "").slice(0, 10);
  $("to").value = (params.get("to") || "").slice(0, 10);
  $("measure").value = params.get("measure") || "records";
  showCustom();
  if (Intl.supportedValuesOf) {
    const list = $("zones");
    for (const z of Intl.supportedValuesOf("timeZone")) {
      const o = document.createElement("option");
      o.value = z;
      list.append(o);
    }
  }
  $("controls").addEventListener("change", () => {
    for (const k of ["period", "from", "to", "tz", "team", "measure"]) {
      const val = $(k).value;
      if (val) params.set(k, val); else params.delete(k);
    }
    if (params.get("period") !== "custom") { params.delete("from"); params.delete("to"); }
    history.replaceState(null, "", location.pathname + "?" + params);
    showCustom();
    if (params.get("period") === "custom" && !(params.get("from") && params.get("to"))) return;
    subscribe(false);
    loadTransactions(true);
  });
  $("more").addEventListener("click", () => loadTransactions(false));
}

function showCustom() {
  const custom = $("period").value === "custom";
  for (const el of document.querySelectorAll(".custom")) el.hidden = !custom;
}

async function loadTeams() {
  const res = await fetch("/v1/users", { headers: authHeaders() });
  if (!res.ok) return;
  const teams = new Set((await res.json()).items.map(p => p.team).filter(Boolean));
  const sel = $("team");
  for (const t of [...teams].sort()) {
    const o = document.createElement("option");
    o.value = t;
    o.textContent = t;
    sel.append(o);
  }
  sel.value = params.get("team") || "";
}

// Transactions ---------------------------------------------------------

function txKey(t) { return t.tenant + "\u0000" + t.source + "\u0000" + t.id; }

function txRow(t, fresh) {
  const tr = document.createElement("tr");
  if (fresh) tr.className = "fresh";
  const when = new Date(t.at);
  const cells = [
    when.toLocaleString(undefined, { timeZone: view().tz || undefined }),
    personName(t),
    t.entity,
    t.record_name || t.record,
    t.action,
    t.source,
  ];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  tr.title = t.fields && t.fields.length ? "fields: " + t.fields.join(", ") : "";
  return tr;
}

function personName(t) {
  const row = t.person ? state.rows.get(t.person) : null;
  if (row && row.name) return row.name;
  return t.person || t.user_name || t.user || "unattributed";
}

async function loadTransactions(reset) {
  const body = $("transactions").tBodies[0];
  const q = new URLSearchParams(view());
  q.set("limit", "100");
  if (!reset && state.cursor) q.set("cursor", state.cursor);
  const res = await fetch("/v1/transactions?" + q, { headers: authHeaders() });
  if (!res.ok) return;
  const page = await res.json();
  if (reset) {
    body.replaceChildren();
    state.txKeys.clear();
  }
  for (const t of page.items) {
    if (state.txKeys.has(txKey(t))) continue;
    state.txKeys.add(txKey(t));
    body.append(txRow(t, false));
  }
  state.cursor = page.next_cursor;
  $("more").hidden = wall || !state.cursor;
}

function prependTransactions(items) {
  const body = $("transactions").tBodies[0];
  for (const t of [...items].reverse()) {
    if (state.txKeys.has(txKey(t))) continue;
    state.txKeys.add(txKey(t));
    body.prepend(txRow(t, true));
    const at = new Date(t.at);
    if (!state.lastEvent || at > state.lastEvent) state.lastEvent = at;
  }
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

// Report ---------------------------------------------------------------

function figure(row, entity, measure) {
  const c = row.counts && row.counts[entity];
  return c ? c[measure] : 0;
}

function render() {
  const rep = state.report;
  if (!rep) return;
  const measure = $("measure").value || "records";
  const rows = [...state.rows.values()];
  rows.sort((a, b) => b.total[measure] - a.total[measure] || label(a).localeCompare(label(b)));

  const summary = $("summary");
  summary.replaceChildren();
  for (const e of rep.entities) {
    const t = rep.totals[e] || { records: 0, changes: 0 };
    const div = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = String(t[measure]);
    div.append(b, document.createTextNode(e + " " + measure));
    summary.append(div);
  }
  const people = document.createElement("div");
  const idle = rows.filter(r => r.total.changes === 0).length;
  const b = document.createElement("b");
  b.textContent = rows.length + " people";
  people.append(b, document.createTextNode(idle + " with no activity"));
  summary.append(people);

  renderPeople(rows, measure);

  const data = {
    labels: rows.map(label),
    datasets: rep.entities.map(e => ({
      label: e, data: rows.map(r => figure(r, e, measure)),
      backgroundColor: ENTITY_COLORS[e] || "#98a2b3", stack: "s",
    })),
  };
  if (!window.Chart) return;
  if (!state.chart) {
    const fg = getComputedStyle(document.body).color;
    state.chart = new Chart($("bars"), {
      type: "bar", data,
      options: {
        animation: { duration: wall ? 600 : 250 }, maintainAspectRatio: false,
        scales: { x: { stacked: true, ticks: { color: fg, autoSkip: false, maxRotation: 60 } },
                  y: { stacked: true, beginAtZero: true, ticks: { color: fg, precision: 0 } } },
        plugins: { legend: { labels: { color: fg } } },
      },
    });
  } else {
    state.chart.data = data;
    state.chart.update();
  }
}

function label(row) { return row.name || row.id; }

// renderPeople lists every row, people with no activity included: they
// are the point of the report.
function renderPeople(rows, measure) {
  const body = $("people").tBodies[0];
  body.replaceChildren();
  rows.forEach((r, i) => {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    if (r.total.changes === 0) tr.className = "idle";
    const last = r.last_activity ? new Date(r.last_activity).toLocaleString() : "never";
    const cells = [String(i + 1), label(r), r.team || r.status, String(r.total.records),
      String(r.total.changes), last];
    cells.forEach((text, j) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (j === 3 || j === 4) td.className = "num";
      tr.append(td);
    });
    body.append(tr);
  });
}

function applySnapshot(rep) {
  state.report = rep;
  state.rows = new Map(rep.users.map(r => [r.id, r]));
  render();
}

function applyDelta(msg) {
  for (const r of msg.users) state.rows.set(r.id, r);
  state.report.totals = msg.totals;
  for (const e of Object.keys(msg.totals)) {
    if (!state.report.entities.includes(e)) state.report.entities.push(e);
  }
  render();
  prependTransactions(msg.transactions);
}

// Live -----------------------------------------------------------------

function setStatus(text, cls) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + cls;
}

function subscribe(resume) {
  const s = state.socket;
  if (!s || s.readyState !== WebSocket.OPEN) return;
  const msg = { type: "subscribe", view: view() };
  if (resume && state.seq !== null) msg.since = state.seq;
  else state.seq = null;
  s.send(JSON.stringify(msg));
}

function connect() {
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  const s = new WebSocket(url);
  state.socket = s;
  s.onopen = () => {
    state.retry = 0;
    setStatus("live", "live");
    subscribe(true);
  };
  s.onmessage = ev => {
    const msg = JSON.parse(ev.data);
    switch (msg.type) {
      case "snapshot":
        state.seq = msg.seq;
        applySnapshot(msg.report);
        break;
      case "resumed":
        state.seq = msg.seq;
        break;
      case "delta":
        if (state.seq !== null && msg.seq !== state.seq + 1) { subscribe(false); return; }
        state.seq = msg.seq;
        applyDelta(msg);
        break;
      case "resync":
        subscribe(false);
        loadTransactions(true);
        break;
      case "error":
        setStatus(msg.detail, "down");
        break;
    }
  };
  s.onclose = () => {
    setStatus("reconnecting…", "down");
    const wait = Math.min(10000, 500 * 2 ** state.retry++);
    setTimeout(connect, wait);
  };
}

function tickFreshness() {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return;
  let text = "live";
  if (state.lastEvent) {
    const secs = Math.max(0, Math.round((Date.now() - state.lastEvent) / 1000));
    text += " · last event " + (secs < 60 ? secs + " s" : Math.round(secs / 60) + " min") + " ago";
  }
  setStatus(text, "live");
}

document.addEventListener("DOMContentLoaded", () => {
  if (wall) document.body.classList.add("wall");
  setupControls();
  loadTeams();
  loadTransactions(true);
  connect();
  setInterval(tickFreshness, 1000);
});
