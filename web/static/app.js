// crmpulse browser view: per-person bars, the daily trend, totals and a
// leaderboard on top, the period's transactions below, all kept live over
// the /v1/live websocket. The address holds the whole view, so a page can
// be bookmarked or put on a wall (?wall=1). CRM text is only ever written
// with textContent, never as HTML; chart labels are canvas text.
"use strict";

const ENTITY_COLORS = { lead: "#f79009", opportunity: "#2e90fa", account: "#12b76a", contact: "#9e77ed" };
const PERIODS = ["today", "yesterday", "this_week", "last_7_days", "last_4_weeks",
  "month_to_date", "quarter_to_date", "year_to_date", "custom"];
// VIEW_KEYS filter the report, the live view and the table alike; person
// and action filter the table only.
const VIEW_KEYS = ["period", "from", "to", "tz", "team", "office", "entity", "source", "tenant"];
const SOURCES = ["api", "hubspot", "salesforce", "dynamics", "businesscentral", "pipedrive", "zoho",
  "generic", "import"];
const MAX_ROWS = 500;
const TOKEN_KEY = "crmpulse.token";

const params = new URLSearchParams(location.search);
// A token in the address is kept for this tab only (a wall reloads itself
// and must keep it) and taken out of the address bar.
const token = params.get("token") || sessionStorage.getItem(TOKEN_KEY);
if (params.get("token")) {
  sessionStorage.setItem(TOKEN_KEY, params.get("token"));
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.size ? "?" + params : ""));
}
const wall = params.get("wall") === "1";

const state = {
  report: null, rows: new Map(), prev: null, targets: [], seq: null, socket: null, retry: 0,
  txs: [], txKeys: new Set(), fresh: new Set(), cursor: null, sort: null,
  lastEvent: null, bars: null, trend: null, version: null, revoked: false,
  alerts: new Map(), snapshots: 0, resumes: 0, deltas: 0, seriesTimer: null, txLoad: 0,
};

function $(id) { return document.getElementById(id); }

// el makes an element whose text is set as text, never parsed as HTML.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function measure() { return params.get("measure") || "records"; }

// view returns the report query of the page, from its address.
function view() {
  const v = {};
  for (const k of VIEW_KEYS) {
    const val = params.get(k);
    if (val) v[k] = val;
  }
  if (!v.period) v.period = "last_4_weeks";
  if (v.period === "custom") {
    // Dates picked in the form are whole days; the server takes instants,
    // so send the dates as UTC midnights unless the address holds instants.
    for (const k of ["from", "to"]) {
      if (v[k] && v[k].length === 10) v[k] += "T00:00:00Z";
    }
  }
  return v;
}

// txQuery is the transactions query: the view plus the table's filters.
function txQuery() {
  const q = new URLSearchParams(view());
  if (params.get("person")) q.set("user", params.get("person"));
  if (params.get("action")) q.set("action", params.get("action"));
  return q;
}

function saveAddress() {
  history.replaceState(null, "", location.pathname + (params.size ? "?" + params : ""));
}

function setParam(k, val) {
  if (val) params.set(k, val); else params.delete(k);
}

function addOption(sel, value, text) {
  const o = el("option", text === undefined ? value : text);
  o.value = value;
  sel.append(o);
}

// Controls -------------------------------------------------------------

