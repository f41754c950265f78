/*
 * The dashboard's model charts (Chart.js, static/vendor/chartjs/), kept current while the
 * trainer works.
 *
 *   <section id="dash-model" data-refresh-url="/api/projects/<pk>/dashboard/" data-project="<pk>">
 *     <script id="dashboard-data" type="application/json">{"model": {...}}</script>
 *     <canvas id="chart-curve">  <canvas id="chart-uncertainty">  <canvas id="chart-classes">
 *
 * Three charts: the learning curve (audited accuracy with its 95% interval, cross-validated
 * accuracy per model version, fine-tuning runs as markers), the uncertainty of the unlabeled pool,
 * and the class shares of the human labels next to the model's guesses. A canvas the page
 * leaves out is skipped; a missing part of the data draws an empty chart, and the canvas's
 * parent gets `is-empty` so the page can say why.
 *
 * The payload is refetched (same shape, under the key `model`) when the trainer's status
 * (static/js/live.js) reports another model version or another number of audit answers, or
 * after the socket was down: at most once every 3 s, the last request kept. The charts are
 * updated in place, and every `data-dash-field="<name>"` inside the section gets the text of
 * `fields[name]` when the payload has `fields`. A failed fetch is dropped; the next status
 * tries again. `window.Dashboard` gives tests the charts and the model on screen.
 */
