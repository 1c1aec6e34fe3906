/*
 * Draws how long the steps of a workflow's recent runs waited for a worker
 * (dispatch latency), with uPlot: x = run number (the runs of the duration
 * chart above it), y = seconds; two lines, the median and the 95th
 * percentile of each run's steps.
 *
 * Markup (templates/runs/workflow_stats.html): a <div class="latency-chart"
 * data-points="duration-points">, where data-points names the
 * <script type="application/json"> of the duration chart; each point has
 * "number", "latency_median" and "latency_p95" (seconds, or null when no
 * step of the run went to a worker). See runs/pages/stats.py.
 *
 * Needs uPlot loaded before this file. Colours come from the CSS variables
 * (--accent for the median, --fg-muted dashed for the 95th percentile), read when the
 * chart is drawn. The chart follows its container's width; its uPlot
 * instance is the element's `uplot` property.
 */
(function () {
  "use strict";

  const HEIGHT = 180;
  const Y_AXIS_WIDTH = 84;
  const RUN_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000];

  const resizes = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const u = entry.target.uplot;
      if (u && u.width !== entry.target.clientWidth) {
        u.setSize({ width: entry.target.clientWidth, height: HEIGHT });
      }
    }
  });

  // 0.42 ms, 35 ms, 1.2 s: as the run page writes a step's wait.
  function latencyLabel(seconds) {
    const ms = seconds * 1000;
    if (ms === 0) return "0";
    if (ms < 10) return +ms.toPrecision(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    return window.orchestrator.formatDuration(seconds);
  }

  function cssColour(el, name, fallback) {
    return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
  }

  function points(el) {
    const source = document.getElementById(el.dataset.points || "");
    const parsed = JSON.parse(source ? source.textContent : "[]");
    return Array.isArray(parsed) ? parsed : [];
  }

  function draw(el) {
    const runs = points(el);
    const fg = cssColour(el, "--fg-muted", "#666");
    const grid = cssColour(el, "--border", "#ddd");
    const median = cssColour(el, "--accent", "#2563eb");
    const p95 = cssColour(el, "--fg-muted", "#666");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const u = new window.uPlot(
      {
        width: el.clientWidth || 600,
        height: HEIGHT,
        cursor: { y: false, drag: { x: false, y: false } },
        legend: { show: true },
        scales: {
          x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
          y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 0.001] },
        },
        axes: [
          { ...axis, incrs: RUN_STEPS, values: (u, ticks) => ticks.map((run) => "#" + run) },
          { ...axis, size: Y_AXIS_WIDTH, values: (u, ticks) => ticks.map(latencyLabel) },
        ],
        series: [
          { label: "Run", value: (u, run) => (run == null ? "" : "#" + run) },
          {
            label: "median",
            stroke: median,
            width: 2,
            spanGaps: true,
            points: { show: true, size: 5, fill: median },
            value: (u, v) => (v == null ? "—" : latencyLabel(v)),
          },
          {
            label: "95th percentile",
            stroke: p95,
            width: 1,
            dash: [4, 4],
            spanGaps: true,
            points: { show: true, size: 5, fill: p95 },
            value: (u, v) => (v == null ? "—" : latencyLabel(v)),
          },
        ],
      },
      [
        runs.map((run) => run.number),
        runs.map((run) => run.latency_median),
        runs.map((run) => run.latency_p95),
      ],
      el
    );
    el.uplot = u;
    resizes.observe(el);
  }

  function renderAll(root) {
    for (const el of (root || document).querySelectorAll(".latency-chart")) {
      if (el.uplot) continue;
      try {
        draw(el);
        el.removeAttribute("data-chart-error");
      } catch (error) {
        el.setAttribute("data-chart-error", error.message);
        console.error("latency chart:", error, el);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => renderAll(document));
  } else {
    renderAll(document);
  }
  document.addEventListener("htmx:historyRestore", () => renderAll(document));
})();