function setupControls() {
  const period = $("period");
  for (const p of PERIODS) addOption(period, p, p.replaceAll("_", " "));
  period.value = view().period;
  $("tz").value = params.get("tz") || "";
  $("from").value = (params.get("from") || "").slice(0, 10);
  $("to").value = (params.get("to") || "").slice(0, 10);
  $("measure").value = measure();
  showCustom();
  if (Intl.supportedValuesOf) {
    for (const z of Intl.supportedValuesOf("timeZone")) addOption($("zones"), z);
  }
  $("controls").addEventListener("change", ev => {
    for (const k of ["period", "from", "to", "tz", "team", "measure"]) setParam(k, $(k).value);
    if (params.get("period") !== "custom") { params.delete("from"); params.delete("to"); }
    saveAddress();
    showCustom();
    if (ev.target.id === "measure") { render(); return; }
    if (params.get("period") === "custom" && !(params.get("from") && params.get("to"))) return;
    viewChanged();
  });
  for (const s of SOURCES) addOption($("source"), s);
  $("tx-filters").addEventListener("change", ev => {
    setParam(ev.target.id, ev.target.value);
    saveAddress();
    if (ev.target.id === "entity" || ev.target.id === "source") viewChanged();
    else loadTransactions(true);
  });
  $("clear-filters").addEventListener("click", () => {
    for (const k of ["person", "entity", "action", "source"]) params.delete(k);
    saveAddress();
    viewChanged();
  });
  for (const th of $("transactions").tHead.rows[0].cells) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      const cur = state.sort || { key: "at", dir: -1 };
      state.sort = { key, dir: cur.key === key ? -cur.dir : 1 };
      params.set("sort", (state.sort.dir < 0 ? "-" : "") + key);
      saveAddress();
      renderTransactions();
    });
  }
  const sort = params.get("sort");
  if (sort) state.sort = { key: sort.replace(/^-/, ""), dir: sort.startsWith("-") ? -1 : 1 };
  $("more").addEventListener("click", () => loadTransactions(false));
  syncFilters();
}

// syncFilters shows the address's table filters in the form.
function syncFilters() {
  for (const k of ["person", "entity", "action", "source"]) {
    const sel = $(k), val = params.get(k) || "";
    if (val && ![...sel.options].some(o => o.value === val)) addOption(sel, val);
    sel.value = val;
  }
  const note = [];
  for (const k of ["person", "entity", "action", "source"]) {
    if (params.get(k)) note.push(k + ": " + (k === "person" ? rowLabel(params.get(k)) : params.get(k)));
  }
  $("filter-note").textContent = note.length ? "· " + note.join(", ") : "";
  const q = txQuery();
  if (token) q.set("token", token);
  q.set("format", "csv");
  $("export-csv").href = "/v1/transactions?" + q;
  q.set("format", "xlsx");
  $("export-xlsx").href = "/v1/transactions?" + q;
}

// filterPerson narrows the table to one person (a click on a bar or a
// leaderboard row); a second click on the same person clears it.
function filterPerson(id) {
  setParam("person", params.get("person") === id ? "" : id);
  saveAddress();
  syncFilters();
  loadTransactions(true);
}

function viewChanged() {
  syncFilters();
  subscribe(false);
  loadTransactions(true);
}

function showCustom() {
  const custom = $("period").value === "custom";
  for (const e of document.querySelectorAll(".custom")) e.hidden = !custom;
}

// signInIfNeeded sends the browser to the sign-in page, which brings it
// back to this view, when the server answered 401 to a page without a
// token: sign-in is required and the session is missing or expired. A
// token's page (a wall) is judged by checkDisplay instead.
function signInIfNeeded(status) {
  if (status !== 401 || token) return false;
  location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
  return true;
}

async function getJSON(path) {
  const res = await fetch(path, { headers: authHeaders() });
  if (!res.ok) {
    if (signInIfNeeded(res.status)) return null;
    if (token && (res.status === 401 || res.status === 403)) checkDisplay();
    return null;
  }
  return res.json();
}

async function loadTeams() {
  const body = await getJSON("/v1/users?limit=1000");
  if (!body) return;
  const teams = new Set(body.items.map(p => p.team).filter(Boolean));
  for (const t of [...teams].sort()) addOption($("team"), t);
  $("team").value = params.get("team") || "";
}

async function loadTargets() {
  const body = await getJSON("/v1/targets");
  if (!body) return;
  state.targets = body.items;
  render();
}

// Alerts ---------------------------------------------------------------

function alertKey(a) {
  return a.rule + "\u0000" + (a.person ? a.person.id : "source:" + a.source);
}