(function () {
  "use strict";

  const root = document.getElementById("dash-model");
  if (!root) return;

  const REFRESH_MIN_MS = 3000;
  const refreshUrl = root.dataset.refreshUrl;
  const projectId = root.dataset.project;

  // --- data -----------------------------------------------------------------------------

  /** The model part of a payload; a bare model object is taken as it is. */
  function modelOf(payload) {
    if (!payload || typeof payload !== "object") return {};
    const model = Object.prototype.hasOwnProperty.call(payload, "model") ? payload.model : payload;
    return model && typeof model === "object" ? model : {};
  }

  function readInitial() {
    const script = document.getElementById("dashboard-data");
    if (!script) return {};
    try {
      return JSON.parse(script.textContent);
    } catch (err) {
      return {};
    }
  }

  function list(value) {
    return Array.isArray(value) ? value : [];
  }

  /** A finite number or null (a gap in a line). */
  function num(value) {
    return value == null || value === "" || !isFinite(Number(value)) ? null : Number(value);
  }

  function sum(values) {
    return values.reduce((total, v) => total + (num(v) || 0), 0);
  }

  function percentText(fraction, digits) {
    return fraction == null ? "–" : (fraction * 100).toFixed(digits || 0) + "%";
  }

  function plural(n, word, many) {
    return n + " " + (n === 1 ? word : many || word + "s");
  }

  // --- colours from static/css/app.css ---------------------------------------------------

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  /** `color` (#rgb, #rrggbb or rgb()) with the given opacity, for fills and soft bars. */
  function withAlpha(color, alpha) {
    let hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color);
    if (hex) {
      let digits = hex[1];
      if (digits.length === 3) digits = digits.replace(/./g, "$&$&");
      const [r, g, b] = [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
      return "rgba(" + r + ", " + g + ", " + b + ", " + alpha + ")";
    }
    const rgb = /^rgba?\(([^,]+),([^,]+),([^,)]+)/i.exec(color);
    return rgb ? "rgba(" + rgb[1] + "," + rgb[2] + "," + rgb[3] + ", " + alpha + ")" : color;
  }

  const colors = {
    text: cssVar("--text", "#1c2230"),
    muted: cssVar("--muted", "#667085"),
    line: cssVar("--line", "#e3e6ec"),
    surface: cssVar("--surface", "#ffffff"),
    accent: cssVar("--accent", "#4f46e5"),
    accentStrong: cssVar("--accent-strong", "#4338ca"),
    ok: cssVar("--ok", "#0f8a5f"),
    warn: cssVar("--warn", "#b54708"),
  };

  // --- chart 1: the learning curve --------------------------------------------------------

  /** Points {x, y} for one field of the audit or cv rows; the row stays on the point (raw). */
  function points(rows, field) {
    return list(rows).map((row) => ({ x: num(row.labels), y: num(row[field]), row }));
  }

  function curveData(model) {
    const curve = model.curve || {};
    const slow = list(curve.slow).map((row) => ({ x: num(row.labels), y: 1, row }));
    const marker = (label, color, filled, rows) => ({
      label,
      data: rows,
      type: "scatter",
      showLine: false,
      pointStyle: "triangle",
      rotation: 180,
      pointRadius: 6,
      pointHoverRadius: 7,
      borderColor: color,
      backgroundColor: filled ? color : colors.surface,
      hoverBackgroundColor: filled ? color : colors.surface,
      borderWidth: 1.5,
      clip: false, // they sit on the top edge of the plot
      markerLine: true,
    });
    return {
      datasets: [
        {
          label: "95% interval low",
          data: points(curve.audit, "low"),
          bandEdge: true,
          hideInLegend: true,
          borderWidth: 0,
          pointRadius: 0,
          pointHoverRadius: 0,
          pointHitRadius: 0,
          fill: false,
          spanGaps: true,
        },
        {
          label: "Audit 95% interval",
          data: points(curve.audit, "high"),
          bandEdge: true,
          borderWidth: 0,
          pointRadius: 0,
          pointHoverRadius: 0,
          pointHitRadius: 0,
          backgroundColor: withAlpha(colors.accent, 0.14),
          pointStyle: "rect",
          fill: "-1",
          spanGaps: true,
        },
        {
          label: "Audited accuracy",
          data: points(curve.audit, "accuracy"),
          kind: "audit",
          borderColor: colors.accent,
          backgroundColor: colors.accent,
          pointHoverBackgroundColor: colors.accentStrong,
          borderWidth: 2,
          pointRadius: 3.5,
          pointHoverRadius: 5,
          fill: false,
          clip: 8, // points at 100% are drawn whole, not cut at the plot's edge
        },
        {
          label: "Cross-validated",
          data: points(curve.cv, "accuracy"),
          kind: "cv",
          borderColor: colors.ok,
          backgroundColor: colors.ok,
          pointHoverBackgroundColor: colors.ok,
          borderWidth: 2,
          borderDash: [6, 4],
          pointRadius: 2.5,
          pointHoverRadius: 4,
          fill: false,
          clip: 8,
        },
        marker("Fine-tuning, adopted", colors.warn, true, slow.filter((p) => p.row.adopted)),
        marker("Fine-tuning, not adopted", colors.muted, false, slow.filter((p) => !p.row.adopted)),
      ],
    };
  }

  function curveLabel(context) {
    const dataset = context.dataset;
    const row = (context.raw && context.raw.row) || {};
    if (dataset.kind === "audit") {
      const range = num(row.low) != null && num(row.high) != null ? " (" + percentText(num(row.low)) + "–" + percentText(num(row.high)) + ")" : "";
      const answers = num(row.n) != null ? ", " + plural(num(row.n), "audit answer") : "";
      return "Audited " + percentText(num(row.accuracy)) + range + answers;
    }
    if (dataset.kind === "cv") {
      return "Cross-validated " + percentText(num(row.accuracy)) + (row.version != null ? ", model v" + row.version : "");
    }
    // A marker: a fine-tuning run.
    return "Fine-tuning" + (row.version != null ? " v" + row.version : "") + (row.adopted ? ", adopted" : ", not adopted");
  }

  /** Draws a faint vertical line under each fine-tuning marker, across the whole plot. */
  const markerLines = {
    id: "dashMarkerLines",
    beforeDatasetsDraw(chart) {
      const area = chart.chartArea;
      const ctx = chart.ctx;
      chart.data.datasets.forEach((dataset, index) => {
        if (!dataset.markerLine || !chart.isDatasetVisible(index)) return;
        ctx.save();
        ctx.strokeStyle = withAlpha(dataset.borderColor, 0.35);
        ctx.lineWidth = 1;
        ctx.setLineDash([3, 3]);
        chart.getDatasetMeta(index).data.forEach((point) => {
          if (!isFinite(point.x) || point.x < area.left || point.x > area.right) return;
          ctx.beginPath();
          ctx.moveTo(point.x, area.top);
          ctx.lineTo(point.x, area.bottom);
          ctx.stroke();
        });
        ctx.restore();
      });
    },
  };

  function curveChart(canvas, model) {
    return new window.Chart(canvas, {
      type: "line",
      data: curveData(model),
      plugins: [markerLines],
      options: baseOptions({
        layout: { padding: { top: 10 } },
        // Every series at the nearest number of labels; the band's edges are left out below.
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", beginAtZero: true, title: axisTitle("labels"), ticks: { precision: 0 }, grid: { color: colors.line } },
          y: {
            min: 0,
            max: 1,
            title: axisTitle("accuracy"),
            ticks: { stepSize: 0.2, callback: (value) => percentText(value) },
            grid: { color: colors.line },
          },
        },
        plugins: {
          // Point styles tell the lines, the band and the markers apart better than boxes.
          legend: { labels: { usePointStyle: true, filter: (item, data) => {
            const dataset = data.datasets[item.datasetIndex];
            // Fine-tuning markers appear in the legend only once there is a run to mark.
            return !dataset.hideInLegend && !(dataset.markerLine && !dataset.data.length);
          } } },
          tooltip: {
            filter: (item) => !item.dataset.bandEdge,
            callbacks: {
              title: (items) => (items.length ? plural(items[0].parsed.x, "label") : ""),
              label: curveLabel,
            },
          },
        },
      }),
    });
  }

  function curveSummary(model) {
    const audit = list((model.curve || {}).audit);
    const last = audit[audit.length - 1];
    if (!last) return "Learning curve: no audit answers yet.";
    return "Learning curve: audited accuracy " + percentText(num(last.accuracy)) + " at " + plural(num(last.labels), "label") + ".";
  }

  // --- chart 2: the pool's uncertainty ------------------------------------------------------

  function uncertaintyData(model) {
    const u = model.uncertainty || {};
    const edges = list(u.edges).map(num);
    const counts = list(u.counts).map((c) => num(c) || 0);
    const bins = Math.min(counts.length, Math.max(0, edges.length - 1));
    const labels = [];
    const edge = (value) => (value == null ? "?" : value.toFixed(2));
    for (let i = 0; i < bins; i += 1) labels.push(edge(edges[i]) + "–" + edge(edges[i + 1]));
    return {
      labels,
      datasets: [
        {
          label: "Unlabeled images",
          data: counts.slice(0, bins),
          backgroundColor: withAlpha(colors.accent, 0.75),
          hoverBackgroundColor: colors.accentStrong,
          borderWidth: 0,
          borderRadius: 2,
          barPercentage: 1,
          categoryPercentage: 0.92,
        },
      ],
    };
  }

  function uncertaintyChart(canvas, model) {
    return new window.Chart(canvas, {
      type: "bar",
      data: uncertaintyData(model),
      options: baseOptions({
        scales: {
          x: { title: axisTitle("uncertainty"), ticks: { maxRotation: 0, autoSkipPadding: 8 }, grid: { display: false } },
          y: { beginAtZero: true, title: axisTitle("unlabeled images"), ticks: { precision: 0 }, grid: { color: colors.line } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? "uncertainty " + items[0].label : ""),
              label: (context) => plural(context.parsed.y, "unlabeled image"),
            },
          },
        },
      }),
    });
  }

  function uncertaintySummary(model) {
    const u = model.uncertainty;
    if (!u) return "Uncertainty of the unlabeled images: no model yet.";
    return "Uncertainty of " + plural(num(u.unlabeled) || sum(list(u.counts)), "unlabeled image") + (u.version != null ? ", model v" + u.version : "") + ".";
  }

  // --- chart 3: class shares, human labels vs the model's guesses ---------------------------

  function shares(counts) {
    const total = sum(counts);
    return counts.map((c) => (total ? (num(c) || 0) / total : 0));
  }

  function classesData(model) {
    const c = model.classes || {};
    const names = list(c.names).map(String);
    const fit = (values) => names.map((_, i) => num(list(values)[i]) || 0);
    const labeled = fit(c.labeled);
    const predicted = fit(c.predicted);
    return {
      labels: names,
      datasets: [
        {
          label: "Human labels",
          data: shares(labeled),
          counts: labeled,
          unit: "label",
          backgroundColor: colors.accent,
          hoverBackgroundColor: colors.accentStrong,
          borderColor: colors.accent,
          borderWidth: 1,
          borderRadius: 2,
        },
        {
          label: "Model guesses (unlabeled)",
          data: shares(predicted),
          counts: predicted,
          unit: "image",
          backgroundColor: withAlpha(colors.accent, 0.22),
          hoverBackgroundColor: withAlpha(colors.accent, 0.35),
          borderColor: colors.accent,
          borderWidth: 1,
          borderRadius: 2,
        },
      ],
    };
  }

  function classesChart(canvas, model) {
    return new window.Chart(canvas, {
      type: "bar",
      data: classesData(model),
      options: baseOptions({
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { grid: { display: false } },
          y: { beginAtZero: true, title: axisTitle("share"), ticks: { callback: (value) => percentText(value) }, grid: { color: colors.line } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (context) => {
                const dataset = context.dataset;
                const count = dataset.counts[context.dataIndex] || 0;
                return dataset.label + ": " + percentText(context.parsed.y, 1) + " (" + plural(count, dataset.unit) + ")";
              },
            },
          },
        },
      }),
    });
  }

  function classesSummary(model) {
    const c = model.classes;
    if (!c) return "Class shares: no model yet.";
    return "Class shares of " + plural(sum(list(c.labeled)), "human label") + " and " + plural(sum(list(c.predicted)), "model guess", "model guesses") + ".";
  }

  // --- shared chart setup --------------------------------------------------------------------

  function axisTitle(text) {
    return { display: true, text, color: colors.muted };
  }

  /** Options every chart shares: fills its box, and no animation (steady screenshots). */
  function baseOptions(options) {
    return Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, options);
  }

  function setDefaults(Chart) {
    Chart.defaults.font.family = cssVar("--font", Chart.defaults.font.family);
    Chart.defaults.font.size = 12;
    Chart.defaults.color = colors.muted;
    Chart.defaults.borderColor = colors.line;
    Chart.defaults.plugins.legend.position = "bottom";
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
    Chart.defaults.plugins.legend.labels.boxHeight = 12;
  }

  // --- the charts on the page ----------------------------------------------------------------

  const KINDS = {
    curve: { canvas: "chart-curve", create: curveChart, data: curveData, summary: curveSummary, empty: (m) => !list((m.curve || {}).audit).length && !list((m.curve || {}).cv).length },
    uncertainty: { canvas: "chart-uncertainty", create: uncertaintyChart, data: uncertaintyData, summary: uncertaintySummary, empty: (m) => !m.uncertainty },
    classes: { canvas: "chart-classes", create: classesChart, data: classesData, summary: classesSummary, empty: (m) => !m.classes },
  };

  const charts = {};
  const ownLabels = {}; // aria-labels the template wrote itself are left alone
  let model = modelOf(readInitial());

  /** Marks the canvas's box empty (CSS may show its `data-empty-text`) and describes the chart. */
  function describe(name, canvas) {
    const kind = KINDS[name];
    if (canvas.parentElement) canvas.parentElement.classList.toggle("is-empty", kind.empty(model));
    if (!ownLabels[name]) canvas.setAttribute("aria-label", kind.summary(model));
  }

  function createCharts() {
    if (typeof window.Chart !== "function") return;
    setDefaults(window.Chart);
    Object.keys(KINDS).forEach((name) => {
      const canvas = document.getElementById(KINDS[name].canvas);
      if (!canvas) return;
      ownLabels[name] = canvas.hasAttribute("aria-label");
      if (!canvas.hasAttribute("role")) canvas.setAttribute("role", "img");
      describe(name, canvas);
      try {
        charts[name] = KINDS[name].create(canvas, model);
      } catch (err) {
        console.error("dashboard: the " + name + " chart failed", err);
      }
    });
  }

  function updateCharts() {
    Object.keys(charts).forEach((name) => {
      const chart = charts[name];
      chart.data = KINDS[name].data(model);
      chart.update("none");
      describe(name, chart.canvas);
    });
  }

  function updateFields(fields) {
    if (!fields || typeof fields !== "object") return;
    root.querySelectorAll("[data-dash-field]").forEach((node) => {
      const name = node.dataset.dashField;
      if (!Object.prototype.hasOwnProperty.call(fields, name)) return;
      const value = fields[name];
      node.textContent = value == null ? "" : String(value);
    });
  }

  // --- what the charts show, against what the trainer reports --------------------------------

  // A status is summed up as its model version and its number of audit answers (audit answers
  // move the curve without a new model). `shown` is the summary the charts answer: at first the
  // payload's version, with the first answer count seen (the payload does not carry it); after
  // a fetch, the status that was current when it began. Comparing with that, not only with the
  // payload's version, keeps a server whose payload lags the status from being asked every 3 s.
  let latest = null;
  let shown = null;

  function summaryOf(status) {
    const answers = status.accuracy && status.accuracy.n != null ? Number(status.accuracy.n) : null;
    return { version: status.version == null ? null : String(status.version), answers };
  }

  function sameVersion(a, b) {
    return (a == null ? null : String(a)) === (b == null ? null : String(b));
  }

  function onStatus(status) {
    if (!status || typeof status !== "object") return;
    latest = summaryOf(status);
    if (!shown) shown = { version: model.version == null ? null : String(model.version), answers: latest.answers };
    if (latest.version !== shown.version || latest.answers !== shown.answers) requestRefresh();
  }

  function onQueue(version) {
    if (!sameVersion(version, model.version)) requestRefresh();
  }

  // --- refreshing: at most one fetch every 3 s, the last request kept -----------------------

  const refresh = { pending: false, running: false, timer: null, lastStart: -Infinity };

  function requestRefresh() {
    if (!refreshUrl) return;
    refresh.pending = true;
    if (refresh.running || refresh.timer) return;
    const wait = Math.max(0, refresh.lastStart + REFRESH_MIN_MS - Date.now());
    refresh.timer = setTimeout(runRefresh, wait);
  }

  async function runRefresh() {
    refresh.timer = null;
    if (!refresh.pending) return;
    refresh.pending = false;
    refresh.running = true;
    refresh.lastStart = Date.now();
    const asked = latest;
    try {
      const response = await fetch(refreshUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
      if (response.ok && isJson) {
        const payload = await response.json();
        model = modelOf(payload);
        if (asked) shown = asked;
        updateCharts();
        updateFields(payload && payload.fields);
      }
    } catch (err) {
      // Offline or a bad reply: the next status asks again.
    } finally {
      refresh.running = false;
      if (refresh.pending) requestRefresh();
    }
  }

  function connectLive() {
    if (!window.Live || !projectId) return false;
    window.Live.connect(projectId, { onStatus, onQueue, onReconnect: requestRefresh });
    return true;
  }

  createCharts();
  // live.js is loaded before this script; if a page orders them otherwise, wait for it.
  if (!connectLive()) document.addEventListener("DOMContentLoaded", connectLive, { once: true });

  window.Dashboard = { charts, model: () => model, refresh: requestRefresh };
})();
