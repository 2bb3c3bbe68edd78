// wakaq dashboard. No third-party code. Every value from Redis (task names, args, reasons, tracebacks, queue
// names) reaches the page through textContent / createTextNode only: this file never assigns innerHTML or
// outerHTML and never calls insertAdjacentHTML or document.write (tests/test_web.py checks that).
"use strict";

(() => {
  const TOKEN = document.querySelector('meta[name="csrf-token"]').content;
  const OVERVIEW_MS = 1000;
  const DAEMONS_MS = 2000;
  const PAGE_SIZE = 50;
  const COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#718096", "#b7791f"];
  const $ = (id) => document.getElementById(id);

  // ---- DOM and formatting helpers ----------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value); // NOTE: never href/src from data
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(parent, nodes) {
    parent.replaceChildren(...nodes);
  }

  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const rate = (r) => (r === null || r === undefined ? "–" : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US"));

  function utc(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function span(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.abs(seconds);
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function relative(seconds, now) {
    if (seconds === null || seconds === undefined) return "";
    const d = seconds - now;
    return d >= 0 ? `in ${span(d)}` : `${span(d)} ago`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  // ---- talking to the server ---------------------------------------------------------------------------------

  async function getJSON(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
    const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }

  async function postJSON(path, payload) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": TOKEN, Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(payload),
    });
    const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }

  function banner(message) {
    const b = $("banner");
    b.hidden = !message;
    b.textContent = message || "";
  }

  let flashTimer = null;
  function flash(message, bad) {
    const f = $("flash");
    f.textContent = message;
    f.className = bad ? "bad" : "";
    f.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { f.hidden = true; }, 6000);
  }

  // ---- chart: a small line chart on a canvas -----------------------------------------------------------------

  function niceStep(max) {
    // the y axis has 4 steps of 1, 2 or 5 x 10^k, so every label is a round number
    if (max <= 0) return 0.25;
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function agoLabel(ago) {
    if (ago === 0) return "now";
    if (ago < 60) return `-${ago} s`;
    if (ago < 3600) return `-${ago / 60} min`;
    if (ago < 86400) return `-${+(ago / 3600).toFixed(1)} h`;
    return `-${+(ago / 86400).toFixed(1)} d`;
  }

  const charts = {}; // canvas id -> what was drawn last, for the hover values and the text alternative

  function drawChart(canvas, times, series, opts) {
    // the x axis spans the data collected so far (at least opts.minWindow), up to opts.maxWindow, ending at opts.end
    const now = opts.end ?? (times.length ? times[times.length - 1] : 0);
    const collected = times.length ? now - times[0] : 0;
    const minWindow = opts.minWindow ?? 60;
    const windowSeconds = opts.fixedWindow ?? Math.min(opts.maxWindow, Math.max(minWindow, Math.ceil(collected / 60) * 60));
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 48, right = 8, top = 8, bottom = 40;
    const pw = w - left - right, ph = h - top - bottom;
    const start = now - windowSeconds;
    let max = 0;
    for (const s of series) for (const v of s.values) max = Math.max(max, v || 0);
    const step = niceStep(max);
    max = 4 * step;
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e2e8f0";
    ctx.fillStyle = "#718096";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = top + ph - (ph * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      const label = step * i;
      ctx.textAlign = "right";
      ctx.fillText(Number(label.toPrecision(6)).toLocaleString("en-US"), left - 4, y + 4);
    }
    const ticks = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    const tick = ticks.find((t) => windowSeconds / t <= 6) || 86400;
    for (let ago = 0; ago <= windowSeconds; ago += tick) {
      const x = left + pw - (pw * ago) / windowSeconds;
      ctx.textAlign = ago === 0 ? "right" : "center";
      ctx.fillText(agoLabel(ago), x, top + ph + 14);
    }
    const xOf = (t) => left + ((t - start) / windowSeconds) * pw;
    const yOf = (v) => top + ph - ((v || 0) / max) * ph;
    let legendX = left;
    series.forEach((s, k) => {
      if (opts.barSeconds) {
        // counts per interval as bars (side by side per series), ending at their time: one interval is visible too
        const bw = Math.max(1, (pw * opts.barSeconds) / windowSeconds / series.length);
        ctx.fillStyle = s.color;
        s.values.forEach((v, i) => {
          if (times[i] < start || !v) return;
          const x = Math.min(xOf(times[i] + opts.barSeconds), left + pw) - bw * (series.length - k);
          ctx.fillRect(x, yOf(v), bw, top + ph - yOf(v));
        });
      } else {
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 1.8;
        ctx.beginPath();
        let started = false;
        s.values.forEach((v, i) => {
          if (times[i] < start) return;
          if (started) ctx.lineTo(xOf(times[i]), yOf(v)); else { ctx.moveTo(xOf(times[i]), yOf(v)); started = true; }
        });
        ctx.stroke();
      }
      ctx.fillStyle = s.color;
      ctx.fillRect(legendX, h - 12, 10, 3);
      ctx.fillStyle = "#4a5568";
      ctx.textAlign = "left";
      ctx.fillText(s.label, legendX + 14, h - 8); // NOTE: canvas text is drawn, never parsed as HTML
      legendX += 24 + ctx.measureText(s.label).width;
    });
    const shown = times.map((t, i) => [t, i]).filter(([t]) => t >= start);
    charts[canvas.id] = { times, series, xOf, top, ph, start, format: opts.format || rate, shown };
    describe(canvas, opts);
  }

  // ---- chart text: the hover values, and the text alternative for screen readers -----------------------------

  function describe(canvas, opts) {
    // the canvas's accessible name: what it shows and its latest values; the table under it holds the numbers
    const c = charts[canvas.id];
    const last = c.shown.length ? c.shown[c.shown.length - 1][1] : null;
    const values = c.series.map((s) => `${s.label} ${last === null ? "no data" : c.format(s.values[last])}`).join(", ");
    canvas.setAttribute("aria-label", `${opts.title}. Latest: ${values}.`);
    const table = $(canvas.id.replace("chart-", "table-"));
    if (table && table.closest("details").open) fillTable(table, c, opts.rows || 10);
  }

  function fillTable(table, c, rows) {
    fill(table.tHead, [el("tr", null, el("th", { scope: "col" }, "time (UTC)"), ...c.series.map((s) => el("th", { scope: "col", class: "num" }, s.label)))]);
    const recent = c.shown.slice(-rows).reverse();
    fill(table.tBodies[0], recent.map(([t, i]) => el("tr", null, el("td", null, utc(t)),
      ...c.series.map((s) => el("td", { class: "num" }, c.format(s.values[i]))))));
  }

  function hoverable(canvas) {
    const tip = el("div", { class: "tip", "aria-hidden": "true" });
    tip.hidden = true;
    canvas.parentNode.append(tip);
    const show = (x) => {
      const c = charts[canvas.id];
      if (!c || !c.shown.length) { tip.hidden = true; return; }
      let best = c.shown[0];
      for (const p of c.shown) if (Math.abs(c.xOf(p[0]) - x) < Math.abs(c.xOf(best[0]) - x)) best = p;
      const [t, i] = best;
      fill(tip, [el("div", null, utc(t)), ...c.series.map((s) => {
        const swatch = el("span", { class: "swatch" });
        swatch.style.background = s.color;
        return el("div", null, swatch, `${s.label}: ${c.format(s.values[i])}`);
      })]);
      tip.hidden = false;
      const px = c.xOf(t);
      tip.style.left = `${Math.max(0, Math.min(canvas.offsetLeft + px + 12, canvas.offsetLeft + canvas.clientWidth - tip.offsetWidth))}px`;
      tip.style.top = `${canvas.offsetTop + c.top}px`;
      tip.dataset.t = String(t);
    };
    canvas.addEventListener("mousemove", (e) => show(e.clientX - canvas.getBoundingClientRect().left));
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("focus", () => show(canvas.clientWidth)); // keyboard: the latest values
    canvas.addEventListener("blur", () => { tip.hidden = true; });
    const details = $(canvas.id.replace("chart-", "table-")).closest("details");
    details.addEventListener("toggle", () => { if (details.open && charts[canvas.id]) fillTable(details.querySelector("table"), charts[canvas.id], canvas.id === "chart-history" ? 400 : 10); });
  }

  // ---- overview ----------------------------------------------------------------------------------------------

  const overview = { points: [], last: 0, window: 600, rateWindow: 10, queues: [], latest: null };

  async function pollOverview() {
    try {
      const data = await getJSON("/api/overview", { since: overview.last });
      overview.queues = data.app.queues;
      overview.window = data.window || 600;
      overview.rateWindow = data.rate_window || 10;
      for (const p of data.points) overview.points.push(p);
      if (data.points.length) overview.last = data.points[data.points.length - 1].t;
      const cut = overview.last - overview.window;
      while (overview.points.length && overview.points[0].t < cut) overview.points.shift();
      renderOverview(data.latest);
      banner(data.error ? `Redis: ${data.error} (showing the last data read)` : "");
      $("status").textContent = `live · ${utc(overview.last).slice(11)}`;
    } catch (e) {
      banner(`dashboard unreachable: ${e.message}`);
      $("status").textContent = "offline";
    }
  }

  function latency(q) {
    if (!q.pending) return "0 s";
    if (q.latency === null || q.latency === undefined) return "–";
    return `${q.latency_over ? "≥ " : ""}${span(q.latency)}`;
  }

  function renderOverview(latest) {
    if (!latest) return;
    overview.latest = latest;
    const rows = overview.queues.map((name) => {
      const q = latest.queues[name] || {};
      return el("tr", { "data-queue": name, class: q.paused ? "paused" : "" },
        el("td", { class: "name" }, name, q.paused ? el("span", { class: "paused-tag", title: "no daemon claims from this queue until it is resumed; it keeps accepting tasks" }, "paused") : null),
        el("td", { class: "num pending" }, num(q.pending)),
        el("td", { class: "num latency" }, latency(q)),
        el("td", { class: "num eta" }, num(q.eta)),
        el("td", { class: "num inflight" }, num(q.inflight)),
        el("td", { class: "num done" }, num(q.done_total)),
        el("td", { class: "num failed" }, num(q.failed_total)),
        el("td", { class: "num done-rate" }, rate(q.done_rate)),
        el("td", { class: "num failed-rate" }, rate(q.failed_rate)),
        el("td", { class: "num records" }, num(q.failed)),
        el("td", { class: "action" }, q.paused
          ? el("button", { type: "button", class: "resume", onclick: () => pauseAction("resume", name) }, "Resume")
          : el("button", { type: "button", class: "pause", onclick: () => pauseAction("pause", name) }, "Pause")));
    });
    fill($("queues").tBodies[0], rows);
    const failed = overview.queues.reduce((a, n) => a + ((latest.queues[n] || {}).failed || 0), 0);
    const eta = overview.queues.reduce((a, n) => a + ((latest.queues[n] || {}).eta || 0), 0);
    $("badge-failed").textContent = failed ? num(failed) : "";
    $("badge-failed").className = failed ? "badge bad" : "badge";
    $("badge-eta").textContent = eta ? num(eta) : "";
    const dead = latest.daemons_dead || 0;
    $("badge-daemons").textContent = dead ? `${latest.daemons_alive} + ${dead} dead` : String(latest.daemons_alive);
    $("badge-daemons").className = dead ? "badge bad" : "badge";
    if (current === "overview") drawOverviewCharts();
  }

  async function pauseAction(action, queue) {
    if (action === "pause" && !window.confirm(`Pause queue ${queue}? No worker daemon claims from it until it is resumed; it keeps accepting tasks.`)) return;
    try {
      const r = await postJSON(`/api/queues/${action}`, { queue });
      flash(r.changed ? `${action === "pause" ? "paused" : "resumed"} ${queue}` : `${queue} was already ${action === "pause" ? "paused" : "running"}`);
    } catch (e) { report(e); }
    await pollOverview();
  }

  function drawOverviewCharts() {
    const times = overview.points.map((p) => p.t);
    const sum = (key) => overview.points.map((p) => Object.values(p.queues).reduce((a, q) => a + (q[key] || 0), 0));
    $("caption-rate").textContent = `tasks per second, all queues (each point: the average over the last ${overview.rateWindow} s)`;
    drawChart($("chart-rate"), times, [
      { label: "done/s", color: "#38a169", values: sum("done_rate") },
      { label: "failed/s", color: "#c53030", values: sum("failed_rate") },
    ], { maxWindow: overview.window, title: "Tasks per second, all queues" });
    drawChart($("chart-pending"), times, overview.queues.map((name, i) => ({
      label: name, color: COLORS[i % COLORS.length], values: overview.points.map((p) => (p.queues[name] || {}).pending || 0),
    })), { maxWindow: overview.window, title: "Pending tasks per queue", format: num });
    if (perMinute.data) drawHistory();
  }

  // ---- per-minute history (kept in Redis for a few days) -----------------------------------------------------

  const perMinute = { since: null, data: null, loaded: 0 };

  function sinceAsked() {
    if (perMinute.since !== null) return perMinute.since;
    return Date.now() / 1000 - Number($("since").value);
  }

  async function loadHistory() {
    perMinute.data = await getJSON("/api/history", { since: Math.floor(sinceAsked()) });
    perMinute.loaded = Date.now();
    drawHistory();
  }

  function drawHistory() {
    const d = perMinute.data;
    const per = d.bucket_minutes > 1 ? `per ${d.bucket_minutes} min` : "per minute";
    const from = d.since === null ? "no history recorded yet" : `since ${utc(d.since)}`;
    $("history-totals").textContent = `processed ${num(d.done)} · failed ${num(d.failed)} ${from} (${per})`;
    const times = d.points.map((p) => p.t);
    // NOTE: the x axis spans the minutes recorded (at least 10), not the whole time asked for: a history that began
    // an hour ago is not squeezed into the last pixels of three days
    const windowSeconds = Math.max(600, d.now - Math.max(d.asked, d.since ?? d.asked));
    drawChart($("chart-history"), times, [
      { label: `done ${per}`, color: "#38a169", values: d.points.map((p) => p.done) },
      { label: `failed ${per}`, color: "#c53030", values: d.points.map((p) => p.failed) },
    ], { fixedWindow: windowSeconds, end: d.now, barSeconds: 60 * d.bucket_minutes, title: `Tasks ${per}, ${from}`, format: num, rows: 400 });
  }

  $("since").addEventListener("change", () => { perMinute.since = null; $("since-at").value = ""; loadHistory().catch(report); });
  $("since-at").addEventListener("change", () => {
    const t = Date.parse($("since-at").value); // NOTE: datetime-local values are the visitor's local time
    perMinute.since = Number.isFinite(t) ? t / 1000 : null;
    loadHistory().catch(report);
  });

  // ---- daemons -----------------------------------------------------------------------------------------------

  async function loadDaemons() {
    const data = await getJSON("/api/daemons");
    const rows = data.daemons.map((d) => el("tr", { "data-daemon": d.id, class: d.alive ? "" : "dead-row" },
      el("td", null, el("code", null, d.id)),
      el("td", null, d.host ?? "–"),
      el("td", { class: "num" }, d.pid ?? "–"),
      el("td", null, d.started_at ? `${utc(d.started_at)} (${relative(d.started_at, data.time)})` : "–"),
      el("td", { class: d.alive ? "alive state" : "dead state" },
        d.alive ? "alive" : `dead: no heartbeat for ${span(d.seen_ago)} (listed until reaped)`),
      el("td", { class: "num done" }, num(d.tasks_done)),
      el("td", { class: "num failed" }, num(d.tasks_failed)),
      el("td", { class: "num" }, bytes(d.rss_bytes)),
      el("td", null, el("ul", { class: "children" }, ...d.children.map((c) => el("li",
        { class: c.busy ? "busy" : "idle", "data-pid": c.pid ?? "" },
        `${c.pid ?? "?"}: `,
        c.busy ? el("code", null, c.task ?? "?") : "idle",
        c.busy && c.queue ? ` on ${c.queue}` : "",
        c.busy && c.running_for !== null && c.running_for !== undefined ? ` for ${span(c.running_for)}` : "",
        c.rss_bytes ? ` · ${bytes(c.rss_bytes)}` : "",
        ...(d.progress || []).filter((p) => p.pid === String(c.pid)).map(progressBar)))))));
    fill($("daemons").tBodies[0], rows.length ? rows : [el("tr", null, el("td", { colspan: 9, class: "note" }, "no worker daemon is registered"))]);
  }

  // A running task's last report (current_task.set_progress): a bar when it has a total, its info as text.
  function progressBar(p) {
    const bar = p.percent === null ? null : el("progress", { max: 100, value: p.percent.toFixed(1) });
    const count = p.total === null ? num(p.done) : `${num(p.done)} / ${num(p.total)}`;
    const pct = p.percent === null ? "" : ` (${Math.floor(p.percent)}%)`;
    const info = Object.entries(p.info).map(([k, v]) => `${k}=${v}`).join(" ");
    return el("div", { class: "progress", "data-task-id": p.id },
      el("code", null, p.task), " ", bar, ` ${count}${pct}`, info ? el("span", { class: "info" }, ` ${info}`) : null);
  }

  // ---- paged lists (failed, eta) -----------------------------------------------------------------------------

  function pagedList(kind, render) {
    const state = { queue: "", offset: 0, search: "", history: [], data: null };
    const select = $(`${kind}-queue`), input = $(`${kind}-search`);

    async function load() {
      const data = await getJSON(`/api/${kind}`, { queue: state.queue, offset: state.offset, limit: PAGE_SIZE, q: state.search });
      state.data = data;
      state.queue = data.queue;
      fill(select, data.queues.map((q) => el("option", { value: q }, `${q} (${num((data.counts || {})[q])})`)));
      select.value = data.queue;
      renderPager(data);
      render(data);
    }

    function renderPager(data) {
      const parts = [];
      const prev = el("button", { type: "button", class: "prev" }, "‹ Prev");
      prev.disabled = state.offset === 0;
      prev.addEventListener("click", () => { state.offset = state.history.pop() ?? Math.max(0, state.offset - PAGE_SIZE); load().catch(report); });
      parts.push(prev);
      let nextOffset = null;
      if (data.search !== undefined) {
        const end = data.offset + data.scanned;
        parts.push(el("span", { class: "summary" },
          `${data.items.length} match${data.items.length === 1 ? "" : "es"} for “${data.search}” in records ${num(data.offset + 1)}–${num(end)} of ${num(data.total)}`));
        nextOffset = data.next;
      } else {
        const first = data.items.length ? data.offset + 1 : 0;
        parts.push(el("span", { class: "summary" }, `${num(first)}–${num(data.offset + data.items.length)} of ${num(data.total)}`));
        nextOffset = data.offset + data.items.length < data.total ? data.offset + data.items.length : null;
      }
      const next = el("button", { type: "button", class: "next" }, data.search !== undefined ? "Search further ›" : "Next ›");
      next.disabled = nextOffset === null;
      next.addEventListener("click", () => { state.history.push(state.offset); state.offset = nextOffset; load().catch(report); });
      parts.push(next);
      fill($(`${kind}-pager`), parts);
    }

    select.addEventListener("change", () => { state.queue = select.value; state.offset = 0; state.history = []; load().catch(report); });
    const search = () => { state.search = input.value.trim(); state.offset = 0; state.history = []; load().catch(report); };
    $(`${kind}-search-go`).addEventListener("click", search);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
    return { state, load };
  }

  function report(e) {
    flash(e.message, true);
  }

  function payloadProblem(item) {
    return el("span", { class: "undecodable" }, `undecodable payload (${item.payload_error || "unknown format"}): `,
      el("code", { class: "hex" }, item.payload_hex || ""));
  }

  function renderFailed(data) {
    const cards = data.items.map((item) => {
      const actions = el("span", { class: "actions" },
        el("button", { type: "button", class: "requeue", onclick: () => failedAction("requeue", item) }, "Requeue"),
        el("button", { type: "button", class: "drop danger", onclick: () => failedAction("drop", item) }, "Drop"));
      return el("div", { class: "record", "data-id": item.id },
        el("div", { class: "head" },
          item.name !== null ? el("span", { class: "name" }, item.name) : payloadProblem(item),
          el("span", { class: "meta" }, `${item.time ? utc(Date.parse(item.time) / 1000) : "time unknown"} · queue ${item.queue ?? data.queue}`,
            item.deliveries ? ` · ${item.deliveries} deliver${item.deliveries === 1 ? "y" : "ies"}` : "",
            item.worker ? ` · ${item.worker}` : ""),
          actions),
        item.name !== null ? el("div", { class: "args" }, "args ", el("code", { class: "value args-value" }, item.args),
          " kwargs ", el("code", { class: "value kwargs-value" }, item.kwargs)) : null,
        el("div", { class: "reason" }, item.reason ?? ""),
        item.traceback ? el("details", { class: "tb" }, el("summary", null, "traceback"), el("pre", { class: "traceback" }, item.traceback)) : null);
    });
    fill($("failed-list"), cards.length ? cards : [el("p", { class: "note" }, data.search ? "no match here" : "no failed tasks in this queue")]);
  }

  async function failedAction(action, item) {
    try {
      const result = await postJSON(`/api/failed/${action}`, { queue: failed.state.queue, id: item.id, index: item.index });
      flash(action === "requeue" ? `requeued ${item.name ?? "task"}` : `dropped ${result.dropped} record`);
    } catch (e) { report(e); }
    await failed.load().catch(report);
  }

  async function failedAll(action) {
    const queue = failed.state.queue;
    const total = failed.state.data ? failed.state.data.total : 0;
    if (!window.confirm(`${action === "requeue" ? "Requeue" : "Drop"} all ${total} failed tasks of queue ${queue}?`)) return;
    try {
      const r = await postJSON(`/api/failed/${action}`, { queue, all: true });
      flash(action === "requeue" ? `requeued ${r.requeued}, left ${r.skipped} that cannot be requeued` : `dropped ${r.dropped}`);
    } catch (e) { report(e); }
    failed.state.offset = 0;
    await failed.load().catch(report);
  }

  function renderEta(data) {
    const rows = data.items.map((item) => el("tr", { "data-id": item.id },
      el("td", null, utc(item.due), el("span", { class: "muted" }, ` (${relative(item.due, data.now)})`)),
      el("td", null, item.name !== null ? el("code", null, item.name) : payloadProblem(item)),
      el("td", null, item.name !== null ? el("code", { class: "value" }, item.args) : ""),
      el("td", null, item.name !== null ? el("code", { class: "value" }, item.kwargs) : "")));
    fill($("eta-table").tBodies[0], rows.length ? rows : [el("tr", null, el("td", { colspan: 4, class: "note" }, "no eta tasks"))]);
  }

  async function loadSchedules() {
    const data = await getJSON("/api/schedules");
    const err = $("schedules-error");
    err.hidden = !data.error;
    err.textContent = data.error || "";
    const rows = data.schedules.map((s) => el("tr", { "data-schedule": s.id },
      el("td", null, el("code", null, s.cron)),
      el("td", null, el("code", null, s.task)),
      el("td", null, s.queue),
      el("td", null, el("code", { class: "value" }, `${s.args} ${s.kwargs}`)),
      el("td", null, `${utc(s.next_fire)} (${relative(s.next_fire, data.now)})`),
      el("td", null, s.last_fire ? `${utc(s.last_fire)} (${relative(s.last_fire, data.now)})` : "not in the last slots"),
      el("td", null, s.fired_by ? el("code", null, s.fired_by) : "–")));
    fill($("schedules").tBodies[0], rows.length ? rows : [el("tr", null, el("td", { colspan: 7, class: "note" }, "this app has no schedules"))]);
  }

  // ---- pages -------------------------------------------------------------------------------------------------

  const failed = pagedList("failed", renderFailed);
  const eta = pagedList("eta", renderEta);
  $("failed-requeue-all").addEventListener("click", () => failedAll("requeue"));
  $("failed-drop-all").addEventListener("click", () => failedAll("drop"));

  const PAGES = {
    overview: { load: async () => { drawOverviewCharts(); await loadHistory(); }, every: 60000 },
    daemons: { load: loadDaemons, every: DAEMONS_MS },
    failed: { load: () => failed.load() },
    eta: { load: () => eta.load() },
    schedules: { load: loadSchedules, every: 5000 },
  };
  // pages kept in their own files (workflows.js, loaded first) register a factory: given these helpers, it returns
  // { load(arg), every }; `arg` is what follows the page's name in the address (#workflows/<id>)
  const ui = { $, el, fill, getJSON, postJSON, flash, report, utc, relative, span, num };
  for (const [name, make] of Object.entries(window.wakaqPages || {})) PAGES[name] = make(ui);
  let current = null;
  let pageTimer = null;

  function show() {
    const [route, ...rest] = location.hash.slice(1).split("/");
    const name = route in PAGES ? route : "overview";
    const arg = rest.join("/");
    current = name;
    for (const key of Object.keys(PAGES)) $(`page-${key}`).hidden = key !== name;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
    clearInterval(pageTimer);
    const page = PAGES[name];
    page.load(arg).catch(report);
    if (page.every) pageTimer = setInterval(() => { if (!document.hidden) page.load(arg).catch(report); }, page.every);
  }

  for (const id of ["chart-rate", "chart-pending", "chart-history"]) hoverable($(id));
  window.addEventListener("hashchange", show);
  window.addEventListener("resize", () => { if (current === "overview") drawOverviewCharts(); });
  show();
  pollOverview();
  setInterval(() => { if (!document.hidden) pollOverview(); }, OVERVIEW_MS);
})();