// applyAlert records an alert state from /v1/alerts or the websocket; the
// list shows those that are pending or firing.
function applyAlert(a) {
  if (a.state === "firing" || a.state === "pending") state.alerts.set(alertKey(a), a);
  else state.alerts.delete(alertKey(a));
  renderAlerts();
}

function renderAlerts() {
  const list = $("alerts").querySelector("ul");
  list.replaceChildren();
  for (const a of state.alerts.values()) {
    const who = a.person ? (a.person.name || a.person.id) : "source " + a.source;
    const last = a.last_activity ? "last activity " + new Date(a.last_activity).toLocaleString() : "never active";
    const li = el("li", who + ": " + a.state + " since " + new Date(a.since).toLocaleString() +
      " (" + a.rule + ", " + last + ")", a.state);
    list.append(li);
  }
  $("alerts").hidden = state.alerts.size === 0;
}

async function loadAlerts() {
  const body = await getJSON("/v1/alerts");
  if (!body) return;
  for (const a of body.states) applyAlert(a);
}

// Transactions ---------------------------------------------------------

function txKey(t) { return t.tenant + "\u0000" + t.source + "\u0000" + t.id; }

function personName(t) {
  const row = t.person ? state.rows.get(t.person) : null;
  if (row && row.name) return row.name;
  return t.person || t.user_name || t.user || "unattributed";
}

function rowLabel(id) {
  const row = state.rows.get(id);
  return row ? label(row) : id;
}

function txCells(t) {
  return {
    at: t.at, who: personName(t), entity: t.entity, record: t.record_name || t.record,
    action: t.action, source: t.source,
  };
}

function txRow(t) {
  const tr = el("tr", null, state.fresh.has(txKey(t)) ? "fresh" : "");
  const c = txCells(t);
  const when = new Date(t.at).toLocaleString(undefined, { timeZone: view().tz || undefined });
  for (const text of [when, c.who, c.entity, c.record, c.action, c.source]) tr.append(el("td", text));
  tr.title = t.fields && t.fields.length ? "fields: " + t.fields.join(", ") : "";
  return tr;
}

function renderTransactions() {
  let rows = state.txs;
  if (state.sort) {
    const { key, dir } = state.sort;
    rows = [...rows].sort((a, b) => dir * String(txCells(a)[key]).localeCompare(String(txCells(b)[key])));
  }
  $("transactions").tBodies[0].replaceChildren(...rows.map(txRow));
  for (const th of $("transactions").tHead.rows[0].cells) {
    th.className = state.sort && state.sort.key === th.dataset.sort ? (state.sort.dir < 0 ? "desc" : "asc") : "";
  }
}

async function loadTransactions(reset) {
  const q = txQuery();
  q.set("limit", wall ? "20" : "100");
  if (!reset && state.cursor) q.set("cursor", state.cursor);
  const load = ++state.txLoad;
  const page = await getJSON("/v1/transactions?" + q);
  if (!page || load !== state.txLoad) return;
  if (reset) {
    state.txs = [];
    state.txKeys.clear();
    state.fresh.clear();
  }
  for (const t of page.items) {
    if (state.txKeys.has(txKey(t))) continue;
    state.txKeys.add(txKey(t));
    state.txs.push(t);
    if (!SOURCES.includes(t.source) && ![...$("source").options].some(o => o.value === t.source)) {
      addOption($("source"), t.source);
    }
  }
  state.cursor = page.next_cursor;
  $("more").hidden = wall || !state.cursor;
  renderTransactions();
}

// prependTransactions adds a delta's transactions that pass the table's
// own filters (the view's are applied by the server).
function prependTransactions(items) {
  const person = params.get("person"), action = params.get("action");
  const fresh = [];
  for (const t of items) {
    if ((person && t.person !== person) || (action && t.action !== action)) continue;
    if (state.txKeys.has(txKey(t))) continue;
    state.txKeys.add(txKey(t));
    state.fresh.add(txKey(t));
    fresh.push(t);
  }
  state.txs = fresh.concat(state.txs).slice(0, MAX_ROWS);
  renderTransactions();
}

