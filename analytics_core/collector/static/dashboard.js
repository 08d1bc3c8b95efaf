// The collector's dashboard: live numbers from /v1/live/stream (Server-Sent Events read with
// fetch, so that the read key travels in a header, not the URL) and the main metrics from
// /v1/metrics/*. Charts are drawn here as SVG: no library, no build step.
"use strict";

(() => {
  const KEY_STORE = "analytics-core.read-key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const METRICS_EVERY_MS = 30_000;
  const RATE_POINTS = 90;
  const number = new Intl.NumberFormat("en");

  let readKey = null;
  let lastEventId = null;
  let retryMs = 3000;
  const rateSeries = [];

  // --- Small helpers ---------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const utcTime = (iso) => new Date(iso).toISOString().slice(11, 19);

  function svg(tag, attributes = {}, text = null) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function cell(text, className = "") {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillTable(id, rows, emptyText) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(emptyText, "dim");
      td.colSpan = $(id).querySelectorAll("th").length;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = document.createElement("tr");
      tr.append(...cells);
      body.append(tr);
    }
  }

  function setValue(id, text) {
    const node = $(id);
    if (node.textContent === text) return;
    node.textContent = text;
    node.classList.remove("flash");
    void node.offsetWidth; // restart the animation
    node.classList.add("flash");
  }

  function setStatus(kind, text) {
    const pill = $("status");
    pill.className = `pill pill-${kind}`;
    pill.textContent = text;
  }

  function empty(container, text) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = text;
    container.replaceChildren(p);
  }

  // A top for a y axis of four equal, round steps.
  function niceMax(value) {
    const rough = Math.max(1, value) / 4;
    const power = 10 ** Math.floor(Math.log10(rough));
    for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= rough) return 4 * step * power;
    return 40 * power;
  }

  // --- Charts ------------------------------------------------------------------------------

  function gridLines(root, box, maxValue) {
    for (let i = 0; i <= 4; i += 1) {
      const y = box.top + box.height - (box.height * i) / 4;
      root.append(svg("line", { x1: box.left, x2: box.left + box.width, y1: y, y2: y,
        stroke: "#232b36", "stroke-width": 1 }));
      root.append(svg("text", { x: box.left - 8, y: y + 4, "text-anchor": "end" },
        number.format(Math.round((maxValue * i) / 4))));
    }
  }

  function lineChart(container, points) {
    if (points.length < 2) return empty(container, "waiting for snapshots…");
    const width = 760, height = 220;
    const box = { left: 44, top: 12, width: width - 60, height: height - 42 };
    const maxValue = niceMax(Math.max(...points.map((p) => p.value)));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "events in the last minute over time" });
    const gradient = svg("linearGradient", { id: "rate-fill", x1: 0, x2: 0, y1: 0, y2: 1 });
    gradient.append(svg("stop", { offset: "0%", "stop-color": "#4cc2ff", "stop-opacity": 0.35 }));
    gradient.append(svg("stop", { offset: "100%", "stop-color": "#4cc2ff", "stop-opacity": 0 }));
    const defs = svg("defs");
    defs.append(gradient);
    root.append(defs);
    gridLines(root, box, maxValue);
    const x = (i) => box.left + (box.width * i) / (RATE_POINTS - 1);
    const offset = RATE_POINTS - points.length;
    const y = (v) => box.top + box.height - (box.height * v) / maxValue;
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(i + offset).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
    const floor = box.top + box.height;
    root.append(svg("path", { d: `${path}L${x(RATE_POINTS - 1)},${floor}L${x(offset)},${floor}Z`,
      fill: "url(#rate-fill)" }));
    root.append(svg("path", { d: path, fill: "none", stroke: "#4cc2ff", "stroke-width": 2.5,
      "stroke-linejoin": "round" }));
    const last = points[points.length - 1];
    root.append(svg("circle", { cx: x(RATE_POINTS - 1), cy: y(last.value), r: 4, fill: "#4cc2ff" }));
    // Times under the line, from the newest back, never closer than 110 px to each other.
    let labelled = Infinity;
    for (let i = points.length - 1; i >= 0; i -= 1) {
      if (labelled - x(i + offset) < 110) continue;
      labelled = x(i + offset);
      root.append(svg("text", { x: labelled, y: height - 8,
        "text-anchor": i === points.length - 1 ? "end" : "middle" }, utcTime(points[i].at)));
    }
    container.replaceChildren(root);
  }

  function barList(container, items, color) {
    if (!items.length) return empty(container, "no events in the window");
    const width = 380, row = 30, height = items.length * row + 4;
    const maxValue = Math.max(...items.map((item) => item.value));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "top event types" });
    items.forEach((item, i) => {
      const y = i * row + 2;
      const length = Math.max(2, ((width - 60) * item.value) / maxValue);
      root.append(svg("rect", { x: 0, y, width: width - 60, height: row - 8, rx: 5, fill: "#1f2833" }));
      root.append(svg("rect", { x: 0, y, width: length, height: row - 8, rx: 5, fill: color, opacity: 0.85 - i * 0.05 }));
      root.append(svg("text", { x: 8, y: y + 16, class: "label" }, item.label));
      root.append(svg("text", { x: width - 2, y: y + 16, "text-anchor": "end", class: "label" }, number.format(item.value)));
    });
    container.replaceChildren(root);
  }

  function activeUsersChart(container, days) {
    if (!days.length) return empty(container, "no days");
    const width = 760, height = 220;
    const box = { left: 44, top: 12, width: width - 60, height: height - 42 };
    const maxValue = niceMax(Math.max(1, ...days.map((d) => Math.max(d.dau, d.wau, d.mau))));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "daily active users" });
    gridLines(root, box, maxValue);
    const slot = box.width / days.length;
    const y = (v) => box.top + box.height - (box.height * v) / maxValue;
    days.forEach((day, i) => {
      const top = y(day.dau);
      root.append(svg("rect", { x: box.left + i * slot + slot * 0.18, y: top, width: slot * 0.64,
        height: box.top + box.height - top, rx: 2, fill: "#4cc2ff", opacity: 0.9 }));
    });
    for (const [field, color] of [["wau", "#a371f7"], ["mau", "#d29922"]]) {
      const points = days.map((d, i) => `${(box.left + (i + 0.5) * slot).toFixed(1)},${y(d[field]).toFixed(1)}`);
      root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    }
    for (const i of [0, Math.floor(days.length / 2), days.length - 1]) {
      root.append(svg("text", { x: box.left + (i + 0.5) * slot, y: height - 8, "text-anchor": "middle" }, days[i].day.slice(5)));
    }
    const legend = [["DAU", "#4cc2ff"], ["WAU", "#a371f7"], ["MAU", "#d29922"]];
    legend.forEach(([name, color], i) => {
      const x = box.left + 10 + i * 70;
      root.append(svg("rect", { x, y: box.top + 2, width: 10, height: 10, rx: 2, fill: color }));
      root.append(svg("text", { x: x + 16, y: box.top + 11, class: "label" }, name));
    });
    container.replaceChildren(root);
  }

  function tasksPanel(container, report) {
    const figures = document.createElement("div");
    figures.className = "tasks-figures";
    const rate = report.success_rate === null ? "–" : `${Math.round(report.success_rate * 100)}%`;
    for (const [label, value, className] of [
      ["completed", number.format(report.completed), "ok"],
      ["failed", number.format(report.failed), report.failed ? "bad" : ""],
      ["success", rate, ""],
    ]) {
      const item = document.createElement("div");
      const figure = document.createElement("b");
      figure.textContent = value;
      if (className) figure.className = className;
      const caption = document.createElement("span");
      caption.textContent = label;
      item.append(figure, caption);
      figures.append(item);
    }
    const width = 380, height = 120, days = report.days;
    const maxValue = niceMax(Math.max(1, ...days.map((d) => d.completed + d.failed)));
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "tasks per day" });
    const slot = width / Math.max(1, days.length);
    days.forEach((day, i) => {
      const scale = (height - 20) / maxValue;
      const completed = day.completed * scale, failed = day.failed * scale;
      const x = i * slot + slot * 0.2;
      root.append(svg("rect", { x, y: height - 18 - completed, width: slot * 0.6, height: completed, rx: 2, fill: "#3fb950" }));
      root.append(svg("rect", { x, y: height - 18 - completed - failed, width: slot * 0.6, height: failed, rx: 2, fill: "#f85149" }));
      root.append(svg("text", { x: x + slot * 0.3, y: height - 4, "text-anchor": "middle" }, day.day.slice(5)));
    });
    container.replaceChildren(figures, root);
  }

  // --- Live --------------------------------------------------------------------------------

  function showSnapshot(snapshot) {
    setStatus("live", "live");
    $("as-of").textContent = `as of ${utcTime(snapshot.as_of)} UTC`;
    setValue("active-users", number.format(snapshot.active_users.count));
    $("active-users-note").textContent = `last ${snapshot.minutes} minutes`;
    setValue("events-last-minute", number.format(snapshot.events_last_minute.count));
    const types = snapshot.top_event_types.event_types;
    setValue("top-type", types.length ? types[0].event_type : "–");
    $("top-type-note").textContent = types.length ? `${number.format(types[0].count)} in ${snapshot.minutes} min` : `last ${snapshot.minutes} minutes`;
    const recent = snapshot.recent_events;
    setValue("last-event", recent.length ? recent[0].event_type : "–");
    $("last-event-note").textContent = recent.length ? `${utcTime(recent[0].timestamp)} UTC · ${recent[0].service}` : "\u00a0";

    rateSeries.push({ at: snapshot.as_of, value: snapshot.events_last_minute.count });
    if (rateSeries.length > RATE_POINTS) rateSeries.shift();
    lineChart($("chart-rate"), rateSeries);
    barList($("chart-types"), types.slice(0, 8).map((t) => ({ label: t.event_type, value: t.count })), "#2f81f7");
    fillTable("recent", recent.slice(0, 8).map((e) => [cell(utcTime(e.timestamp)), cell(e.event_type), cell(e.service)]), "no events yet");
  }

  function showOutage(outage) {
    setStatus("down", `database unreachable since ${utcTime(outage.since)} UTC`);
  }

  function handleMessage(block) {
    const fields = {};
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "data") data.push(value);
      else fields[name] = value;
    }
    if (fields.retry && Number(fields.retry) > 0) retryMs = Number(fields.retry);
    if (fields.id) lastEventId = fields.id;
    if (!data.length) return;
    const document_ = JSON.parse(data.join("\n"));
    if (fields.event === "snapshot") showSnapshot(document_);
    else if (fields.event === "outage") showOutage(document_);
  }

  async function followStream() {
    for (;;) {
      try {
        const headers = { Authorization: `Bearer ${readKey}`, Accept: "text/event-stream" };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        const response = await fetch("/v1/live/stream?minutes=5&limit=12", { headers, cache: "no-store" });
        if (response.status === 401 || response.status === 403) return askForKey("That key cannot read.");
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replaceAll("\r\n", "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleMessage(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        // The stream broke (the collector restarted, the network went away): reconnect.
      }
      setStatus("wait", "reconnecting…");
      await sleep(retryMs);
    }
  }

  // --- Main metrics ------------------------------------------------------------------------

  async function getJson(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${readKey}` }, cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  async function refreshMetrics() {
    const [users, tasks, latency, errors] = await Promise.allSettled([
      getJson("/v1/metrics/active-users?days=30"),
      getJson("/v1/metrics/tasks?days=7"),
      getJson("/v1/metrics/api-latency?days=2"),
      getJson("/v1/metrics/errors?days=2"),
    ]);
    if (users.status === "fulfilled") activeUsersChart($("chart-dau"), users.value.days);
    else empty($("chart-dau"), "unavailable");
    if (tasks.status === "fulfilled") tasksPanel($("tasks"), tasks.value);
    else empty($("tasks"), "unavailable");
    if (latency.status === "fulfilled") {
      const slowest = [...latency.value.endpoints]
        .sort((a, b) => (b.p95_latency_ms.weighted_mean ?? 0) - (a.p95_latency_ms.weighted_mean ?? 0))
        .slice(0, 6);
      fillTable("latency", slowest.map((e) => [
        cell(`${e.method} ${e.route}`),
        cell(number.format(e.requests), "num"),
        cell(e.p95_latency_ms.weighted_mean === null ? "–" : number.format(Math.round(e.p95_latency_ms.weighted_mean)), "num"),
        cell(number.format(e.server_errors), e.server_errors ? "num bad" : "num"),
      ]), "no requests");
    }
    if (errors.status === "fulfilled") {
      fillTable("errors", errors.value.totals.slice(0, 6).map((e) => [
        cell(e.error_kind), cell(e.service), cell(number.format(e.count), "num"),
      ]), "no errors");
    }
  }

  async function keepMetricsFresh() {
    for (;;) {
      try { await refreshMetrics(); } catch (error) { /* shown as unavailable; next round */ }
      await sleep(METRICS_EVERY_MS);
    }
  }

  // --- The key -----------------------------------------------------------------------------

  function askForKey(message) {
    sessionStorage.removeItem(KEY_STORE);
    setStatus("down", message || "a read key is needed");
    $("board").hidden = true;
    $("key-form").hidden = false;
    $("key-input").focus();
  }

  function start() {
    const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
    if (match) {
      sessionStorage.setItem(KEY_STORE, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname); // the key leaves the address bar
    }
    readKey = sessionStorage.getItem(KEY_STORE);
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORE, $("key-input").value.trim());
      location.reload();
    });
    if (!readKey) return askForKey();
    lineChart($("chart-rate"), rateSeries);
    followStream();
    keepMetricsFresh();
  }

  start();
})();
