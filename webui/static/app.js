// swarmlist page: the global list, live counters and charts, members, partitions, convergence.
// Entries are LLM output: everything from the server is put in the page with textContent
// (never as markup), and the Content-Security-Policy forbids inline script as a second wall.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 100;
  const RECENT_SHOWN = 12;
  const DUP_WINDOW_S = 30;
  const LLM_WINDOW_S = 60;
  const GOSSIP_WINDOW_S = 10;
  const SAMPLES_KEPT = 1800;

  const number = new Intl.NumberFormat("en");
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
  const fmtInt = (v) => (v === null || v === undefined || !isFinite(v) ? "–" : number.format(Math.round(v)));
  const fmtCompact = (v) => (v === null || v === undefined || !isFinite(v) ? "–" : compact.format(v));
  const fmtPct = (v) => (v === null || v === undefined || !isFinite(v) ? "–" : (v * 100).toFixed(1) + "%");
  const fmtNum = (v, d) => (v === null || v === undefined || !isFinite(v) ? "–" : v.toFixed(d));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function partitionLabel(path) {
    return path ? path : "(whole topic)";
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  const state = {
    health: {},
    metrics: {},
    serverTime: 0,
    members: [],
    samples: [],
    discovery: [],
    fresh: new Map(), // entry id -> when it arrived (ms), to highlight new rows
    list: {
      cursors: [null],
      index: 0,
      next: null,
      total: 0,
      q: "",
      partition: "",
      status: "",
      expanded: new Set(),
      loading: 0,
    },
  };

  // ---------------------------------------------------------------- header and counters

  function renderHeader() {
    $("topic").textContent = state.health.topic || "–";
    $("node-name").textContent = state.health.node || "–";
    document.title = (state.health.topic ? state.health.topic + " · " : "") + "swarmlist";
  }

  function metric(path) {
    let value = state.metrics;
    for (const part of path.split(".")) {
      if (value === null || typeof value !== "object") return null;
      value = value[part];
    }
    return typeof value === "number" ? value : null;
  }

  function renderCounters() {
    const entries = metric("entries");
    const calls = metric("calls");
    const failed = metric("calls_failed");
    const generated = metric("generated_items");
    const fresh = metric("new_items");
    const total = metric("estimate.total");
    const low = metric("estimate.low");
    const high = metric("estimate.high");
    const coverage = metric("estimate.coverage");
    $("c-entries").textContent = fmtInt(entries);
    const confirmed = metric("statuses.confirmed");
    const rejected = metric("statuses.rejected");
    $("c-entries-sub").textContent = (generated !== null ? fmtInt(generated) + " generated" : "") +
      (confirmed !== null ? " · " + fmtInt(confirmed) + " confirmed, " + fmtInt(rejected || 0) + " rejected" : "");
    $("c-calls").textContent = fmtInt(calls);
    $("c-calls-sub").textContent = failed !== null ? fmtInt(failed) + " failed" : "";
    $("c-yield").textContent = fmtNum(metric("new_per_call"), 2);
    $("c-yield-sub").textContent = "this node's calls";
    const dupShare = generated ? (generated - (fresh || 0)) / generated : metric("duplicate_share");
    $("c-dups").textContent = fmtPct(dupShare);
    $("c-dups-sub").textContent = generated ? fmtInt(generated - (fresh || 0)) + " dropped" : "";
    $("c-total").textContent = fmtInt(total);
    $("c-total-sub").textContent = total === null ? "" : "95%: " + fmtInt(low) + "–" + (high === null ? "∞" : fmtInt(high));
    const remaining = metric("estimate.remaining");
    const observed = total !== null && remaining !== null ? total - remaining : null;
    $("c-remaining").textContent = fmtInt(remaining);
    $("c-remaining-sub").textContent =
      observed !== null && low !== null ? "95%: " + fmtInt(Math.max(0, low - observed)) + "–" + (high === null ? "∞" : fmtInt(high - observed)) : "";
    $("coverage").textContent = coverage === null ? "" : fmtPct(coverage) + " covered";
    $("c-tokens").textContent = fmtCompact(metric("tokens"));
    $("c-tokens-sub").textContent = "this node's calls";
    renderSpend();
    const stopped = state.metrics.stopped;
    const paused = state.metrics.paused;
    $("run-state").textContent = typeof stopped === "string" && stopped ? "stopped: " + stopped
      : typeof paused === "string" && paused ? "production paused: " + paused : "";
    const alive = state.members.filter((m) => m.state === "alive").length;
    $("c-members").textContent = fmtInt(state.members.length);
    $("c-members-sub").textContent = alive + " alive";
  }

  // The network's LLM spend (every node's calls, from the replicated usage records) and its budget.
  function renderSpend() {
    const line = $("spend");
    const calls = metric("spend.calls");
    line.hidden = calls === null;
    if (calls === null) return;
    const parts = [
      "Network spend: " + fmtInt(calls) + " LLM calls, " + fmtCompact(metric("spend.prompt_tokens")) + " prompt + " +
        fmtCompact(metric("spend.completion_tokens")) + " completion tokens",
    ];
    const budgetCalls = metric("spend.budget_calls");
    const budgetTokens = metric("spend.budget_tokens");
    if (budgetCalls !== null) parts.push("budget " + fmtInt(budgetCalls) + " calls, " + fmtInt(metric("spend.remaining_calls")) + " left");
    if (budgetTokens !== null) parts.push("budget " + fmtCompact(budgetTokens) + " tokens, " + fmtCompact(metric("spend.remaining_tokens")) + " left");
    if (budgetCalls === null && budgetTokens === null) parts.push("no budget");
    line.textContent = parts.join(" · ");
  }

  // ---------------------------------------------------------------- the list

  function listUrl() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const cursor = state.list.cursors[state.list.index];
    if (cursor) params.set("cursor", cursor);
    if (state.list.q) params.set("q", state.list.q);
    if (state.list.partition) params.set("partition", state.list.partition);
    if (state.list.status) params.set("status", state.list.status);
    return "/api/entries?" + params.toString();
  }

  async function loadPage() {
    const ticket = ++state.list.loading;
    let body;
    try {
      body = await getJSON(listUrl());
    } catch (error) {
      console.warn(error);
      return;
    }
    if (ticket !== state.list.loading) return; // a newer request superseded this one
    state.list.next = body.next_cursor;
    state.list.total = body.total;
    renderRows(body.entries);
  }

  function renderRows(entries) {
    const tbody = $("list-body");
    clear(tbody);
    const now = Date.now();
    for (const entry of entries) {
      const row = el("tr", "entry");
      row.dataset.id = entry.id;
      const arrived = state.fresh.get(entry.id);
      if (arrived && now - arrived < 4000) row.classList.add("fresh");
      const textCell = el("td", "col-text");
      textCell.append(el("span", "chevron", "▸"), el("span", "entry-text", entry.text));
      if (entry.aliases.length) {
        textCell.append(el("span", "badge", "+" + entry.aliases.length + (entry.aliases.length === 1 ? " alias" : " aliases")));
      }
      const statusCell = el("td");
      statusCell.append(el("span", "status " + entry.status, entry.status));
      row.append(
        textCell,
        el("td", "partition-cell", partitionLabel(entry.partition)),
        el("td", "origin-cell", entry.origin),
        statusCell,
      );
      row.addEventListener("click", () => toggle(row, entry));
      tbody.append(row);
      if (state.list.expanded.has(entry.id)) openDetail(row, entry);
    }
    const first = state.list.index * PAGE_SIZE;
    $("list-empty").hidden = entries.length > 0;
    $("page-info").textContent = entries.length
      ? number.format(first + 1) + "–" + number.format(first + entries.length) + " of " + number.format(state.list.total)
      : "";
    $("list-count").textContent = number.format(state.list.total) + (state.list.q || state.list.partition || state.list.status ? " matching" : "");
    $("prev").disabled = state.list.index === 0;
    $("next").disabled = !state.list.next;
  }

  function toggle(row, entry) {
    if (state.list.expanded.has(entry.id)) {
      state.list.expanded.delete(entry.id);
      row.classList.remove("open");
      const detail = row.nextElementSibling;
      if (detail && detail.classList.contains("detail")) detail.remove();
    } else {
      state.list.expanded.add(entry.id);
      openDetail(row, entry);
    }
  }

  function matchLabel(observation) {
    if (observation.match === "new") return "kept: first seen";
    if (observation.match === "exact") return "dropped: exact duplicate";
    if (observation.score === null) return "dropped: near-duplicate";
    return "dropped: near-duplicate " + (observation.score * 100).toFixed(0) + "%";
  }

  async function openDetail(row, entry) {
    row.classList.add("open");
    const detail = el("tr", "detail");
    detail.dataset.for = entry.id;
    const cell = el("td");
    cell.colSpan = 4;
    detail.append(cell);
    row.after(detail);
    if (entry.aliases.length) {
      cell.append(el("h3", null, "Aliases"));
      const chips = el("div", "chips");
      for (const alias of entry.aliases) chips.append(el("span", "chip alias", alias));
      cell.append(chips);
    }
    let found;
    try {
      found = await getJSON("/api/entries/" + encodeURIComponent(entry.id));
    } catch (error) {
      cell.append(el("div", "muted", "Details unavailable."));
      return;
    }
    cell.append(el("h3", null, "Generated " + found.generated + (found.generated === 1 ? " time" : " times") + " · why kept or dropped"));
    const verdicts = found.verdicts || { real: 0, not_real: 0 };
    if (verdicts.real || verdicts.not_real) {
      cell.append(el("div", "muted verdicts", "Verified: " + fmtInt(verdicts.real) + " × real, " +
        fmtInt(verdicts.not_real) + " × not real → " + (found.entry.status || "unconfirmed")));
    }
    if (!found.observations.length) {
      cell.append(el("div", "muted", "No observation of this entry has reached this node yet."));
      return;
    }
    const table = el("table", "observations");
    const head = el("tr");
    for (const title of ["As generated", "Resolution", "Node · call"]) head.append(el("th", null, title));
    head.append(el("th", "partition-cell", "Partition"));
    table.append(el("thead"));
    table.tHead.append(head);
    const body = el("tbody");
    for (const observation of found.observations) {
      const tr = el("tr", "observation");
      const match = el("td");
      match.append(el("span", "match " + observation.match, matchLabel(observation)));
      tr.append(
        observation.text === null
          ? el("td", "generated muted", "(detail not kept)")
          : el("td", "generated", observation.text),
        match,
        el("td", "origin-cell", observation.node + " · " + observation.call),
        el("td", "partition-cell", partitionLabel(observation.partition)),
      );
      body.append(tr);
    }
    table.append(body);
    cell.append(table);
    if (found.generated > found.observations.length) {
      cell.append(el("div", "muted", "Showing the first " + found.observations.length + "."));
    }
  }

  let reloadTimer = null;
  function scheduleReload(delayMs) {
    if (reloadTimer !== null) return;
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      loadPage();
    }, delayMs);
  }

  function restartList() {
    state.list.cursors = [null];
    state.list.index = 0;
    state.list.expanded.clear();
    loadPage();
  }

  function wireListControls() {
    let searchTimer = null;
    $("search").addEventListener("input", (event) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        state.list.q = event.target.value.trim();
        restartList();
      }, 200);
    });
    $("partition-filter").addEventListener("change", (event) => {
      state.list.partition = event.target.value;
      restartList();
    });
    $("status-filter").addEventListener("change", (event) => {
      state.list.status = event.target.value;
      restartList();
    });
    $("next").addEventListener("click", () => {
      if (!state.list.next) return;
      state.list.cursors[state.list.index + 1] = state.list.next;
      state.list.index += 1;
      state.list.cursors.length = state.list.index + 1;
      loadPage();
    });
    $("prev").addEventListener("click", () => {
      if (state.list.index === 0) return;
      state.list.index -= 1;
      loadPage();
    });
  }

  // ---------------------------------------------------------------- live feed of new entries

  function addRecent(entries) {
    const list = $("recent");
    const placeholder = list.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    const now = Date.now();
    for (const entry of entries) {
      state.fresh.set(entry.id, now);
      const item = el("li", "fresh");
      item.dataset.id = entry.id;
      const when = new Date(now).toLocaleTimeString([], { hour12: false });
      item.append(el("span", "what", entry.text), el("span", "when", (entry.partition ? entry.partition + " · " : "") + when));
      list.prepend(item);
    }
    while (list.children.length > RECENT_SHOWN) list.lastElementChild.remove();
    for (const [id, at] of state.fresh) if (now - at > 10000) state.fresh.delete(id);
  }

  // ---------------------------------------------------------------- members, partitions, convergence

  function ago(seconds) {
    if (!isFinite(seconds)) return "–";
    if (seconds < 2) return "now";
    if (seconds < 120) return Math.round(seconds) + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function fmtRtt(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const ms = seconds * 1000;
    return (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + " ms";
  }

  // Why a member is suspect, dead or left, with the local time it was decided.
  function whyText(member) {
    if (!member.reason) return "";
    if (!member.reason_at) return member.reason;
    return member.reason + " at " + new Date(member.reason_at * 1000).toLocaleTimeString([], { hour12: false });
  }

  function renderMembers() {
    const tbody = $("members-body");
    clear(tbody);
    const members = [...state.members].sort((a, b) => a.name.localeCompare(b.name));
    for (const member of members) {
      const row = el("tr", "member");
      const name = el("td", member.name === state.health.node ? "self" : null, member.name);
      if (member.name === state.health.node) name.title = "this node";
      const stateCell = el("td");
      stateCell.append(el("span", "state " + member.state, member.state));
      row.append(
        name,
        el("td", "address", member.address),
        stateCell,
        el("td", "num", member.incarnation),
        el("td", "num rtt", fmtRtt(member.rtt_s)),
        el("td", "num muted", ago(state.serverTime - member.last_heard)),
        el("td", "reason muted", whyText(member)),
      );
      tbody.append(row);
    }
    renderCounters();
  }

  async function loadPartitions() {
    let body;
    try {
      body = await getJSON("/api/partitions");
    } catch (error) {
      return;
    }
    const panel = $("partitions-panel");
    panel.hidden = !body.available;
    if (!body.available) return;
    const tbody = $("partitions-body");
    clear(tbody);
    const states = {};
    for (const partition of body.partitions) states[partition.state || "–"] = (states[partition.state || "–"] || 0) + 1;
    $("partitions-summary").textContent = body.partitions.length < 2 ? "" :
      fmtInt(body.partitions.length) + " · " + ["active", "split", "retired"]
        .filter((name) => states[name]).map((name) => fmtInt(states[name]) + " " + name).join(", ");
    for (const partition of body.partitions) {
      const labels = partition.path ? partition.path.split(" > ") : [];
      const row = el("tr", "partition");
      const name = el("td");
      const indent = el("span", "indent");
      indent.style.width = Math.max(0, labels.length - 1) * 14 + "px";
      name.append(indent, document.createTextNode(labels.length ? labels[labels.length - 1] : partitionLabel("")));
      name.title = partitionLabel(partition.path);
      row.append(
        name,
        el("td", "muted", partition.owner || "–"),
        el("td", "num", fmtInt(partition.entries)),
        el("td", "num", partition.yield === null ? "–" : fmtNum(partition.yield, 2)),
        el("td", "muted", partition.state || "–"),
      );
      tbody.append(row);
    }
    const select = $("partition-filter");
    const paths = body.partitions.map((p) => p.path);
    select.hidden = paths.length < 2;
    document.body.classList.toggle("single-partition", paths.length < 2);
    const current = new Set([...select.options].map((o) => o.value));
    for (const path of paths) {
      if (!current.has(path)) select.append(new Option(partitionLabel(path), path));
    }
  }

  function heatColor(similarity) {
    // red (far apart) → amber → green (identical), readable white text on all of them
    const hue = Math.max(0, Math.min(1, similarity)) * 130 + 5;
    return "hsl(" + hue.toFixed(0) + ", 55%, 40%)";
  }

  async function loadConvergence() {
    let body;
    try {
      body = await getJSON("/api/convergence");
    } catch (error) {
      return;
    }
    $("convergence-panel").hidden = !body.available;
    if (!body.available) return;
    const table = $("convergence");
    clear(table);
    const head = el("tr");
    head.append(el("th"));
    for (const name of body.nodes) head.append(el("th", null, name));
    table.append(head);
    body.nodes.forEach((name, i) => {
      const row = el("tr");
      row.append(el("th", null, name));
      body.nodes.forEach((other, j) => {
        const value = body.similarity[i] ? body.similarity[i][j] : null;
        const cell = el("td", value === null || value === undefined ? "unknown" : null, value === null || value === undefined ? "?" : Math.round(value * 100) + "%");
        if (value !== null && value !== undefined) cell.style.backgroundColor = heatColor(value);
        cell.title = name + " ~ " + other;
        row.append(cell);
      });
      table.append(row);
    });
  }

  // ---------------------------------------------------------------- charts

  const charts = {};

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function addKey(container, series) {
    const key = el("div", "key");
    for (const item of series) {
      if (item.key === false) continue;
      const entry = el("span", "key-item");
      const swatch = el("span", "swatch" + (item.dash ? " dashed" : ""));
      swatch.style.borderColor = item.stroke;
      entry.append(swatch, document.createTextNode(item.key || item.label));
      key.append(entry);
    }
    container.before(key);
  }

  function fmtClock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  function makeChart(id, series, options) {
    const container = $(id);
    if (!window.uPlot || !container) return null;
    addKey(container, series);
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid"), width: 1 }, font: "11px system-ui, sans-serif" };
    const axes = [{ ...axis, space: 70 }, { ...axis, size: 46, values: (u, ticks) => ticks.map((v) => fmtCompact(v)) }];
    if (options.rightScale) {
      axes.push({ ...axis, scale: options.rightScale, side: 1, size: 46, grid: { show: false }, values: (u, ticks) => ticks.map((v) => fmtCompact(v)) });
    }
    if (options.percent) axes[1].values = (u, ticks) => ticks.map((v) => Math.round(v * 100) + "%");
    // Clock times only: uPlot's default two-line date labels collide in narrow charts.
    if (options.time !== false) axes[0].values = (u, ticks) => ticks.map((v) => fmtClock(v));
    const chart = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: 150,
        scales: { x: { time: options.time !== false }, ...(options.scales || {}) },
        axes,
        series: [{ label: options.xLabel || "time" }, ...series],
        bands: options.bands,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      },
      [[], ...series.map(() => [])],
      container,
    );
    new ResizeObserver(() => chart.setSize({ width: Math.max(200, container.clientWidth), height: 150 })).observe(container);
    return chart;
  }

  function line(label, color, extra) {
    return { label, stroke: color, width: 1.6, points: { show: false }, ...(extra || {}) };
  }

  function buildCharts() {
    const c1 = cssVar("--series-1");
    const c2 = cssVar("--series-2");
    const c3 = cssVar("--series-3");
    const c4 = cssVar("--series-4");
    charts.discovery = makeChart("chart-discovery", [line("entries discovered", c1, { fill: cssVar("--band") })], { time: false, xLabel: "calls" });
    charts.duplicates = makeChart("chart-duplicates", [line("duplicates", c3, { fill: "rgba(217,130,43,0.10)" })], {
      percent: true,
      scales: { y: { range: [0, 1] } },
    });
    charts.estimate = makeChart(
      "chart-estimate",
      [
        line("high", c1, { width: 0.8, dash: [3, 3], key: "95% interval" }),
        line("estimate", c1),
        line("low", c1, { width: 0.8, dash: [3, 3], key: false }),
        line("found", c2),
      ],
      { bands: [{ series: [1, 3], fill: cssVar("--band") }] },
    );
    charts.llm = makeChart(
      "chart-llm",
      [line("calls", c1), line("errors", c4), line("tokens (right)", c3, { scale: "tokens" })],
      { rightScale: "tokens", scales: { tokens: { auto: true } } },
    );
    charts.gossip = makeChart("chart-gossip", [line("messages", c1), line("KB (right)", c3, { scale: "kb" })], { rightScale: "kb", scales: { kb: { auto: true } } });
  }

  // rate of a cumulative counter over a trailing window, per `per` seconds
  function rates(samples, key, windowS, per) {
    const out = new Array(samples.length).fill(null);
    let j = 0;
    for (let i = 0; i < samples.length; i++) {
      while (j < i && samples[i].t - samples[j].t > windowS) j++;
      const dt = samples[i].t - samples[j].t;
      const a = samples[j][key];
      const b = samples[i][key];
      if (dt >= 1 && a !== undefined && b !== undefined) out[i] = Math.max(0, ((b - a) / dt) * per);
    }
    return out;
  }

  function duplicateShares(samples) {
    const out = new Array(samples.length).fill(null);
    let j = 0;
    for (let i = 0; i < samples.length; i++) {
      while (j < i && samples[i].t - samples[j].t > DUP_WINDOW_S) j++;
      const items = (samples[i].generated_items || 0) - (samples[j].generated_items || 0);
      const fresh = (samples[i].new_items || 0) - (samples[j].new_items || 0);
      if (items > 0) out[i] = (items - fresh) / items;
    }
    return out;
  }

  function column(samples, key) {
    return samples.map((s) => (s[key] === undefined ? null : s[key]));
  }

  function sum(a, b) {
    return a.map((v, i) => (v === null && b[i] === null ? null : (v || 0) + (b[i] || 0)));
  }

  function renderCharts() {
    const samples = state.samples;
    const times = samples.map((s) => s.t);
    if (charts.duplicates) charts.duplicates.setData([times, duplicateShares(samples)]);
    if (charts.estimate) {
      charts.estimate.setData([times, column(samples, "estimate.high"), column(samples, "estimate.total"), column(samples, "estimate.low"), column(samples, "entries")]);
    }
    if (charts.llm) {
      charts.llm.setData([times, rates(samples, "calls", LLM_WINDOW_S, 60), rates(samples, "calls_failed", LLM_WINDOW_S, 60), rates(samples, "tokens", LLM_WINDOW_S, 60)]);
    }
    const last = samples[samples.length - 1] || {};
    const hasGossip = Object.keys(last).some((k) => k.startsWith("gossip."));
    $("gossip-figure").hidden = !hasGossip;
    if (hasGossip && charts.gossip) {
      const messages = sum(rates(samples, "gossip.messages_in", GOSSIP_WINDOW_S, 1), rates(samples, "gossip.messages_out", GOSSIP_WINDOW_S, 1));
      const bytes = sum(rates(samples, "gossip.bytes_in", GOSSIP_WINDOW_S, 1), rates(samples, "gossip.bytes_out", GOSSIP_WINDOW_S, 1));
      charts.gossip.setData([times, messages, bytes.map((v) => (v === null ? null : v / 1024))]);
    }
  }

  function renderDiscovery() {
    if (!charts.discovery) return;
    const points = state.discovery;
    charts.discovery.setData([points.map((p) => p[0]), points.map((p) => p[2])]);
  }

  async function loadSeries() {
    try {
      const body = await getJSON("/api/series?max_points=" + SAMPLES_KEPT);
      state.samples = body.samples;
      renderCharts();
    } catch (error) {
      console.warn(error);
    }
  }

  let lastDiscoveryCalls = -1;
  async function loadDiscovery() {
    const calls = metric("observed_calls");
    if (calls !== null && calls === lastDiscoveryCalls) return;
    try {
      const body = await getJSON("/api/discovery?max_points=400");
      state.discovery = body.points;
      lastDiscoveryCalls = calls === null ? -1 : calls;
      renderDiscovery();
    } catch (error) {
      console.warn(error);
    }
  }

  // ---------------------------------------------------------------- live events

  function setLive(mode, text) {
    const live = $("live");
    live.className = "live " + mode;
    $("live-text").textContent = text;
  }

  let ticks = 0;
  function connect() {
    const source = new EventSource("/api/events");
    let reconnecting = false;
    source.addEventListener("open", () => setLive("on", "live"));
    source.addEventListener("error", () => {
      reconnecting = true;
      setLive(source.readyState === EventSource.CLOSED ? "off" : "connecting", source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
    });
    source.addEventListener("hello", (event) => {
      const data = JSON.parse(event.data);
      state.health = data.health || {};
      state.metrics = data.metrics || {};
      state.members = data.members || [];
      state.serverTime = data.t;
      renderHeader();
      renderCounters();
      renderMembers();
      if (reconnecting) {
        reconnecting = false;
        loadSeries();
        loadPage();
      }
    });
    source.addEventListener("metrics", (event) => {
      const data = JSON.parse(event.data);
      state.metrics = data.metrics;
      state.serverTime = data.t;
      if (data.members) state.members = data.members;
      const last = state.samples[state.samples.length - 1];
      if (!last || last.t < data.sample.t) state.samples.push(data.sample);
      if (state.samples.length > SAMPLES_KEPT) state.samples.splice(0, state.samples.length - SAMPLES_KEPT);
      renderCounters();
      renderCharts();
      renderMembers(); // last-heard ages move on
      ticks += 1;
      if (ticks % 3 === 0) loadDiscovery();
      if (ticks % 5 === 0) {
        loadPartitions();
        loadConvergence();
      }
    });
    source.addEventListener("members", (event) => {
      const data = JSON.parse(event.data);
      state.members = data.members;
      state.serverTime = data.t;
      renderMembers();
    });
    source.addEventListener("entries", (event) => {
      const data = JSON.parse(event.data);
      addRecent(data.entries);
      scheduleReload(data.more ? 200 : 800);
    });
  }

  async function start() {
    wireListControls();
    buildCharts();
    connect();
    try {
      state.health = await getJSON("/healthz");
      renderHeader();
    } catch (error) {
      console.warn(error);
    }
    await Promise.all([loadPage(), loadSeries(), loadDiscovery(), loadPartitions(), loadConvergence()]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