// Report ---------------------------------------------------------------

function figure(row, entity, m) {
  const c = row.counts && row.counts[entity];
  return c ? c[m] : 0;
}

function label(row) { return row.name || row.id; }

function sortedRows() {
  const m = measure();
  return [...state.rows.values()]
    .sort((a, b) => b.total[m] - a.total[m] || label(a).localeCompare(label(b)));
}

// targetOf returns the goal of a person (or, with team set, of a team) for
// the view's period and measure, or null.
function targetOf(id, team) {
  const period = view().period, m = measure();
  const t = state.targets.find(t => !t.entity && t.period === period && t.measure === m &&
    (team ? t.team === id : t.person === id));
  return t ? t.target : null;
}

function render() {
  if (!state.report) return;
  const rows = sortedRows();
  renderTitle();
  renderSummary(rows);
  renderPeople(rows);
  renderLeaderboard(rows);
  renderBars(rows);
  renderTrend();
}

function renderTitle() {
  const v = view(), parts = [v.period.replaceAll("_", " ")];
  if (v.team) parts.push(v.team);
  if (v.entity) parts.push(v.entity);
  if (v.source) parts.push(v.source);
  parts.push(measure());
  $("view-title").textContent = parts.join(" · ");
  $("bars-note").textContent = measure() + (state.targets.length ? " · — target" : "");
}

function renderSummary(rows) {
  const rep = state.report, m = measure();
  const cards = [];
  for (const e of rep.entities) {
    const t = rep.totals[e] || { records: 0, changes: 0 };
    const card = el("div", null, "card");
    card.style.borderTopColor = ENTITY_COLORS[e] || "#98a2b3";
    card.append(el("b", t[m]), el("span", e + " " + m));
    cards.push(card);
  }
  const idle = rows.filter(r => r.total.changes === 0).length;
  const people = el("div", null, "card");
  people.append(el("b", rows.length + " people"), el("span", idle + " with no activity"));
  cards.push(people);
  const teams = new Map();
  for (const r of rows) if (r.team) teams.set(r.team, (teams.get(r.team) || 0) + r.total[m]);
  for (const [team, sum] of teams) {
    const goal = targetOf(team, true);
    if (goal === null) continue;
    const card = el("div", null, "card" + (sum >= goal ? " met" : ""));
    card.append(el("b", sum + " / " + goal), el("span", team + " team target"));
    cards.push(card);
  }
  if (rep.partial) cards.push(el("div", "partial: some partitions did not answer", "card warn"));
  $("summary").replaceChildren(...cards);
}

// renderPeople lists every row, people with no activity included: they
// are the point of the report.
function renderPeople(rows) {
  const body = $("people").tBodies[0];
  body.replaceChildren();
  rows.forEach((r, i) => {
    const tr = el("tr", null, r.total.changes === 0 ? "idle" : "");
    tr.dataset.id = r.id;
    const last = r.last_activity ? new Date(r.last_activity).toLocaleString() : "never";
    const goal = targetOf(r.id);
    const cells = [i + 1, label(r), r.team || r.status, r.total.records, r.total.changes,
      goal === null ? "" : goal, last];
    cells.forEach((text, j) => tr.append(el("td", text, j >= 3 && j <= 5 ? "num" : "")));
    tr.addEventListener("click", () => filterPerson(r.id));
    body.append(tr);
  });
  const sel = $("person"), keep = params.get("person") || "";
  sel.replaceChildren();
  addOption(sel, "", "Everyone");
  for (const r of [...rows].sort((a, b) => label(a).localeCompare(label(b)))) addOption(sel, r.id, label(r));
  if (keep && !state.rows.has(keep)) addOption(sel, keep);
  sel.value = keep;
}

// renderLeaderboard ranks people by the figure shown, with the change
// against the previous period of the same length.
function renderLeaderboard(rows) {
  const m = measure(), body = $("leaderboard").tBodies[0];
  const prevRank = new Map();
  if (state.prev) {
    [...state.prev.values()].sort((a, b) => b.total[m] - a.total[m])
      .forEach((r, i) => prevRank.set(r.id, i + 1));
  }
  const top = rows.slice(0, wall ? 10 : 15);
  body.replaceChildren(...top.map((r, i) => {
    const tr = el("tr", null, params.get("person") === r.id ? "selected" : "");
    tr.dataset.id = r.id;
    const now = r.total[m], goal = targetOf(r.id);
    let move = "", delta = "";
    if (state.prev) {
      const p = state.prev.get(r.id), before = p ? p.total[m] : 0, was = prevRank.get(r.id);
      move = !was || !p || p.total[m] === 0 ? "new" : was > i + 1 ? "▲" + (was - i - 1) : was < i + 1 ? "▼" + (i + 1 - was) : "=";
      delta = (now - before > 0 ? "+" : now - before < 0 ? "−" : "±") + Math.abs(now - before);
    }
    const goalText = goal === null ? "" : Math.round(100 * now / Math.max(goal, 1)) + "% of " + goal;
    tr.append(el("td", i + 1), el("td", move, "move"), el("td", label(r)), el("td", now, "num"),
      el("td", goalText, "num" + (goal !== null && now >= goal ? " met" : "")),
      el("td", delta, "num " + (delta.startsWith("+") ? "up" : delta.startsWith("−") ? "down" : "")));
    tr.addEventListener("click", () => filterPerson(r.id));
    return tr;
  }));
}

function chartColors() {
  const cs = getComputedStyle(document.body);
  return { fg: cs.color, grid: cs.getPropertyValue("--line").trim() || "#e4e7ec" };
}

function renderBars(rows) {
  if (!window.Chart) return;
  const m = measure(), rep = state.report;
  const { fg, grid } = chartColors();
  const datasets = rep.entities.map(e => ({
    label: e, data: rows.map(r => figure(r, e, m)),
    backgroundColor: ENTITY_COLORS[e] || "#98a2b3", stack: "s",
  }));
  const goals = rows.map(r => targetOf(r.id));
  if (goals.some(g => g !== null)) {
    datasets.push({ type: "line", label: "target", data: goals, stack: "target", showLine: false,
      pointStyle: "line", pointRadius: wall ? 18 : 12, pointHoverRadius: 14, borderWidth: 3,
      borderColor: fg, backgroundColor: fg });
  }
  const data = { labels: rows.map(label), datasets };
  if (state.bars) {
    state.bars.$rows = rows;
    state.bars.data = data;
    state.bars.update();
    return;
  }
  state.bars = new Chart($("bars"), {
    type: "bar", data,
    options: {
      animation: { duration: wall ? 600 : 250 }, maintainAspectRatio: false,
      scales: { x: { stacked: true, ticks: { color: fg, autoSkip: false, maxRotation: 60 }, grid: { color: grid } },
                y: { stacked: true, beginAtZero: true, ticks: { color: fg, precision: 0 }, grid: { color: grid } } },
      plugins: { legend: { labels: { color: fg } } },
      onClick: (evt, elements, chart) => {
        if (wall || !elements.length) return;
        const row = chart.$rows[elements[0].index];
        if (row) filterPerson(row.id);
      },
      onHover: (evt, elements) => { evt.native.target.style.cursor = elements.length && !wall ? "pointer" : ""; },
    },
  });
  state.bars.$rows = rows;
}

function renderTrend() {
  if (!window.Chart) return;
  const rep = state.report, m = measure();
  const points = (rep.series && rep.series.points) || [];
  const sum = p => Object.values(p[m] || {}).reduce((a, b) => a + b, 0);
  const { fg, grid } = chartColors();
  const hourly = rep.series && rep.series.interval === "hour";
  $("trend-title").textContent = hourly ? "Hourly trend" : "Daily trend";
  const tz = rep.period.tz;
  const tick = t => hourly
    ? new Date(t).toLocaleTimeString(undefined, { timeZone: tz, hour: "2-digit", minute: "2-digit" })
    : t;
  const data = {
    labels: points.map(p => tick(p.t)),
    datasets: [{ label: m + (hourly ? " per hour" : " per day"), data: points.map(sum), borderColor: "#2e90fa",
      backgroundColor: "rgba(46,144,250,.15)", fill: true, tension: 0.25, pointRadius: 2 }],
  };
  if (state.trend) {
    state.trend.data = data;
    state.trend.update();
    return;
  }
  state.trend = new Chart($("trend"), {
    type: "line", data,
    options: {
      animation: false, maintainAspectRatio: false,
      scales: { x: { ticks: { color: fg, maxTicksLimit: 8 }, grid: { color: grid } },
                y: { beginAtZero: true, ticks: { color: fg, precision: 0 }, grid: { color: grid } } },
      plugins: { legend: { display: false } },
    },
  });
}

// loadPrevious fetches the report of the window of the same length just
// before the view's, for the leaderboard's comparison.
async function loadPrevious() {
  const p = state.report && state.report.period;
  if (!p) return;
  const from = new Date(p.from), to = new Date(p.to);
  const q = new URLSearchParams(view());
  q.set("period", "custom");
  q.set("from", new Date(from - (to - from)).toISOString());
  q.set("to", from.toISOString());
  const rep = await getJSON("/v1/report?" + q);
  if (!rep) return;
  state.prev = new Map(rep.users.map(r => [r.id, r]));
  $("prev-note").textContent = "vs " + new Date(q.get("from")).toLocaleDateString() + " – " +
    new Date(from - 1).toLocaleDateString();
  render();
}

// refreshSeries reloads the trend after deltas: a delta carries rows and
// totals, not the series.
function refreshSeries() {
  clearTimeout(state.seriesTimer);
  state.seriesTimer = setTimeout(async () => {
    const rep = await getJSON("/v1/report?" + new URLSearchParams(view()));
    if (rep && state.report) {
      state.report.series = rep.series;
      renderTrend();
    }
  }, 3000);
}

function applySnapshot(rep) {
  state.snapshots++;
  state.report = rep;
  state.rows = new Map(rep.users.map(r => [r.id, r]));
  for (const r of rep.users) {
    const at = r.last_activity ? new Date(r.last_activity) : null;
    if (at && at <= new Date() && (!state.lastEvent || at > state.lastEvent)) state.lastEvent = at;
  }
  const ent = $("entity"), keep = params.get("entity") || "";
  ent.replaceChildren();
  addOption(ent, "", "All");
  for (const e of rep.entities) addOption(ent, e);
  if (keep && !rep.entities.includes(keep)) addOption(ent, keep);
  ent.value = keep;
  render();
  renderTransactions(); // people's names are known now
  loadPrevious();
}

function applyDelta(msg) {
  state.deltas++;
  for (const r of msg.users) state.rows.set(r.id, r);
  state.report.totals = msg.totals;
  for (const e of Object.keys(msg.totals)) {
    if (!state.report.entities.includes(e)) state.report.entities.push(e);
  }
  if (msg.transactions.length) state.lastEvent = new Date();
  render();
  prependTransactions(msg.transactions);
  refreshSeries();
}

// Live -----------------------------------------------------------------

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + cls;
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
  if (state.revoked) return;
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  const s = new WebSocket(url);
  state.socket = s;
  s.onopen = () => {
    state.retry = 0;
    setStatus("live", "live");
    subscribe(true);
    checkVersion();
  };
  s.onmessage = ev => {
    const msg = JSON.parse(ev.data);
    switch (msg.type) {
      case "snapshot":
        state.viewError = null;
        state.seq = msg.seq;
        applySnapshot(msg.report);
        break;
      case "resumed":
        // The missed deltas follow, from state.seq + 1 up to msg.seq.
        state.resumes++;
        break;
      case "delta":
        if (state.seq !== null && msg.seq <= state.seq) return; // seen already
        if (state.seq !== null && msg.seq !== state.seq + 1) {
          subscribe(false); // a gap: start again from a snapshot
          loadTransactions(true);
          return;
        }
        state.seq = msg.seq;
        applyDelta(msg);
        break;
      case "resync":
        subscribe(false);
        loadTransactions(true);
        break;
      case "alert":
        applyAlert(msg.alert);
        break;
      case "error":
        // Shown until a snapshot arrives: the freshness tick leaves it.
        state.viewError = msg.detail;
        setStatus(msg.detail, "down");
        if (token) checkDisplay();
        break;
    }
  };
  s.onclose = () => {
    if (state.socket !== s) return;
    setStatus("offline · reconnecting…", "down");
    if (token) checkDisplay();
    // A refused upgrade shows no status here, so ask the route itself.
    else fetch("/v1/live").then(res => signInIfNeeded(res.status), () => {});
    // A wall reconnects forever; the wait grows to 10 s and stays there.
    const wait = Math.min(10000, 500 * 2 ** Math.min(state.retry++, 5));
    setTimeout(connect, wait);
  };
}

// checkDisplay asks whether the page's display token still holds, and
// turns the page into a notice once it is revoked.
async function checkDisplay() {
  let res;
  try {
    res = await fetch("/v1/display", { headers: authHeaders() });
  } catch {
    return; // the server is away; the reconnect loop asks again
  }
  if (res.status !== 410 || state.revoked) return;
  state.revoked = true;
  if (state.socket) state.socket.close();
  $("main").hidden = true;
  $("notice").hidden = false;
  $("notice").textContent = "this display was revoked";
  setStatus("revoked", "down");
}

// checkVersion reloads a wall when the server's build changed, so that a
// deployment reaches screens nobody touches.
async function checkVersion() {
  let v;
  try {
    const res = await fetch("/version");
    if (!res.ok) return;
    v = (await res.json()).version;
  } catch {
    return;
  }
  if (state.version === null) state.version = v;
  else if (wall && v !== state.version) location.reload();
}

function ago(ms) {
  const secs = Math.max(0, Math.round(ms / 1000));
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.round(secs / 60) + " min";
  if (secs < 172800) return Math.round(secs / 3600) + " h";
  return Math.round(secs / 86400) + " days";
}

function tickFreshness() {
  if (state.revoked || state.viewError) return;
  const open = state.socket && state.socket.readyState === WebSocket.OPEN;
  let text = open ? "● live" : "○ offline · reconnecting…";
  if (state.lastEvent) text += " · last event " + ago(Date.now() - state.lastEvent) + " ago";
  setStatus(text, open ? "live" : "down");
}

// rotate cycles a wall through its periods (&periods=today,this_week), or
// between records and changes, every &rotate seconds.
function startRotation() {
  const secs = Number(params.get("rotate"));
  if (!wall || !(secs > 0)) return;
  const periods = (params.get("periods") || "").split(",").filter(Boolean);
  setInterval(() => {
    if (periods.length > 1) {
      const next = periods[(periods.indexOf(view().period) + 1) % periods.length];
      params.set("period", next);
      state.prev = null;
      viewChanged();
    } else {
      params.set("measure", measure() === "records" ? "changes" : "records");
      render();
    }
  }, secs * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  if (wall) document.body.classList.add("wall");
  if (wall && window.Chart) Chart.defaults.font.size = 18; // read across a room
  if (wall && !params.get("period") && params.get("periods")) params.set("period", params.get("periods").split(",")[0]);
  setupControls();
  if (!wall) loadTeams();
  loadTargets();
  if (!wall) loadAlerts();
  loadTransactions(true);
  connect();
  startRotation();
  setInterval(tickFreshness, 1000);
  if (wall) setInterval(checkVersion, 60000);
});
